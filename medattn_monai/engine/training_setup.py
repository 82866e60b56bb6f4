"""Building blocks the bundle configs call: run naming and folders, optimizer, loss, device settings, tags."""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..errors import ConfigError
from ..handlers.checkpoint import LAST_CHECKPOINT
from ..handlers.checkpoint import read_run_info
from ..tracking.naming import cell_hash, git_commit, make_run_name

__all__ = [
    "locate_bundle", "run_name_for", "output_dir_for", "resume_checkpoint", "experiment_for", "make_optimizer",
    "make_loss", "amp_enabled", "amp_kwargs", "channels_last_enabled", "retain_host_memory", "training_tags",
    "check_hyper_parameters", "seed_everything", "cell_of",
]

logger = logging.getLogger("medattn")

_REPO_ROOT = Path(__file__).resolve().parents[2]


def locate_bundle(name: str) -> str:
    """Folder of bundle ``name``: ``bundles/<name>`` under the current directory or beside this package's source."""
    for base in (Path.cwd(), _REPO_ROOT):
        candidate = base / "bundles" / name
        if (candidate / "configs").is_dir():
            return str(candidate)
    raise ConfigError(f"bundle {name!r} not found under ./bundles or {_REPO_ROOT / 'bundles'}: pass --bundle_root")


def run_name_for(resume_from: str | None, backbone: str, attention: str, seed: int, run_name: str | None = None) -> str:
    """The run's name: the resumed run's, a given one, or a new unique ``<backbone>-<attention>-s<seed>-…`` name."""
    if resume_from:
        return read_run_info(resume_from)["run_name"]
    return run_name or make_run_name(backbone, attention, seed)


def output_dir_for(resume_from: str | None, output_root: str, experiment: str, run_name: str) -> str:
    """The run folder: the resumed one, else ``<output_root>/<experiment>/<run_name>``."""
    return str(resume_from) if resume_from else os.path.join(output_root, experiment, run_name)


def resume_checkpoint(resume_from: str | None) -> str | None:
    """``checkpoint_last.pt`` of the run folder being resumed, if it has one (a run killed in epoch 1 has none)."""
    if not resume_from:
        return None
    if not Path(resume_from).is_dir():
        raise ConfigError(f"resume_from={resume_from!r} is not a run folder")
    path = Path(resume_from) / LAST_CHECKPOINT
    return str(path) if path.is_file() else None


def experiment_for(dataset: str, datalist: Mapping[str, Any], experiment_name: str | None = None) -> str:
    """The experiment: given, else the dataset name, suffixed ``-demo`` for demo data."""
    if experiment_name:
        return experiment_name
    return f"{dataset}-demo" if datalist.get("demo") else dataset


def make_optimizer(network: torch.nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; biases, normalisation scales, attention γ and position-bias tables are not decayed.

    Decaying γ (initialised to 0) would pull every attention variant back towards its plain CNN. A module may
    name more parameters to exempt with a timm-style ``no_weight_decay()`` returning parameter names.
    """
    exempt: set[str] = set()
    for prefix, module in network.named_modules():
        names = getattr(module, "no_weight_decay", None)
        if callable(names):
            exempt |= {f"{prefix}.{n}" if prefix else n for n in names()}
    decay, no_decay = [], []
    for name, p in network.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name in exempt else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # on CUDA the fused kernel updates every parameter in one launch; on CPU the default measured as fast as foreach
    on_cuda = any(p.is_cuda for p in decay + no_decay)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=learning_rate, **({"fused": True} if on_cuda else {}))


def make_loss(num_classes: int, label_smoothing: float = 0.0, class_weights: str | Sequence[float] | None = None,
              train_labels: torch.Tensor | None = None, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Cross-entropy with optional class weights (a list, or ``"balanced"``: inverse training frequency)."""
    if not 0 <= label_smoothing < 1:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    weight = None
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ConfigError(f"class_weights must be null, 'balanced' or a list of {num_classes} numbers")
        counts = torch.bincount(torch.as_tensor(train_labels), minlength=num_classes).float()
        weight = counts.sum() / (num_classes * counts.clamp(min=1))
    elif class_weights is not None:
        if len(class_weights) != num_classes:
            raise ConfigError(f"class_weights has {len(class_weights)} values, expected {num_classes}")
        weight = torch.tensor([float(w) for w in class_weights])
    return torch.nn.CrossEntropyLoss(weight=None if weight is None else weight.to(device),
                                     label_smoothing=label_smoothing)


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


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and ``random`` before the network is built (its initial weights follow the seed).

    Unlike ``monai.utils.set_determinism`` this leaves cuDNN's autotuner on: CPU runs are exactly reproducible,
    GPU runs fast (see ``docs/performance.md``).
    """
    import random

    import numpy as np

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def check_hyper_parameters(epochs: int, batch_size: int, learning_rate: float, warmup_epochs: int) -> None:
    """Reject values no training can use, naming the key."""
    for key, value, ok in (
        ("epochs", epochs, isinstance(epochs, int) and epochs >= 1),
        ("batch_size", batch_size, isinstance(batch_size, int) and batch_size >= 1),
        ("learning_rate", learning_rate, isinstance(learning_rate, (int, float)) and learning_rate > 0),
        ("warmup_epochs", warmup_epochs, isinstance(warmup_epochs, int) and 0 <= warmup_epochs <= epochs),
    ):
        if not ok:
            raise ConfigError(f"bad value for {key}: {value!r}")


def cell_of(dataset: str, split_hash: str, hyper_parameters: Mapping[str, Any]) -> str:
    """The ``cell`` tag: a hash of the dataset, its split and every hyper-parameter except the seed.

    A study computes it before training (from the parsed config) to find the runs a cell already has.
    """
    return cell_hash({"dataset": dataset, "split_hash": split_hash, **dict(hyper_parameters)})


def training_tags(dataset: str, network_facts: Mapping[str, Any], seed: int, split_hash: str,
                  hyper_parameters: Mapping[str, Any], run_type: str = "train") -> dict[str, Any]:
    """The design's tags of a training run; ``cell`` hashes everything but the seed (and the split)."""
    facts = dict(network_facts)
    tags = {
        "dataset": dataset,
        "backbone": facts.get("backbone"),
        "attention": facts.get("attention"),
        "baseline": facts.get("baseline"),
        "family": facts.get("family"),
        "matched_to": facts.get("matched_to"),
        "stages": facts.get("stages"),
        "seed": int(seed),
        "params_count": int(facts["params_count"]),
        "split_hash": split_hash,
        "run_type": run_type,
        "cell": cell_of(dataset, split_hash, hyper_parameters),
        "git_commit": git_commit(),
    }
    return {k: v for k, v in tags.items() if v is not None}
