"""Device settings of a training: mixed precision, memory format, and how the C allocator keeps host memory."""

from __future__ import annotations

import ctypes
import logging
import platform
import sys

import torch

from ..errors import ConfigError

__all__ = ["amp_enabled", "amp_kwargs", "channels_last_enabled", "retain_host_memory"]

logger = logging.getLogger("medattn")


def amp_enabled(amp: bool | str, device: torch.device | str) -> bool:
    """``amp: auto`` means mixed precision on CUDA, full precision on CPU (MONAI's engines autocast CUDA only)."""
    if amp == "auto":
        return torch.device(device).type == "cuda"
    if amp and torch.device(device).type != "cuda":
        raise ConfigError("amp=true needs a CUDA device (set amp to auto or false on CPU)")
    return bool(amp)


def amp_kwargs(device: torch.device | str) -> dict:
    """bfloat16 where the GPU supports it (no loss scaling needed), else float16."""
    if torch.device(device).type == "cuda" and torch.cuda.is_bf16_supported():
        return {"dtype": torch.bfloat16}
    return {"dtype": torch.float16}


def channels_last_enabled(channels_last: bool | str, device: torch.device | str) -> bool:
    """``channels_last: auto`` means on for CUDA (tensor-core convolutions), off on CPU."""
    if channels_last == "auto":
        return torch.device(device).type == "cuda"
    return bool(channels_last)


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def retain_host_memory(setting: bool | str, device: torch.device | str) -> bool:
    """Let the C allocator keep the memory a training step frees, so the next step reuses it without page faults.

    PyTorch allocates CPU tensors with ``malloc``. glibc serves blocks above its mmap threshold (at most 32 MiB,
    adjusted as the process runs) with fresh ``mmap`` calls and returns them on ``free``, and trims the heap's
    free top, so on CPU each step's large activations are page-faulted and zero-filled again: DenseNet-121 at
    224 px, batch 32, took 1.6 million page faults and 7.1 s per step against 0.2 million and 5.2 s once memory
    is kept (``benchmarks/host_memory.py``: fresh processes, 2 cores). This raises the mmap threshold to 1 GiB
    and switches trimming off for the rest of the process: the process keeps its peak memory for reuse, as
    PyTorch's CUDA allocator does on the GPU.

    ``setting``: ``"auto"`` (on when training on the CPU), ``True`` or ``False``. Returns whether it is in effect
    (only on Linux with glibc; elsewhere the allocator is left alone).
    """
    if setting == "auto":
        setting = torch.device(device).type == "cpu"
    elif not isinstance(setting, bool):
        raise ConfigError(f"retain_host_memory must be auto, true or false, got {setting!r}")
    if not setting:
        return False
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        logger.info("retain_host_memory: the C library is not glibc; the allocator is left as it is")
        return False
    libc = ctypes.CDLL(None)  # the process's own C library
    # -1 as a size means "never trim"; the threshold disables glibc's own (at most 32 MiB) adjustment
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(_M_TRIM_THRESHOLD, -1))
