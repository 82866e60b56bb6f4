"""Image classification dataset with batched fetching and a RAM cache of decoded images.

``cache`` chooses how decoded images are kept:

- ``"auto"`` (default): ``"ram"`` when the split's decoded images fit ``cache_budget`` (a fraction of this machine's
  RAM), else ``"stream"``.
- ``"ram"``: decode every image once (threads, with a progress bar) into one contiguous ``uint8`` tensor; a batch is
  then a single indexing operation (no loader workers needed). Decoding starts in the background when the dataset
  is built, so it overlaps the rest of the set-up (network, tracking) instead of delaying the first epoch.
- ``"stream"``: decode per item in loader workers; resident memory stays flat however large the split.
- ``"persistent"``: MONAI's ``PersistentDataset`` (decoded items cached on disk under ``cache_dir``).
- ``"monai"``: MONAI's ``CacheDataset`` (per-item cache in RAM, filled at construction).

Batches are dictionaries ``{"image": uint8 B×C×H×W, "label": int64 B, "index": int64 B}``; ``index`` is the position
in ``data`` (predictions refer back to it). With ``skip_unreadable`` (inference) an image that cannot be read is left
out of its batch, which lists it instead: ``"unreadable": [(index, message), …]``.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.data import CacheDataset, PersistentDataset
from monai.data import Dataset as MonaiDataset
from tqdm.auto import tqdm

from ..errors import DataError, error_message, find_medattn_error

__all__ = ["CACHE_MODES", "ImageClassificationDataset", "total_memory_bytes", "collate_batch"]

CACHE_MODES = ("auto", "ram", "stream", "persistent", "monai")
# seconds the interpreter's exit waits for each dataset's decoding threads to finish the image each one is decoding
_STOP_TIMEOUT = 30.0
# datasets whose RAM cache is being filled by background threads
_FILLING: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _stop_filling_threads() -> None:
    """Stop and join every cache-filling thread before the interpreter finalises.

    A daemon thread still running when the interpreter finalises is halted wherever it is; inside a PyTorch or
    Pillow call that aborts the whole process ("terminate called without an active exception", exit status 134)
    instead of the exit status the program chose (e.g. 2 for a configuration error raised while the cache fills).
    ``atexit`` functions run after the main thread is done and before daemon threads are halted.
    """
    for dataset in list(_FILLING):
        dataset.stop_fill()


def total_memory_bytes() -> int:
    """Physical memory of this machine (cgroup limit where lower)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                value = f.read().strip()
            if value.isdigit():
                total = min(total, int(value))
        except OSError:
            pass
    return total


def collate_batch(batch: Any) -> Any:
    """``collate_fn`` for a dataset whose ``__getitems__`` already returns a batch."""
    return batch


