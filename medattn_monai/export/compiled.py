"""The exported bundle's compiled network (``models/model.ts``, else ``models/model.pt2``) and its ``large_files.yml``.

The TorchScript model is made by MONAI's own ``ckpt_export`` from the bundle's configs and scripts, so the Model
Zoo's check passes by construction, and it is compared with the run's network before the bundle is written.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

__all__ = ["EXPORT_TOLERANCE", "LARGE_FILE_BYTES", "compile_network", "large_files"]

logger = logging.getLogger("medattn")

# the Model Zoo's limit per file (its contributing guide: "no larger than 25MB"); read as 10^6 bytes to be safe
LARGE_FILE_BYTES = 25_000_000
# the Model Zoo's (and the PyTorch reference's) tolerance for an exported network
EXPORT_TOLERANCE = 1e-5


@contextmanager
def _importable(folder: Path, package: str) -> Iterator[None]:
    """Make ``folder/<package>`` importable as ``package`` for a while, then forget it (no ``__pycache__`` left)."""
    def owned(name: str) -> bool:
        return name == package or name.startswith(package + ".")

    saved = {k: sys.modules.pop(k) for k in [k for k in sys.modules if owned(k)]}
    bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        sys.dont_write_bytecode = bytecode
        for k in [k for k in sys.modules if owned(k)]:
            del sys.modules[k]
        sys.modules.update(saved)
        importlib.invalidate_caches()


def _torch_export(configs: Path, models: Path, example: torch.Tensor) -> torch.nn.Module:
    """Write ``models/model.pt2`` (``torch.export``) from the bundle's ``inference.json``; returns the loaded module."""
    from monai.bundle import ConfigParser

    (models / "model.ts").unlink(missing_ok=True)
    parser = ConfigParser()
    parser.read_config(str(configs / "inference.json"))
    net = parser.get_parsed_content("network_def").eval()
    net.load_state_dict(torch.load(models / "model.pt", map_location="cpu", weights_only=True))
    program = torch.export.export(net, (example,))
    torch.export.save(program, str(models / "model.pt2"))
    return torch.export.load(str(models / "model.pt2")).module()


def compile_network(folder: Path, package: str, reference: torch.nn.Module, example: torch.Tensor) -> str:
    """Write ``models/model.ts`` with MONAI's ``ckpt_export`` (``models/model.pt2``, ``torch.export``, where
    scripting fails) from the bundle's own configs and scripts; check it against ``reference``. Returns the
    README's sentence about it.

    Raises:
        RuntimeError: the compiled network's output differs from ``reference``'s by more than
            :data:`EXPORT_TOLERANCE`.
    """
    from monai.bundle import ckpt_export

    configs, models = folder / "configs", folder / "models"
    with _importable(folder, package):
        try:
            ckpt_export(net_id="network_def", filepath=str(models / "model.ts"), ckpt_file=str(models / "model.pt"),
                        meta_file=str(configs / "metadata.json"), config_file=str(configs / "inference.json"),
                        bundle_root=str(folder))
            compiled = torch.jit.load(str(models / "model.ts"), map_location="cpu").eval()
            sentence = ("`models/model.ts` is the same network in TorchScript: `torch.jit.load(\"models/model.ts\")` "
                        "maps a normalised batch to logits.")
        except Exception as e:  # noqa: BLE001 - scripting fails in many ways; each falls back to torch.export
            logger.warning("TorchScript export failed (%s); writing a torch.export program instead", e)
            compiled = _torch_export(configs, models, example)
            sentence = (f"The network does not compile to TorchScript; `models/model.pt2` is a `torch.export` "
                        f"program (`torch.export.load(...).module()`) for batches of exactly "
                        f"{'×'.join(map(str, example.shape))}.")
        with torch.no_grad():
            error = (compiled(example) - reference(example)).abs().max().item()
    if error > EXPORT_TOLERANCE:
        raise RuntimeError(f"the exported network differs from the run's by {error:.2e} (> {EXPORT_TOLERANCE}): "
                           "an export bug, please report it")
    return sentence


def large_files(folder: Path) -> str | None:
    """The text of ``large_files.yml`` for the bundle's models over :data:`LARGE_FILE_BYTES`, or None."""
    large = sorted(p for p in (folder / "models").iterdir() if p.stat().st_size > LARGE_FILE_BYTES)
    if not large:
        return None
    lines = ["# Files over the Model Zoo's 25 MB limit. Upload each one, put its download URL below, and leave the",
             "# file itself out of the pull request (the Model Zoo's contributing guide, \"Prepare a config file for",
             "# large files\").",
             "large_files:"]
    for path in large:
        md5 = hashlib.md5(path.read_bytes()).hexdigest()
        lines += [f'  - path: "{path.relative_to(folder).as_posix()}"', '    url: ""', f'    hash_val: "{md5}"',
                  '    hash_type: "md5"']
    return "\n".join(lines) + "\n"
