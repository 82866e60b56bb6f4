"""``medattn explain``: Grad-CAM and attention maps of a trained run on a split, with quantitative checks.

For each image of the split: Grad-CAM of the predicted class (CNNs; Captum ``LayerGradCam``) and the attention map
(attention variants: attention each position receives; ViT: rollout; see :mod:`.attention_map`), both upsampled
to the input and min-max normalised per image, from the layers :mod:`.map_layers` chooses (grids of at least 7×7
positions where the network has them; a warning otherwise). With a mask field, the share of each map inside the
mask (per image and per class); with both maps, their Spearman correlation per image.

Output folder, logged as the artifacts of a ``run_type=explain`` run:

* ``images/<k>_<image>.png``: image | Grad-CAM | attention map, predicted and true class above, each map's layer
  and grid in its title and a colour bar under it (``n_figures`` images; with a mask field, images whose mask is
  not empty first); ``contact_sheet.png``: all of them, with one colour bar;
* ``images.csv``: per image ``image, label, pred, prob, spearman`` (Spearman correlation of Grad-CAM and the
  attention map; empty unless the network has both);
* with a mask field: ``mask_share.csv`` (per image and map: share of the map inside the mask, and the mask's area
  share) and ``mask_share_by_class.csv`` (per map and true class, and over all classes as ``all``: mean share,
  mean area share, ``ratio``), over the images whose mask is not empty;
* ``summary.json``: the logged metrics: ``n_images``, ``gradcam_attention_spearman`` (mean), and with a mask
  ``<map>_share_<field>``, ``<map>_ratio_<field>``, ``area_share_<field>``, ``n_masked_<field>``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..data import PrepareBatch
from ..errors import ConfigError, DataError
from .analysis_run import explain_run, explain_run_name, log_folder, log_metrics, metric_key
from .attention_map import attention_map
from .feature_usage_table import feature_frame
from .gradcam import grad_cam
from .map_checks import map_rank_correlation, mask_share_by_class, mask_share_frame
from .map_layers import MapLayers, choose_map_layers, coarse_grid_warning
from .rendering import ATTENTION_MEANING, ROLLOUT_MEANING, render_contact_sheet, render_explanation
from .trained_run import TrainedRun, load_trained_run, split_batches, split_data

__all__ = ["explain", "explain_maps"]

logger = logging.getLogger("medattn")


def _load_mask(path: Any, root: Path | None, size: int) -> np.ndarray:
    """A binary mask at the network's input size (nearest-neighbour resize); no path: an empty mask."""
    if path is None or (isinstance(path, float) and math.isnan(path)) or str(path) == "":
        return np.zeros((size, size), dtype=bool)
    full = Path(path)
    if root is not None and not full.is_absolute():
        full = root / full
    try:
        with Image.open(full) as im:
            mask = im.convert("L").resize((size, size), Image.NEAREST)
            return np.array(mask) > 127
    except FileNotFoundError:
        raise DataError(f"mask not found: {full}") from None
    except OSError as e:
        raise DataError(f"cannot decode mask {full}: {e}") from None


def _batch_maps(trained: TrainedRun, x: torch.Tensor, layers: MapLayers) -> tuple[torch.Tensor, dict]:
    """Class probabilities and the maps (``gradcam``, ``attention``: B×H×W on the CPU) of one prepared batch."""
    with torch.no_grad():
        probs = torch.softmax(trained.network(x).float(), dim=1)
    maps = {}
    if layers.gradcam is not None:
        maps["gradcam"] = grad_cam(trained.network, x, layers.gradcam, target=probs.argmax(dim=1)).cpu()
    if layers.attention:
        maps["attention"] = attention_map(trained.network, x, layer=layers.attention_layer_arg).cpu()
    return probs, maps


def _mask_shares(maps: dict, masks: np.ndarray, labels: np.ndarray, preds: np.ndarray, ids: list) -> list:
    frames = []
    for name, m in maps.items():
        frame = mask_share_frame(m, masks, labels, image_ids=ids)
        frame.insert(2, "pred", preds)
        frame.insert(3, "map", name)
        frames.append(frame)
    return frames


