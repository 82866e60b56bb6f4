"""Loading ImageNet weights from a local torchvision checkpoint into a ResNet-18 or DenseNet-121 backbone.

Nothing is downloaded: ``pretrained_path`` names a file saved from ``torchvision.models.resnet18`` or
``densenet121`` (a state_dict, or a dict holding one under ``state_dict`` or ``model``). MONAI's ResNet (built with
``conv1_t_stride=2, bias_downsample=False``) uses torchvision's key names; DenseNet's dense layers nest their
modules under ``layers.`` and old torchvision files spell ``norm.1`` for ``norm1``: both are mapped. The ImageNet
classifier (``fc`` / ``classifier``) is never loaded, nor are the convolutions ``ela`` replaces; added attention
layers keep their initialisation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["load_pretrained", "torchvision_to_monai_keys"]

_HEADS = {"resnet18": ("fc.",), "densenet121": ("classifier.", "class_layers.out.")}
_DENSE_LAYER = re.compile(
    r"^(.*denselayer\d+)\.(norm|relu|conv)\.?([12])\.(weight|bias|running_mean|running_var|num_batches_tracked)$"
)


def torchvision_to_monai_keys(state: Mapping[str, torch.Tensor], backbone: str) -> dict[str, torch.Tensor]:
    """Rename a torchvision ``backbone`` state_dict's keys to MONAI's (identity for ResNet)."""
    if backbone != "densenet121":
        return dict(state)
    return {_DENSE_LAYER.sub(r"\1.layers.\2\3.\4", k): v for k, v in state.items()}


def _read_state(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pretrained_path={str(path)!r}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file is the user's input error
        raise ConfigError(f"pretrained_path={str(path)!r}: not a PyTorch checkpoint ({e})") from e
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"pretrained_path={str(path)!r}: expected a state_dict (a dict of tensors)")
    return obj


def _listing(keys: set[str], limit: int = 8) -> str:
    shown = sorted(keys)[:limit]
    more = f" … and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(shown) + more


def load_pretrained(
    net: nn.Module, path: str | Path, backbone: str, reference: Mapping[str, torch.Size]
) -> list[str]:
    """Copy the backbone weights of a torchvision checkpoint into ``net``.

    Args:
        net: the network (plain or an attention variant of ``backbone``).
        path: the checkpoint file.
        backbone: ``resnet18`` or ``densenet121``.
        reference: key → shape of the *plain* network with the same classes and input channels: the keys the
            file must provide (minus the classifier).

    Returns:
        the keys loaded.

    Raises:
        ConfigError: for an unreadable file, or one whose keys or shapes do not fit, listing missing and
            unexpected keys.
    """
    state = torchvision_to_monai_keys(_read_state(path), backbone)
    heads = _HEADS[backbone]
    expected = {k for k in reference if not k.startswith(heads)}
    given = {k for k in state if not k.startswith(heads)}
    missing = {k for k in expected - given if not k.endswith("num_batches_tracked")}  # older files lack them
    unexpected = given - expected
    wrong = {
        f"{k} {tuple(state[k].shape)}≠{tuple(reference[k])}" for k in expected & given if state[k].shape != reference[k]
    }
    if missing or unexpected or wrong:
        parts = [f"missing keys ({len(missing)}): {_listing(missing)}" if missing else "",
                 f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}" if unexpected else "",
                 f"shape mismatches ({len(wrong)}): {_listing(wrong)}" if wrong else ""]
        raise ConfigError(
            f"pretrained_path={str(path)!r} is not a torchvision {backbone} checkpoint for this network: "
            + "; ".join(p for p in parts if p)
        )
    own = net.state_dict()
    loadable = {k: state[k] for k in expected & given if k in own}  # ela's replaced convolutions are skipped
    net.load_state_dict(loadable, strict=False)
    return sorted(loadable)
