"""Size-matched CNNs (±5 %, width knob only) and the ViT baseline (±15 %), every parameter trained."""

from __future__ import annotations

import pytest
import torch

from medattn_monai.networks import build_network, count_parameters, describe_network
from medattn_monai.networks.factory import CNN_BACKBONES, variants_of
from medattn_monai.networks.size_matching import WIDTH_KNOBS, closest_width

IMAGE = 64
CASES = [(b, v) for b in CNN_BACKBONES for v in variants_of(b)]


def _architecture(net: torch.nn.Module) -> list[tuple[str, str]]:
    return [(name, type(m).__name__) for name, m in net.named_modules()]


def _dead_parameters(net: torch.nn.Module, size: int = IMAGE) -> list[str]:
    net.eval().zero_grad()
    net(torch.randn(2, 3, size, size)).square().sum().backward()
    return [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]


@pytest.fixture(scope="module")
def plain_nets() -> dict:
    return {b: build_network(b, image_size=IMAGE) for b in CNN_BACKBONES}


@pytest.mark.parametrize("backbone, variant", CASES, ids=[f"{b}-{v}" for b, v in CASES])
def test_size_matched_cnn(plain_nets, backbone, variant):
    target = describe_network(backbone, variant, image_size=IMAGE)["params_count"]
    info = describe_network(backbone, baseline="size_matched", matched_to=variant, image_size=IMAGE)
    net = build_network(backbone, baseline="size_matched", matched_to=variant, image_size=IMAGE)
    assert info["params_count"] == count_parameters(net)
    assert abs(info["params_count"] - target) <= 0.05 * target
    knob, value = info["width"].split("=")
    assert knob == WIDTH_KNOBS[backbone]
    plain = plain_nets[backbone]
    # only the width knob differs: the same modules, names and parameter keys as the plain backbone
    assert _architecture(net) == _architecture(plain)
    assert net.state_dict().keys() == plain.state_dict().keys()
    native = 32 if knob == "growth_rate" else 1.0  # narrower when the variant has fewer parameters than the CNN
    assert (float(value) < native) == (target < count_parameters(plain)) or float(value) == native
    assert not _dead_parameters(net)


@pytest.mark.parametrize("family", CNN_BACKBONES)
def test_vit_is_sized_to_its_family(family):
    target = describe_network(family, image_size=IMAGE)["params_count"]
    info = describe_network("vit", family=family, image_size=IMAGE)
    net = build_network("vit", family=family, image_size=IMAGE)
    assert info["params_count"] == count_parameters(net)
    assert abs(info["params_count"] - target) <= 0.15 * target
    assert info["width"] == f"hidden_size={net.vit.blocks[0].mlp.linear1.in_features}"
    assert not _dead_parameters(net)


def test_closest_width_bisects_to_the_nearest_count():
    calls = []

    def count(w):
        calls.append(w)
        return 10 * w * w

    grid = list(range(1, 101))
    assert closest_width(count, grid, 10 * 40.4**2) == (40, 16000)
    assert closest_width(count, grid, 10 * 40.6**2) == (41, 16810)
    assert closest_width(count, grid, 5) == (1, 10)
    assert closest_width(count, grid, 10**9) == (100, 100000)
    assert len(calls) < 40  # bisection, not a scan


def test_size_search_is_cached():
    from medattn_monai.networks.factory import _params

    describe_network("resnet18", baseline="size_matched", matched_to="la", image_size=IMAGE)
    before = _params.cache_info()
    describe_network("resnet18", baseline="size_matched", matched_to="la", image_size=IMAGE)
    build_network("resnet18", baseline="size_matched", matched_to="la", image_size=IMAGE)
    after = _params.cache_info()
    assert after.misses == before.misses  # nothing was counted (built) again
