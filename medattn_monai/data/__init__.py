"""Data: datalists, converters from the public dataset formats, the demo generator, loading and augmentation."""

from __future__ import annotations

from .augment import IMAGENET_MEAN, IMAGENET_STD, BatchAugment, PrepareBatch, epoch_seed
from .datalist import SPLITS, load_datalist, save_datalist, split_hash, split_items
from .dataset import CACHE_MODES, ImageClassificationDataset, collate_batch
from .loader import ImageLoader, make_dataloader, release_workers
from .transforms import LoadResizeImage, LoadResizeImaged, load_image_uint8

__all__ = [
    "CACHE_MODES", "IMAGENET_MEAN", "IMAGENET_STD", "SPLITS", "BatchAugment", "ImageClassificationDataset",
    "ImageLoader", "LoadResizeImage", "LoadResizeImaged", "PrepareBatch", "collate_batch", "epoch_seed",
    "load_datalist", "load_image_uint8", "make_dataloader", "release_workers", "save_datalist", "split_hash",
    "split_items",
]