def run_label(trained: TrainedRun) -> str:
    """How messages name a run: its name, else its folder's."""
    return str(trained.info.get("run_name") or trained.run_dir.resolve().name)


def explain_maps(trained: TrainedRun, items: list[dict], *, mask_field: str | None = None,
                 dataset_dir: str | None = None, gradcam_layer: str = "auto", attention_layer: str | None = "auto",
                 layers: MapLayers | None = None, n_figures: int = 16, batch_size: int = 32,
                 num_workers: int | str = "auto") -> dict[str, Any]:
    """Maps and checks for ``items`` (no files, no tracking): the computation behind :func:`explain`.

    The layers are ``layers``, else :func:`~medattn_monai.explain.map_layers.choose_map_layers`'s for
    ``gradcam_layer`` and ``attention_layer``; when a chosen grid is coarser than 7×7 one warning line names the
    run, the layers and their grids. Maps are computed batch by batch and
    only the figures' maps are kept, so memory does not grow with the split.

    Returns:
        ``{"images": DataFrame (image, label, pred, prob, spearman), "mask_share": DataFrame (one row per image and
        map: image, label, pred, map, share, area_share) or None, "figures": [(item, image, gradcam, attention,
        pred, label)], "layers": MapLayers, "gradcam_layer": str | None, "attention": bool}``.
    """
    if layers is None:
        layers = choose_map_layers(trained.network, trained.image_size, gradcam_layer, attention_layer,
                                   trained.device)
    if layers.gradcam is None and not layers.attention:
        raise ConfigError(f"{type(trained.network).__name__} has neither a Grad-CAM layer nor attention maps")
    warning = coarse_grid_warning(run_label(trained), layers)
    if warning:
        logger.warning(warning)
    root = Path(dataset_dir or trained.info.get("dataset_dir") or ".")
    prepare = PrepareBatch()
    rows, share_frames, masked_figures, other_figures = [], [], [], []
    position = 0
    for batch in split_batches(items, trained.image_size, batch_size, num_workers):
        batch_items = items[position:position + len(batch["image"])]
        position += len(batch_items)
        probs, maps = _batch_maps(trained, prepare.images(batch["image"], trained.device), layers)
        preds, labels = probs.argmax(dim=1).cpu().numpy(), batch["label"].numpy()
        ids = [item["image_id"] for item in batch_items]
        spearman = (map_rank_correlation(maps["gradcam"], maps["attention"]) if len(maps) == 2
                    else np.full(len(ids), np.nan))
        rows.append(pd.DataFrame({"image": ids, "label": labels, "pred": preds,
                                  "prob": probs.max(dim=1).values.cpu().numpy(), "spearman": spearman}))
        masks = None
        if mask_field is not None:
            masks = np.stack([_load_mask(item.get(mask_field), root, trained.image_size) for item in batch_items])
            share_frames += _mask_shares(maps, masks, labels, preds, ids)
        for i, item in enumerate(batch_items):
            target = masked_figures if masks is not None and masks[i].any() else other_figures
            if len(target) < n_figures:  # clones: a view would keep the whole batch's maps alive
                cam, att = (maps[k][i].clone() if k in maps else None for k in ("gradcam", "attention"))
                target.append((item, batch["image"][i].clone(), cam, att, int(preds[i]), int(labels[i])))
    return {
        "images": pd.concat(rows, ignore_index=True),
        "mask_share": pd.concat(share_frames, ignore_index=True) if share_frames else None,
        "figures": (masked_figures + other_figures)[:n_figures],  # with a mask, images showing the region first
        "layers": layers,
        "gradcam_layer": layers.gradcam,
        "attention": bool(layers.attention),
    }


