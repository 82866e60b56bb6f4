"""DataLoader with the sampling, seeding and worker defaults the bundles need."""

from __future__ import annotations

import os
import random
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from monai.data import DistributedSampler

from .augment import epoch_seed
from .dataset import ImageClassificationDataset, collate_batch

__all__ = ["ImageLoader", "make_dataloader", "default_num_workers", "release_workers"]

# loaders whose persistent worker processes may be running
_WITH_WORKERS: weakref.WeakSet = weakref.WeakSet()


def default_num_workers(dataset: ImageClassificationDataset) -> int:
    """0 for a RAM-cached split (a batch is one indexing operation), else up to 4 decoding workers."""
    if getattr(dataset, "cache", None) == "ram":
        return 0
    return min(4, os.cpu_count() or 1)


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator (reseeded per epoch) + worker id; numpy and random follow
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class ImageLoader(torch.utils.data.DataLoader):
    """A DataLoader that fills a RAM cache before workers start (so they share it) and reseeds per epoch."""

    def __init__(self, *args: Any, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reseed the worker-seed generator from ``(seed, epoch)`` (the sampler has its own ``set_epoch``)."""
        self.epoch = epoch
        if self.generator is not None:
            self.generator.manual_seed(epoch_seed(self.seed, epoch, stream=2))

    def __iter__(self) -> Iterator[Any]:
        fill = getattr(self.dataset, "fill_cache", None)
        if fill is not None:
            fill()
        if self.persistent_workers:
            _WITH_WORKERS.add(self)
        return super().__iter__()

    def release_workers(self) -> None:
        """Stop this loader's persistent worker processes now; a later epoch starts new ones.

        Persistent workers live as long as the loader, and a finished workflow's loader is held in reference
        cycles (engine, handlers, config), so without this the processes stay until a garbage collection, which
        then stalls in shutting them down (56 s for the 12 idle workers of three streamed runs): a process that
        trains several runs (a search, a study, the tests) would hold idle processes and stall at random points.
        """
        iterator = self._iterator
        self._iterator = None
        _WITH_WORKERS.discard(self)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()  # what the iterator's __del__ does, now instead of at collection


def release_workers() -> int:
    """Stop the persistent workers of every loader that has some (a bundle's ``finalize`` step); returns how many
    loaders had them. Never builds a loader, so it is safe after a run that failed before its loaders existed."""
    loaders = list(_WITH_WORKERS)
    for loader in loaders:
        loader.release_workers()
    return len(loaders)


def make_dataloader(dataset: ImageClassificationDataset, batch_size: int, shuffle: bool = False, seed: int = 0,
                    num_workers: int | str = "auto", drop_last: bool = False, pin_memory: bool | str = "auto",
                    persistent_workers: bool | str = "auto", even_divisible: bool | None = None) -> ImageLoader:
    """Build the loader of one split.

    Sampling goes through a (MONAI) ``DistributedSampler`` in every case: with one process it is a seeded shuffle
    whose order depends only on ``(seed, epoch)``; under ``torchrun`` each rank reads a disjoint part (evaluation
    splits are not padded, so metrics count every sample once). MONAI's engines call its ``set_epoch``.

    Args:
        dataset: the split.
        batch_size: samples per batch (per process).
        shuffle: shuffle every epoch (training).
        seed: seed of the shuffle and of the workers.
        num_workers: loader processes, or ``"auto"`` (:func:`default_num_workers`).
        drop_last: drop the last incomplete batch (training).
        pin_memory: pin host memory for faster copies to the GPU; ``"auto"``: when CUDA is available.
        persistent_workers: keep workers alive between epochs (no process start per epoch); ``"auto"``: whenever
            there are workers. Workers only decode and resize (augmentation is batched in the main process), so
            keeping them changes no result.
        even_divisible: pad so every rank gets the same count (default: only when shuffling).
    """
    if num_workers == "auto":
        num_workers = default_num_workers(dataset)
    num_workers = int(num_workers)
    if pin_memory == "auto":
        pin_memory = torch.cuda.is_available()
    distributed = dist.is_available() and dist.is_initialized()
    sampler = DistributedSampler(
        dataset,
        even_divisible=shuffle if even_divisible is None else even_divisible,
        num_replicas=dist.get_world_size() if distributed else 1,
        rank=dist.get_rank() if distributed else 0,
        shuffle=shuffle,
        seed=seed,
        drop_last=False,
    )
    generator = torch.Generator()
    generator.manual_seed(epoch_seed(seed, 0, stream=2))
    return ImageLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_batch,
        pin_memory=bool(pin_memory),
        drop_last=drop_last,
        persistent_workers=num_workers > 0 and (persistent_workers == "auto" or bool(persistent_workers)),
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        generator=generator,
        seed=seed,
    )
