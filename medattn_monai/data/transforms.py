"""Deterministic preprocessing: decode an image once, at the network's size, as ``uint8`` (cacheable).

Scaling to [0, 1], normalisation and augmentation happen later, batched on the device (``data/augment.py``):
per-sample float work in loader workers is what makes the usual pipeline slower than the network.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

__all__ = ["load_image_uint8", "LoadResizeImage", "LoadResizeImaged", "NIFTI_SUFFIXES"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _load_nifti(path: str) -> np.ndarray:
    from monai.transforms import LoadImage

    arr = np.asarray(LoadImage(image_only=True, reader="NibabelReader")(path), dtype=np.float32)
    arr = np.squeeze(arr)
    if arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4):
        raise DataError(f"NIfTI image {path} has shape {arr.shape}: expected a 2-D image (optionally with channels)")
    lo, hi = float(arr.min()), float(arr.max())
    arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    # NIfTI stores (x, y); images are (row, column)
    return np.ascontiguousarray(arr[..., :3].swapaxes(0, 1)).round().astype(np.uint8)


def load_image_uint8(path: str, image_size: int | Sequence[int], channels: int = 3) -> torch.Tensor:
    """Decode ``path`` (JPEG/PNG/TIFF via Pillow, NIfTI via MONAI's nibabel reader) to ``channels×H×W`` uint8.

    JPEGs are decoded at reduced resolution when much larger than the target (Pillow's DCT scaling), then resized
    with antialiasing. Errors name the file.
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    path = str(path)
    try:
        if path.endswith(NIFTI_SUFFIXES):
            im = Image.fromarray(_load_nifti(path))
        else:
            im = Image.open(path)
            if im.format == "JPEG":
                im.draft("RGB", (w, h))
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
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


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