def _share_by_class(shares: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    tables = []
    for name, frame in shares.groupby("map", sort=False):
        table = mask_share_by_class(frame, classes, overall=True)
        table.insert(0, "map", name)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def _summary(result: dict[str, Any], by_class: pd.DataFrame | None, mask_field: str | None) -> dict[str, float]:
    summary = {"n_images": float(len(result["images"]))}
    if result["gradcam_layer"] is not None and result["attention"]:
        summary["gradcam_attention_spearman"] = float(np.nanmean(result["images"]["spearman"]))
    if by_class is not None:
        for _, row in by_class[by_class["class"] == "all"].iterrows():
            summary[metric_key(row["map"], "share", mask_field)] = float(row["mean_share"])
            summary[metric_key(row["map"], "ratio", mask_field)] = float(row["ratio"])
            summary[metric_key("area_share", mask_field)] = float(row["mean_area_share"])
            summary[metric_key("n_masked", mask_field)] = float(row["n"])
    return summary


def _safe_name(image_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(str(image_id)).stem)


def _write_figures(result: dict[str, Any], out: Path, classes: list[str]) -> None:
    figures = result["figures"]
    if not figures:
        return
    layers: MapLayers = result["layers"]
    rollout = "rollout" in layers.attention_grids
    titles = {"gradcam_title": f"Grad-CAM ({layers.describe('gradcam')})" if layers.gradcam else "Grad-CAM",
              "attention_title": f"{'attention rollout' if rollout else 'attention'} ({layers.describe('attention')})",
              "attention_meaning": ROLLOUT_MEANING if rollout else ATTENTION_MEANING}
    for k, (item, image, cam, att, pred, label) in enumerate(figures):
        render_explanation(out / "images" / f"{k:03d}_{_safe_name(item['image_id'])}.png", image, cam,
                           attention=att, pred=pred, label=label, class_names=classes, **titles)
    cams = [f[2] for f in figures] if layers.gradcam is not None else None
    atts = [f[3] for f in figures] if layers.attention else None
    render_contact_sheet(out / "contact_sheet.png", [f[1] for f in figures], cams, attentions=atts,
                         preds=[f[4] for f in figures], labels=[f[5] for f in figures], class_names=classes, **titles)


def _explained_items(trained: TrainedRun, datalist: str | None, split: str, dataset_dir: str | None,
                     n_images: int | None, mask_field: str | None) -> tuple[dict[str, Any], list[dict]]:
    """The datalist and the items to explain (the split's first ``n_images``), with ``mask_field`` checked."""
    datalist_content, items = split_data(trained, datalist, split, dataset_dir)
    if n_images is not None:
        if int(n_images) < 1:
            raise DataError(f"n_images must be >= 1, got {n_images}")
        items = items[: int(n_images)]
    if mask_field is not None:
        feature_frame(items, [mask_field])  # the field exists, or an error lists the fields there are
    return datalist_content, items


def _write_outputs(result: dict[str, Any], out: Path, classes: list[str], mask_field: str | None,
                   split: str) -> dict[str, float]:
    """Write the tables, figures and ``summary.json`` of :func:`explain_maps`'s result; return the summary."""
    result["images"].to_csv(out / "images.csv", index=False)
    by_class = None
    if result["mask_share"] is not None:
        result["mask_share"].to_csv(out / "mask_share.csv", index=False)
        by_class = _share_by_class(result["mask_share"], classes)
        by_class.to_csv(out / "mask_share_by_class.csv", index=False)
    _write_figures(result, out, classes)
    summary = _summary(result, by_class, mask_field)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"explained {len(result['images'])} images of {split!r}: "
          + "  ".join(f"{k} {v:.4g}" for k, v in summary.items()))
    return summary


def _layer_params(layers: MapLayers, gradcam_layer: str, attention_layer: str | None) -> dict[str, Any]:
    """The explain run's params naming the maps' layers and grids (``8x8``), and what was asked for."""
    def grid(g: tuple[int, int] | None) -> str | None:
        return None if g is None else f"{g[0]}x{g[1]}"

    return {"gradcam_layer": layers.gradcam, "gradcam_grid": grid(layers.gradcam_grid),
            "attention_layer": ",".join(layers.attention) or None, "attention_grid": grid(layers.attention_grid),
            "gradcam_layer_requested": gradcam_layer, "attention_layer_requested": attention_layer}


