"""Batched, seeded augmentation and the ``prepare_batch`` that feeds MONAI's engines.

Loader workers only decode (``uint8``); the float conversion, augmentation and normalisation run here on whole
batches on the training device, which keeps the data pipeline far ahead of the network. Random parameters are drawn
from a CPU generator reseeded at every epoch from ``(seed, epoch)``, so a resumed run augments exactly as an
uninterrupted one, on any device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "BatchAugment", "PrepareBatch", "epoch_seed"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 63-bit seed derived from ``(seed, epoch, stream)`` (distinct streams never collide in practice)."""
    x = (int(seed) * 1_000_003 + int(epoch)) * 1_000_033 + int(stream)
    # splitmix64 finaliser: nearby inputs give unrelated seeds
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 31)) >> 1


class BatchAugment:
    """Random flips, 90° rotations and mild colour jitter applied per sample to a ``B×C×H×W`` float batch in [0, 1].

    Flips and rotations together draw uniformly from the 8 symmetries of the square (a random transpose followed
    by random horizontal and vertical flips); non-square batches get flips only.

    Args:
        flips: random horizontal and vertical flips.
        rot90: random 90° rotations (square images).
        brightness: multiplicative brightness factor drawn from ``[1 - b, 1 + b]``.
        contrast: contrast factor drawn from ``[1 - c, 1 + c]`` around each image's mean grey.
        saturation: saturation factor drawn from ``[1 - s, 1 + s]`` (RGB only).
        seed: seed combined with the epoch by :meth:`set_epoch`.
    """

    def __init__(self, flips: bool = True, rot90: bool = True, brightness: float = 0.0, contrast: float = 0.0,
                 saturation: float = 0.0, seed: int = 0) -> None:
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        self.flips, self.rot90 = flips, rot90
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.seed = seed
        self.generator = torch.Generator()
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Reseed from ``(seed, epoch)``; called at every epoch start."""
        self.generator.manual_seed(epoch_seed(self.seed, epoch, stream=1))

    def _uniform(self, n: int, half_width: float) -> torch.Tensor:
        return 1 + (torch.rand(n, generator=self.generator) * 2 - 1) * half_width

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        # draw all parameters on the CPU first (fixed order), then move them: same result on any device
        coin = torch.rand(b, 3, generator=self.generator) < 0.5
        factors = torch.stack(
            [self._uniform(b, self.brightness), self._uniform(b, self.contrast), self._uniform(b, self.saturation)], 1
        )
        coin, factors = coin.to(x.device), factors.to(x.device, x.dtype)

        def where(mask: torch.Tensor, a: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
            return torch.where(mask.view(b, 1, 1, 1), a, other)

        if self.rot90 and x.shape[-1] == x.shape[-2]:
            x = where(coin[:, 0], x.transpose(-1, -2), x)
        if self.flips or self.rot90:
            x = where(coin[:, 1], x.flip(-1), x)
            x = where(coin[:, 2], x.flip(-2), x)
        if self.brightness:
            x = x * factors[:, 0].view(b, 1, 1, 1)
        if self.contrast:
            grey = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - grey) * factors[:, 1].view(b, 1, 1, 1) + grey
        if self.saturation and x.shape[1] == 3:
            grey = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
            x = (x - grey) * factors[:, 2].view(b, 1, 1, 1) + grey
        if self.brightness or self.contrast or self.saturation:
            x = x.clamp(0, 1)
        return x


class PrepareBatch:
    """MONAI ``prepare_batch``: move a ``uint8`` batch to the device, scale to [0, 1], augment, normalise.

    Args:
        mean: per-channel mean subtracted after scaling (ImageNet's by default).
        std: per-channel standard deviation divided by.
        augment: a :class:`BatchAugment` (training) or None (evaluation).
        channels_last: return the images in ``torch.channels_last`` memory format (faster convolutions on GPU).
        image_key: batch key of the images.
        label_key: batch key of the labels (absent in inference: ``None`` is returned as target).
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 augment: BatchAugment | None = None, channels_last: bool = False, image_key: str = "image",
                 label_key: str = "label") -> None:
        if len(mean) != len(std):
            raise ValueError(f"mean and std differ in length: {mean} vs {std}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.augment = augment
        self.channels_last = channels_last
        self.image_key, self.label_key = image_key, label_key

    def images(self, x: torch.Tensor, device: torch.device | str | None = None,
               non_blocking: bool = False) -> torch.Tensor:
        """The network input for a ``uint8`` (or float in [0, 1]) image batch."""
        x = x.to(device, non_blocking=non_blocking)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        if self.augment is not None:
            x = self.augment(x)
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __call__(self, batchdata: dict[str, Any], device: torch.device | str | None = None,
                 non_blocking: bool = False, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.images(batchdata[self.image_key], device, non_blocking)
        y = batchdata.get(self.label_key)
        if y is not None:
            y = torch.as_tensor(y).to(device, non_blocking=non_blocking)
        return x, y