class ImageClassificationDataset(torch.utils.data.Dataset):
    """Items ``{"image": path, "label": int, ...}`` decoded by ``transform`` to fixed-size ``uint8`` images.

    Args:
        data: items of one split (absolute image paths), e.g. from :func:`medattn_monai.data.split_items`.
        transform: deterministic preprocessing of an item dict that yields ``image`` as a ``C×H×W`` uint8 tensor
            (e.g. :class:`~medattn_monai.data.LoadResizeImaged`). Random augmentation belongs in
            :class:`~medattn_monai.data.BatchAugment`, not here: cached items are decoded once.
        image_shape: ``(C, H, W)`` the transform produces (sizes the cache and the memory estimate).
        cache: one of ``auto | ram | stream | persistent | monai`` (module docstring).
        cache_budget: fraction of RAM the ``auto`` RAM cache may use.
        cache_dir: folder of the ``persistent`` cache.
        num_threads: decoding threads when filling the RAM cache (default: CPU count).
        check_files: verify at construction that every image exists (fast; the error names the first missing one).
        progress: show a progress bar while filling the RAM cache.
        name: split name used in messages.
        prefetch: start filling the RAM cache in background threads at construction (errors surface at the first
            batch, naming the image).
        skip_unreadable: leave an image that is missing or cannot be decoded out of its batch and list it in the
            batch's ``unreadable`` instead of stopping (inference: predict what can be read). Decodes per batch
            (``cache`` ``auto`` or ``stream``); a batch may then be empty.
    """

    def __init__(self, data: Sequence[dict], transform: Callable, image_shape: Sequence[int], cache: str = "auto",
                 cache_budget: float = 0.25, cache_dir: str | None = None, num_threads: int | None = None,
                 check_files: bool = True, progress: bool = True, name: str = "data", prefetch: bool = True,
                 skip_unreadable: bool = False) -> None:
        if cache not in CACHE_MODES:
            raise DataError(f"cache={cache!r} is not one of {CACHE_MODES}")
        if skip_unreadable and cache not in ("auto", "stream"):
            raise DataError(f"skip_unreadable decodes per batch: cache must be 'auto' or 'stream', not {cache!r}")
        if not data:
            raise DataError(f"split {name!r} is empty")
        self.data = [dict(item, index=item.get("index", i)) for i, item in enumerate(data)]
        self.transform = transform
        self.image_shape = tuple(int(s) for s in image_shape)
        self.name = name
        self.num_threads = num_threads or os.cpu_count() or 1
        self.progress = progress
        self.skip_unreadable = skip_unreadable
        if check_files and not skip_unreadable:
            self._check_files()
        self.bytes_needed = len(self.data) * int(torch.tensor(self.image_shape).prod())
        if cache == "auto":
            fits = self.bytes_needed <= cache_budget * total_memory_bytes()
            cache = "ram" if fits and not skip_unreadable else "stream"
        self.cache = cache
        self._images: torch.Tensor | None = None
        self._filling: tuple | None = None
        self.labels = torch.tensor([int(item.get("label", -1)) for item in self.data], dtype=torch.long)
        self.indices = torch.tensor([int(item["index"]) for item in self.data], dtype=torch.long)
        if cache == "persistent":
            if not cache_dir:
                raise DataError("cache='persistent' needs cache_dir")
            self._items = PersistentDataset(self.data, transform, cache_dir=cache_dir)
        elif cache == "monai":
            self._items = CacheDataset(self.data, transform, num_workers=self.num_threads, progress=progress)
        else:
            self._items = MonaiDataset(self.data, transform)
        if cache == "ram" and prefetch:
            self._start_fill()

    def _check_files(self) -> None:
        missing = [item["image"] for item in self.data if not os.path.isfile(item["image"])]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(f"image not found: {missing[0]}{more} in split {self.name!r}")

    def __len__(self) -> int:
        return len(self.data)

    def _decode(self, i: int) -> torch.Tensor:
        try:
            image = self._items[i]["image"]
        except Exception as e:  # MONAI wraps transform errors in RuntimeError: surface the project error
            err = find_medattn_error(e)
            if err is None:
                raise
            raise err from None
        if not isinstance(image, torch.Tensor) or tuple(image.shape) != self.image_shape or image.dtype != torch.uint8:
            got = (getattr(image, "dtype", type(image)), tuple(getattr(image, "shape", ())))
            raise DataError(
                f"preprocessing of {self.data[i]['image']} gave {got}, expected uint8 of shape {self.image_shape}"
            )
        return image

    def _start_fill(self) -> None:
        images = torch.empty((len(self.data), *self.image_shape), dtype=torch.uint8)
        pending = iter(range(len(self.data)))
        lock = threading.Lock()
        stop = threading.Event()
        errors: list[BaseException] = []
        bar = tqdm(total=len(self.data), desc=f"caching {self.name}", disable=not self.progress, leave=False,
                   mininterval=1.0)

        def work() -> None:
            while not errors and not stop.is_set():
                with lock:
                    i = next(pending, None)
                if i is None:
                    return
                try:
                    images[i] = self._decode(i)
                except BaseException as e:  # noqa: BLE001 - re-raised by fill_cache in the caller's thread
                    errors.append(e)
                    return
                bar.update(1)

        # daemon threads: a program that stops early does not wait for a cache it will not use; _FILLING's exit
        # hook stops them (each finishes the image it is decoding) before the interpreter finalises
        threads = [threading.Thread(target=work, name=f"decode-{self.name}-{k}", daemon=True)
                   for k in range(self.num_threads)]
        self._filling = (images, threads, errors, bar, stop)
        _FILLING.add(self)
        for t in threads:
            t.start()

    def stop_fill(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop filling the RAM cache: each decoding thread finishes its current image and ends (waits at most
        ``timeout`` seconds in all). A later batch starts filling again from the start."""
        filling, self._filling = self._filling, None
        _FILLING.discard(self)
        if filling is None:
            return
        _, threads, _, bar, stop = filling
        stop.set()
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        bar.close()

    def fill_cache(self) -> None:
        """Wait for the RAM cache (decoding it now if it was not started); re-raises a decoding error."""
        if self.cache != "ram" or self._images is not None:
            return
        if self._filling is None:
            self._start_fill()
        images, threads, errors, bar, _ = self._filling
        for t in threads:
            t.join()
        bar.close()
        self._filling = None
        _FILLING.discard(self)
        if errors:
            raise errors[0]
        self._images = images

    def __getstate__(self) -> dict:
        # loader workers started with "spawn" get the filled cache, not the threads filling it
        self.fill_cache()
        return self.__dict__.copy()

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        if self.cache == "ram":
            self.fill_cache()
            images = self._images[idx]
        elif self.skip_unreadable:
            return self._readable_batch(indices)
        else:
            images = torch.stack([self._decode(int(i)) for i in indices])
        return {"image": images, "label": self.labels[idx], "index": self.indices[idx]}

    def _readable_batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """The batch of the readable images of ``indices``; ``unreadable``: (index, message) of the others."""
        images, kept, unreadable = [], [], []
        for i in (int(i) for i in indices):
            try:
                images.append(self._decode(i))
                kept.append(i)
            except DataError as e:
                unreadable.append((int(self.indices[i]), error_message(e)))
        idx = torch.as_tensor(kept, dtype=torch.long)
        stacked = torch.stack(images) if images else torch.empty((0, *self.image_shape), dtype=torch.uint8)
        return {"image": stacked, "label": self.labels[idx], "index": self.indices[idx], "unreadable": unreadable}

    def __getitem__(self, i: int) -> dict[str, Any]:
        batch = self.__getitems__([i])
        if batch.get("unreadable"):  # one item has no batch to leave it out of
            raise DataError(batch["unreadable"][0][1])
        return {k: v[0] for k, v in batch.items() if k != "unreadable"}
