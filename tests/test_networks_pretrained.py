"""``pretrained_path``: torchvision-layout ImageNet checkpoints into the ResNet-18 and DenseNet-121 backbones.

The checkpoints are written here from torchvision's architectures (its key names and shapes), independently of
MONAI's modules; random values stand in for ImageNet weights.
"""

from __future__ import annotations

import pytest
import torch

from medattn_monai.errors import ConfigError
from medattn_monai.networks import build_network

DENSE_KEY = "features.denseblock2.denselayer3.layers.conv2.weight"  # MONAI's name of a torchvision dense layer conv

def _bn(prefix: str, c: int) -> dict:
    return {f"{prefix}.{k}": torch.rand(c) + 0.5 for k in ("weight", "bias", "running_mean", "running_var")} | {
        f"{prefix}.num_batches_tracked": torch.tensor(0)
    }


def torchvision_resnet18() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    sd = {"conv1.weight": torch.randn(64, 3, 7, 7, generator=g) * 0.05} | _bn("bn1", 64)
    in_planes = 64
    for i, planes in enumerate((64, 128, 256, 512), start=1):
        for j in range(2):
            p = f"layer{i}.{j}"
            cin = in_planes if j == 0 else planes
            sd[f"{p}.conv1.weight"] = torch.randn(planes, cin, 3, 3, generator=g) * 0.05
            sd |= _bn(f"{p}.bn1", planes)
            sd[f"{p}.conv2.weight"] = torch.randn(planes, planes, 3, 3, generator=g) * 0.05
            sd |= _bn(f"{p}.bn2", planes)
            if j == 0 and i > 1:
                sd[f"{p}.downsample.0.weight"] = torch.randn(planes, cin, 1, 1, generator=g) * 0.05
                sd |= _bn(f"{p}.downsample.1", planes)
        in_planes = planes
    return sd | {"fc.weight": torch.randn(1000, 512, generator=g), "fc.bias": torch.zeros(1000)}


def torchvision_densenet121(old_style: bool = False) -> dict[str, torch.Tensor]:
    """torchvision's names; ``old_style`` spells dense layers' modules ``norm.1``, as the hub file does."""
    g = torch.Generator().manual_seed(2)
    sd = {"features.conv0.weight": torch.randn(64, 3, 7, 7, generator=g) * 0.05} | _bn("features.norm0", 64)
    c = 64
    for i, layers in enumerate((6, 12, 24, 16), start=1):
        for j in range(1, layers + 1):
            p = f"features.denseblock{i}.denselayer{j}"
            sep = "." if old_style else ""
            sd |= _bn(f"{p}.norm{sep}1", c)
            sd[f"{p}.conv{sep}1.weight"] = torch.randn(128, c, 1, 1, generator=g) * 0.05
            sd |= _bn(f"{p}.norm{sep}2", 128)
            sd[f"{p}.conv{sep}2.weight"] = torch.randn(32, 128, 3, 3, generator=g) * 0.05
            c += 32
        if i < 4:
            sd |= _bn(f"features.transition{i}.norm", c)
            sd[f"features.transition{i}.conv.weight"] = torch.randn(c // 2, c, 1, 1, generator=g) * 0.05
            c //= 2
    sd |= _bn("features.norm5", c)
    return sd | {"classifier.weight": torch.randn(1000, c, generator=g), "classifier.bias": torch.zeros(1000)}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ckpt")
    out = {}
    for name, sd in (
        ("resnet18", torchvision_resnet18()),
        ("densenet121", torchvision_densenet121()),
        ("densenet121-old", {"state_dict": torchvision_densenet121(old_style=True)}),
    ):
        out[name] = root / f"{name}.pth"
        torch.save(sd, out[name])
    return out


@pytest.mark.parametrize(
    "backbone, file, attentions, key, mapped",
    [
        ("resnet18", "resnet18", ("none", "ga", "ela", "se"), "layer3.1.conv1.weight", "layer3.1.conv1.weight"),
        ("densenet121", "densenet121", ("none", "ela"), "features.denseblock2.denselayer3.conv2.weight", DENSE_KEY),
        ("densenet121", "densenet121-old", ("la",), "features.denseblock2.denselayer3.conv.2.weight", DENSE_KEY),
    ],
    ids=["resnet18", "densenet121", "densenet121-hub-names"],
)
def test_checkpoint_loads_into_backbone_and_variants(files, backbone, file, attentions, key, mapped):
    state = torch.load(files[file], weights_only=True)
    state = state.get("state_dict", state)
    x = torch.rand(2, 3, 64, 64)
    for attention in attentions:
        torch.manual_seed(0)
        scratch = build_network(backbone, attention, num_classes=3, image_size=64).eval()
        torch.manual_seed(0)
        net = build_network(backbone, attention, num_classes=3, image_size=64, pretrained_path=str(files[file])).eval()
        own = net.state_dict()
        assert torch.equal(own[mapped], state[key])  # (ela replaces only stage 3–4 conv2s, not this key)
        head = "fc.weight" if backbone == "resnet18" else "class_layers.out.weight"
        assert own[head].shape[0] == 3 and torch.equal(own[head], scratch.state_dict()[head])  # head not loaded
        for name, value in scratch.state_dict().items():  # added attention keeps its initialisation
            if ".attn." in name or ".se." in name:
                assert torch.equal(own[name], value)
        with torch.no_grad():
            assert not torch.allclose(net(x), scratch(x))


def test_wrong_checkpoint_lists_missing_and_unexpected_keys(files):
    expected = r"missing keys \(100\): .*conv1.weight.*unexpected keys \(727\): .*features\.conv0"
    with pytest.raises(ConfigError, match=expected):
        build_network("resnet18", pretrained_path=str(files["densenet121"]))


def test_renamed_key_is_named(tmp_path):
    sd = torchvision_resnet18()
    sd["layer2.0.conv9.weight"] = sd.pop("layer2.0.conv1.weight")
    torch.save(sd, tmp_path / "bad.pth")
    expected = r"missing keys \(1\): layer2.0.conv1.weight; unexpected keys \(1\): layer2.0.conv9"
    with pytest.raises(ConfigError, match=expected):
        build_network("resnet18", pretrained_path=str(tmp_path / "bad.pth"))


def test_shape_mismatch_and_unreadable_files(files, tmp_path):
    with pytest.raises(ConfigError, match=r"shape mismatches \(1\): conv1.weight \(64, 3, 7, 7\)≠\(64, 1, 7, 7\)"):
        build_network("resnet18", in_channels=1, pretrained_path=str(files["resnet18"]))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a PyTorch checkpoint"):
        build_network("resnet18", pretrained_path=str(tmp_path / "junk.pth"))
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ConfigError, match="expected a state_dict"):
        build_network("resnet18", pretrained_path=str(tmp_path / "list.pth"))
    with pytest.raises(ConfigError, match="native-width"):
        build_network("resnet18", baseline="size_matched", matched_to="ela", pretrained_path=str(files["resnet18"]))
