"""PNG figures: explanation maps (one per image, a contact sheet) and the feature-usage bar plot.

matplotlib's Agg canvas, given arrays; logging the files to a tracker is the caller's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["ATTENTION_MEANING", "GRADCAM_MEANING", "ROLLOUT_MEANING", "SCALE_MEANING", "render_contact_sheet",
           "render_explanation", "render_feature_usage"]

_OVERLAY_ALPHA = 0.5
_COLOUR_MAP = "jet"


def _figure_module():
    # the object-oriented Figure API with the Agg canvas needs no pyplot state and leaves the process-wide
    # backend alone, so figures never leak between calls and no display is needed
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib comes with mlflow
        raise ImportError("rendering explanations needs matplotlib: pip install matplotlib") from exc

    return Figure, FigureCanvasAgg


def _array(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _display_image(image) -> np.ndarray:
    """H x W (grey) or H x W x 3 in [0, 1] from C x H x W, H x W x C or H x W; min-max scaled for display,
    which also undoes any intensity normalisation of the network input."""
    img = _array(image).astype(np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3):
        raise ValueError(f"image must be H x W, C x H x W or H x W x C, got shape {img.shape}")
    low, high = img.min(), img.max()
    return (img - low) / (high - low) if high > low else np.zeros_like(img)


def _name(index, class_names: Sequence[str] | None) -> str:
    if index is None:
        return "?"
    return class_names[int(index)] if class_names is not None else str(int(index))


def _title(pred, label, class_names) -> str:
    return f"pred {_name(pred, class_names)} | true {_name(label, class_names)}"


GRADCAM_MEANING = "Grad-CAM: evidence for the predicted class"
ATTENTION_MEANING = "attention received"
ROLLOUT_MEANING = "attention rollout: flow into the class token"
SCALE_MEANING = "scaled per image: 0 = its lowest, 1 = its highest"


def _colour_bar(fig, axes, label: str, fontsize: float) -> None:
    """A horizontal colour bar for the overlays' 0-1 scale, labelled with what the colours mean: inside the space
    under one panel (``axes`` an Axes: the panels keep their sizes), or under a group of panels (a list).

    It shows the colour map at full opacity (the overlays blend it with the image) through its own scalar
    mappable, so it reads the same whatever the panels show."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mappable = ScalarMappable(Normalize(0.0, 1.0), _COLOUR_MAP)
    if isinstance(axes, list):
        bar = fig.colorbar(mappable, ax=axes, orientation="horizontal", fraction=0.05, pad=0.05, aspect=30,
                           shrink=0.6, ticks=[0.0, 0.5, 1.0])
    else:
        bar = fig.colorbar(mappable, cax=axes.inset_axes([0.0, -0.09, 1.0, 0.05]), orientation="horizontal",
                           ticks=[0.0, 0.5, 1.0])
    bar.ax.tick_params(labelsize=fontsize)
    bar.set_label(label, fontsize=fontsize)


def _panels(axes, image, gradcam, attention, titles: tuple[str, str] | None = None) -> None:
    """Draw image | Grad-CAM overlay | attention overlay (those given) into ``axes``; ``titles``: the two maps'."""
    img = _display_image(image)
    cmap = "gray" if img.ndim == 2 else None
    names = titles or ("", "")
    maps = [("image", None)] + [(t, m) for t, m in zip(names, (gradcam, attention), strict=True) if m is not None]
    # a contact sheet may give more axes than maps (an image without one): the rest stay blank
    for ax, (label, overlay) in zip(axes, maps, strict=False):
        ax.imshow(img, cmap=cmap)
        if overlay is not None:
            ax.imshow(_array(overlay), cmap=_COLOUR_MAP, alpha=_OVERLAY_ALPHA, vmin=0.0, vmax=1.0)
        if titles is not None:
            ax.set_title(label, fontsize=8)
        ax.set_axis_off()


def render_explanation(
    path: str | Path,
    image,
    gradcam,
    *,
    attention=None,
    pred: int | None = None,
    label: int | None = None,
    class_names: Sequence[str] | None = None,
    gradcam_title: str = "Grad-CAM",
    attention_title: str = "attention",
    attention_meaning: str = ATTENTION_MEANING,
    dpi: int = 100,
) -> Path:
    """Write one PNG: image | Grad-CAM overlay | attention overlay (each if given), predicted and true class above,
    and under each map a colour bar saying what its colours mean.

    Args:
        path: output PNG path (parent folders are created).
        image: the input image, C x H x W (C = 1 or 3), H x W x C or H x W; scaled to [0, 1] for display.
        gradcam: H x W map in [0, 1], or None (a ViT has no convolutional stage for Grad-CAM).
        attention: optional H x W attention map in [0, 1].
        pred: predicted class index.
        label: true class index.
        class_names: names indexed by class.
        gradcam_title: title of the Grad-CAM panel (e.g. ``"Grad-CAM (layer2, 8×8)"``: its layer and grid).
        attention_title: title of the attention panel (e.g. ``"attention rollout (8×8)"`` for a ViT).
        attention_meaning: what the attention map's colours measure (the colour bar's label), e.g.
            :data:`ROLLOUT_MEANING` for a ViT.
        dpi: resolution.

    Returns:
        The written path.
    """
    if gradcam is None and attention is None:
        raise ValueError("nothing to draw: gradcam and attention are both None")
    figure_cls, canvas_cls = _figure_module()
    n = 1 + (gradcam is not None) + (attention is not None)
    fig = figure_cls(figsize=(3 * n, 3.4))
    canvas_cls(fig)
    axes = fig.subplots(1, n)
    _panels(axes, image, gradcam, attention, titles=(gradcam_title, attention_title))
    meanings = [GRADCAM_MEANING] * (gradcam is not None) + [attention_meaning] * (attention is not None)
    for ax, meaning in zip(axes[1:], meanings, strict=True):
        _colour_bar(fig, ax, f"{meaning}\n({SCALE_MEANING})", fontsize=7)
    fig.suptitle(_title(pred, label, class_names), fontsize=10)
    return _save(fig, path, dpi)


