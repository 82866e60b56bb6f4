"""Deterministic preprocessing: decode an image once, at the network's size, as ``uint8`` (cacheable).

Scaling to [0, 1], normalisation and augmentation happen later, batched on the device
(``medattn_monai/data/augment.py``): per-sample float work in loader workers is what makes the usual pipeline slower
than the network. Which image files and bit depths are read, and how each is scaled to 0–255, is in ``docs/data.md``.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

__all__ = ["load_image_uint8", "LoadResizeImage", "LoadResizeImaged", "NIFTI_SUFFIXES"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
# Pillow modes of 8 bits per sample, which Image.convert turns into RGB or L as they are
EIGHT_BIT_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")
# Pillow modes of one 16-bit unsigned sample (Image.convert would clip them at 255: a near-white image)
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_TIFF_BITS_PER_SAMPLE = 258
# Image.open runs Pillow's decompression-bomb check, which only warns between MAX_IMAGE_PIXELS and twice that; the
# warning is turned into an error while opening (warnings filters are process-wide: opens are serialised)
_OPEN_LOCK = threading.Lock()


def _new_open_lock() -> None:
    # a DataLoader worker forked while a cache-filling thread held the lock would otherwise wait for it forever
    global _OPEN_LOCK  # noqa: PLW0603 - the lock guards process-wide warning filters: one per process
    _OPEN_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_open_lock)


def _open(path: str) -> Image.Image:
    """``Image.open`` with Pillow's decompression-bomb warning and error both a :class:`DataError` naming the file."""
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"image {path} is too large to decode: {e} (Pillow's limit PIL.Image.MAX_IMAGE_PIXELS)") \
            from None


def _sample_max(im: Image.Image, path: str) -> int:
    """The largest sample value of a high-bit-depth image as its file format defines it (scaled to 255)."""
    if im.mode in SIXTEEN_BIT_MODES:
        if im.format == "TIFF":  # 12-bit TIFFs open as 16-bit samples of 0..4095
            bits = im.tag_v2.get(_TIFF_BITS_PER_SAMPLE)
            bits = bits[0] if isinstance(bits, tuple) else bits
            if isinstance(bits, int) and 8 < bits <= 16:
                return 2**bits - 1
        return 65535
    if im.mode == "I" and im.format in ("PNG", "PPM"):  # 16-bit samples Pillow widened to 32 bits
        return 65535
    raise DataError(
        f"image {path} has Pillow mode {im.mode!r} ({im.format}): its intensity range is not defined by the file "
        "format (signed, 32-bit or floating-point samples); save it as an 8- or 16-bit PNG, or as NIfTI (which is "
        "min-max scaled)"
    )


def _to_eight_bit(im: Image.Image, path: str) -> Image.Image:
    """``im`` with 8-bit samples: 16-bit samples are scaled by their format's maximum, not clipped at 255."""
    if im.mode in EIGHT_BIT_MODES:
        return im
    top = _sample_max(im, path)
    arr = np.asarray(im).astype(np.float32) * (255.0 / top)
    return Image.fromarray(np.clip(arr.round(), 0, 255).astype(np.uint8), mode="L")


def _load_nifti(path: str) -> np.ndarray:
    from monai.transforms import LoadImage

    arr = np.asarray(LoadImage(image_only=True, reader="NibabelReader")(path), dtype=np.float32)
    arr = np.squeeze(arr)
    if arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4):
        raise DataError(f"NIfTI image {path} has shape {arr.shape}: expected a 2-D image (optionally with channels)")
    if not np.isfinite(arr).all():
        raise DataError(f"NIfTI image {path} has {int((~np.isfinite(arr)).sum())} NaN or infinite value(s)")
    lo, hi = float(arr.min()), float(arr.max())
    arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    # NIfTI stores (x, y); images are (row, column)
    return np.ascontiguousarray(arr[..., :3].swapaxes(0, 1)).round().astype(np.uint8)


def load_image_uint8(path: str, image_size: int | Sequence[int], channels: int = 3) -> torch.Tensor:
    """Decode ``path`` (JPEG/PNG/TIFF via Pillow, NIfTI via MONAI's nibabel reader) to ``channels×H×W`` uint8.

    JPEGs are decoded at reduced resolution when much larger than the target (Pillow's DCT scaling), then resized
    with antialiasing. 16-bit samples are scaled to 0–255 by the largest value of their bit depth (a 12-bit TIFF by
    4095); modes whose range the format does not define (signed, 32-bit, floating point) are refused. NIfTI images
    are min-max scaled. Errors name the file.
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    path = str(path)
    try:
        if path.endswith(NIFTI_SUFFIXES):
            im = Image.fromarray(_load_nifti(path))
        else:
            im = _open(path)
            if im.format == "JPEG":
                im.draft("RGB", (w, h))
            im = _to_eight_bit(im, path)
        im = im.convert("RGB" if channels == 3 else "L")
        if im.size != (w, h):
            im = im.resize((w, h), Image.BILINEAR, reducing_gap=2.0)
        arr = np.asarray(im)
    except FileNotFoundError:
        raise DataError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"cannot decode image {path}: {e}") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    # a copy: np.asarray(im) is read-only, and a one-channel transpose would still share it
    return torch.from_numpy(np.array(arr.transpose(2, 0, 1), order="C"))


class LoadResizeImage(Transform):
    """Array transform: path -> ``C×H×W`` uint8 tensor at ``image_size`` (see :func:`load_image_uint8`)."""

    def __init__(self, image_size: int | Sequence[int], channels: int = 3) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.image_size = image_size
        self.channels = channels

    def __call__(self, path: str) -> torch.Tensor:
        return load_image_uint8(path, self.image_size, self.channels)


class LoadResizeImaged(MapTransform):
    """Dictionary version of :class:`LoadResizeImage`; other keys pass through unchanged."""

    def __init__(self, keys: KeysCollection, image_size: int | Sequence[int], channels: int = 3,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadResizeImage(image_size, channels)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d