def explain(run_id: str, datalist: str | None = None, split: str = "test", mask_field: str | None = None,
            n_images: int | None = None, n_figures: int = 16, gradcam_layer: str = "auto",
            attention_layer: str | None = "auto", dataset_dir: str | None = None, output_root: str = "runs",
            tracking_uri: str | None = None, output_dir: str | None = None, log_mlflow: bool = True,
            batch_size: int = 32, num_workers: int | str = "auto", device: str = "auto") -> str:
    """Explain a trained run's predictions on a split: Grad-CAM, attention maps, mask shares, agreement.

    Writes the files listed in this module's docstring (figures with a colour bar, ``images.csv``, with a mask
    field ``mask_share.csv`` and ``mask_share_by_class.csv``, ``summary.json``) to the output folder and logs
    it as artifacts of a ``run_type=explain`` MLflow run (tags ``explained_run_id``, ``analysis=maps`` and the
    explained run's design tags; params: the settings and the maps' layers and grids; metrics: the summary).
    When a map's grid is coarser than 7×7, one warning line names the run, the layer and the grid. Longer than
    60 lines because this docstring is ``medattn explain --help``: it describes every flag.

    Args:
        run_id: the explained run: its MLflow run id or its run folder.
        datalist: datalist JSON (default: the run's own).
        split: the split to explain.
        mask_field: an item field holding a region mask's path relative to ``dataset_dir`` (e.g. ``lesion_mask``,
            ``artefact_mask``); images without one count as having an empty mask.
        n_images: explain only the split's first ``n_images`` images (default: all).
        n_figures: images drawn (PNG each, and on the contact sheet).
        gradcam_layer: ``auto`` (the last stage when its grid has at least 7×7 positions, else the deepest stage
            that has), ``last`` (the last stage), or a module name such as ``layer3``.
        attention_layer: ``auto`` (the mean over the attention layers with at least 7×7 positions, else over
            those on the finest grid), ``all`` (the mean over every attention layer), or one layer's name.
        dataset_dir: folder the datalist's paths are relative to (default: the run's).
        output_root: where run folders live (to find the run by id, and for the default output folder).
        tracking_uri: MLflow store (default: the explained run's).
        output_dir: output folder (default: ``<output_root>/<experiment>/<explain run name>``).
        log_mlflow: record the explain run in MLflow.
        batch_size: images per forward/backward pass.
        num_workers: image loader processes (``auto``: none when the split fits in RAM).
        device: ``auto`` (a GPU if there is one), ``cpu``, ``cuda:0``, …

    Returns:
        The output folder.
    """
    trained = load_trained_run(run_id, output_root, tracking_uri, device)
    datalist_content, items = _explained_items(trained, datalist, split, dataset_dir, n_images, mask_field)
    layers = choose_map_layers(trained.network, trained.image_size, gradcam_layer, attention_layer, trained.device)
    run_name = explain_run_name(trained, "explain")
    experiment = trained.info.get("experiment_name") or "explain"
    out = Path(output_dir) if output_dir else Path(output_root) / experiment / run_name

    def compute() -> dict[str, float]:
        out.mkdir(parents=True, exist_ok=True)
        result = explain_maps(trained, items, mask_field=mask_field, dataset_dir=dataset_dir, layers=layers,
                              n_figures=n_figures, batch_size=batch_size, num_workers=num_workers)
        return _write_outputs(result, out, trained.classes, mask_field, split)

    if not log_mlflow:
        compute()
        return str(out)
    params = {"split": split, "datalist": datalist_content["_path"], "mask_field": mask_field,
              "n_images": n_images, "n_figures": n_figures, **_layer_params(layers, gradcam_layer, attention_layer)}
    with explain_run(trained, "maps", run_name, split, datalist_content["split_hash"], tracking_uri,
                     params) as run:
        summary = compute()
        log_metrics(run, {k: v for k, v in summary.items() if math.isfinite(v)})
        log_folder(run, out)
        print(f"logged as explain run {run_name} ({run.run_id}) in experiment {experiment!r}")
    return str(out)