def _save(fig, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png", bbox_inches="tight")
    return path


def _sheet_size(images, gradcams, attentions, per_row: int, max_images: int) -> int:
    """The number of images a contact sheet draws, after checking its arguments."""
    if per_row < 1 or max_images < 1:
        raise ValueError(f"per_row ({per_row}) and max_images ({max_images}) must be >= 1")
    n_images = min(len(images), max_images)
    if n_images == 0:
        raise ValueError("no images to draw")
    if gradcams is None and attentions is None:
        raise ValueError("nothing to draw: gradcams and attentions are both None")
    if any(maps is not None and len(maps) < n_images for maps in (gradcams, attentions)):
        raise ValueError("images, gradcams and attentions must have the same length")
    return n_images


def render_contact_sheet(
    path: str | Path,
    images,
    gradcams,
    *,
    attentions=None,
    preds: Sequence[int] | None = None,
    labels: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    gradcam_title: str = "Grad-CAM",
    attention_title: str = "attention",
    attention_meaning: str = ATTENTION_MEANING,
    per_row: int = 4,
    max_images: int = 64,
    dpi: int = 80,
) -> Path:
    """Write a contact sheet PNG: for each image its panels (image | Grad-CAM | attention), ``per_row`` per row,
    the panels named in the title and one colour bar under the sheet saying what the colours mean.

    Args:
        path: output PNG path (parent folders are created).
        images: B images (see :func:`render_explanation`).
        gradcams: B x H x W maps in [0, 1], or None (no Grad-CAM panels).
        attentions: optional B x H x W attention maps.
        preds, labels: optional B predicted and B true class indices.
        class_names: names indexed by class.
        gradcam_title, attention_title: what the Grad-CAM and attention panels show (in the sheet's title).
        attention_meaning: what the attention maps' colours measure (on the colour bar's label).
        per_row: images per row of the sheet.
        max_images: at most this many images (the first ones) are drawn.
        dpi: resolution.

    Returns:
        The written path.
    """
    n_images = _sheet_size(images, gradcams, attentions, per_row, max_images)
    figure_cls, canvas_cls = _figure_module()
    panels = 1 + (gradcams is not None) + (attentions is not None)
    cols = min(per_row, n_images)
    rows = -(-n_images // cols)
    height = 2.0 * rows + 0.5
    fig = figure_cls(figsize=(1.8 * panels * cols, height))
    canvas_cls(fig)
    axes = np.atleast_2d(fig.subplots(rows, panels * cols, squeeze=False))
    fig.subplots_adjust(top=1.0 - 0.45 / height)  # the title just above the first row, not an inch away
    for ax in axes.ravel():
        ax.set_axis_off()
    for i in range(n_images):
        r, c = divmod(i, cols)
        group = axes[r, c * panels:(c + 1) * panels]
        _panels(group, images[i], gradcams[i] if gradcams is not None else None,
                attentions[i] if attentions is not None else None)
        pred = preds[i] if preds is not None else None
        label = labels[i] if labels is not None else None
        group[0].set_title(_title(pred, label, class_names), fontsize=7, loc="left")
    names = ["image"] + [gradcam_title] * (gradcams is not None) + [attention_title] * (attentions is not None)
    fig.suptitle(" | ".join(names), fontsize=9)
    meanings = [GRADCAM_MEANING] * (gradcams is not None) + [attention_meaning] * (attentions is not None)
    _colour_bar(fig, axes.ravel().tolist(), f"{'; '.join(meanings)} ({SCALE_MEANING})", fontsize=8)
    return _save(fig, path, dpi)


def render_feature_usage(path: str | Path, table, *, alpha: float = 0.05, dpi: int = 100) -> Path:
    """Write a bar plot of -log10 p per feature (raw and Holm-corrected) with the alpha threshold.

    Args:
        path: output PNG path (parent folders are created).
        table: :func:`~medattn_monai.explain.feature_usage_table`'s data frame (columns ``feature, p, p_holm``).
        alpha: significance level drawn as a horizontal line.
        dpi: resolution.

    Returns:
        The written path.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    figure_cls, canvas_cls = _figure_module()
    names = [str(name) for name in table["feature"]]
    positions = np.arange(len(names))
    fig = figure_cls(figsize=(max(4.0, 0.6 * len(names) + 2), 3.5))
    canvas_cls(fig)
    ax = fig.subplots()
    width = 0.4
    ax.bar(positions - width / 2, -np.log10(np.asarray(table["p"], dtype=float)), width, label="p")
    ax.bar(positions + width / 2, -np.log10(np.asarray(table["p_holm"], dtype=float)), width, label="p (Holm)")
    ax.axhline(-np.log10(alpha), color="black", linestyle="--", linewidth=1, label=f"alpha = {alpha:g}")
    ax.set_xticks(positions)
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_ylabel("-log10 p")
    ax.set_title("feature usage given the true label")
    ax.legend(fontsize=8)
    return _save(fig, path, dpi)
