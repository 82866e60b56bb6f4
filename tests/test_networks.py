"""Every backbone × attention variant: shapes, gradients, export, γ = 0, key layout, options and explanations."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import DenseNet121, EfficientNetBN, resnet18

from medattn_monai.errors import ConfigError
from medattn_monai.networks import NetworkSpec, build_network, count_parameters, describe_network, network_recipe
from medattn_monai.networks.attention_maps import (
    attention_received,
    attention_rollout,
    collect_attention,
    gradcam_target_layer,
)
from medattn_monai.networks.factory import variants_of
from medattn_monai.networks.nets import AttentionEfficientNetB0, AttentionResNet18
from medattn_monai.networks.scripting import export_network
from medattn_monai.networks.summary import print_model_table

IMAGE = 96  # nets are built for 96 px, so ga's tables cover both test sizes (64 and 96)
CLASSES = 3
CASES = [(b, a) for b in ("resnet18", "densenet121", "efficientnet-b0") for a in ("none", *variants_of(b))]
IDS = [f"{b}-{a}" for b, a in CASES]


def _set_gamma(net: torch.nn.Module, value: float) -> torch.nn.Module:
    for m in net.modules():
        if hasattr(m, "reset_gamma"):
            m.reset_gamma(value)
    return net


@pytest.fixture(scope="module")
def nets() -> dict:
    """One net per case, γ = 1 (so attention contributes), eval mode; shared by the tests of this module."""
    torch.manual_seed(0)
    return {case: _set_gamma(build_network(*case, num_classes=CLASSES, image_size=IMAGE), 1.0).eval() for case in CASES}


@pytest.fixture(scope="module")
def vits() -> dict:
    torch.manual_seed(0)
    return {size: build_network("vit", num_classes=CLASSES, image_size=size).eval() for size in (64, 96)}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_logits_shape(nets, case):
    with torch.no_grad():
        for size in (64, 96):
            assert nets[case](torch.randn(2, 3, size, size)).shape == (2, CLASSES)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_parameter_receives_gradient(nets, case):
    net = nets[case]
    net.zero_grad()
    net(torch.randn(2, 3, 64, 64)).square().sum().backward()
    dead = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient: {dead[:5]}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_export_reproduces_eager(nets, case):
    net, x = nets[case], torch.randn(1, 3, 64, 64)
    exported = export_network(net, x)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), net(x), atol=1e-5, rtol=1e-4)
    assert net.training is False and nets[case] is net  # the net itself is untouched


def test_vit_logits_gradients_and_export(vits):
    for size, vit in vits.items():
        x = torch.randn(2, 3, size, size)
        logits = vit(x)
        assert isinstance(logits, torch.Tensor) and logits.shape == (2, CLASSES)
        assert isinstance(vit.vit.classification_head, torch.nn.Linear)  # no Tanh
    vit = vits[64]
    vit.zero_grad()
    vit(torch.randn(2, 3, 64, 64)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vit.parameters())
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(export_network(vit, x)(x), vit(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backbone", ["resnet18", "densenet121", "efficientnet-b0"])
def test_gamma_zero_equals_plain_cnn_and_nonzero_differs(backbone):
    plain = build_network(backbone, num_classes=CLASSES, image_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = plain(x)
        for attention in ("ga", "la"):
            net = build_network(backbone, attention, num_classes=CLASSES, image_size=64).eval()
            missing, unexpected = net.load_state_dict(plain.state_dict(), strict=False)
            assert not unexpected and missing and all(".attn" in k for k in missing)
            torch.testing.assert_close(net(x), expected, atol=0, rtol=0)
            _set_gamma(net, 0.1)
            assert (net(x) - expected).abs().max() > 1e-3 * expected.abs().max()


@pytest.mark.parametrize("case", [c for c in CASES if c[1] in ("ga", "la", "se")], ids=lambda c: "-".join(c))
def test_plain_keys_are_kept_by_added_layers(nets, case):
    plain = nets[(case[0], "none")].state_dict()
    own = nets[case].state_dict()
    assert all(k in own and own[k].shape == v.shape for k, v in plain.items())
    extra = set(own) - set(plain)
    assert extra and all(".attn" in k or ".se." in k for k in extra)


def test_efficientnet_ela_strided_blocks_attend_then_pool(nets):
    from medattn_monai.networks.blocks import DepthwiseLocalAttention2d, local_attention

    net = nets[("efficientnet-b0", "ela")]
    replaced = [b for stack in net._blocks for b in stack if isinstance(b._depthwise_conv, DepthwiseLocalAttention2d)]
    assert len(replaced) == 3 + 3 + 4 + 1  # every MBConv block of stacks 3–6 (stages 3 and 4)
    assert all(b._depthwise_conv.stride == b.stride for b in replaced)
    strided = [b for b in replaced if b.stride == 2]
    assert [b._bn1.num_features for b in strided] == [240, 672]  # the first blocks of stacks 3 and 5
    dw, x = strided[0]._depthwise_conv, torch.randn(2, 240, 8, 8)
    q, k, v = dw._qkv(x)
    expected = torch.nn.functional.avg_pool2d(local_attention(q, k, v, dw.rel_pos.table).reshape(2, 240, 8, 8), 2)
    torch.testing.assert_close(dw(x), expected)


def test_plain_networks_are_monais():
    ours = {
        "resnet18": build_network("resnet18", num_classes=CLASSES),
        "densenet121": build_network("densenet121", num_classes=CLASSES),
        "efficientnet-b0": build_network("efficientnet-b0", num_classes=CLASSES),
    }
    monai = {
        "resnet18": resnet18(spatial_dims=2, conv1_t_stride=2, bias_downsample=False, num_classes=CLASSES),
        "densenet121": DenseNet121(spatial_dims=2, in_channels=3, out_channels=CLASSES),
        "efficientnet-b0": EfficientNetBN("efficientnet-b0", pretrained=False, spatial_dims=2, num_classes=CLASSES),
    }
    for name, net in ours.items():
        theirs = monai[name].state_dict()
        assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in theirs.items()}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(backbone="efficientnet-b0", attention="se"), "'se' is not a variant of efficientnet-b0"),
        (dict(backbone="efficientnet-b0", baseline="size_matched", matched_to="se"), "'se' is not a variant"),
        (dict(backbone="resnet50"), "backbone='resnet50'"),
        (dict(attention="gla"), "attention='gla'"),
        (dict(attention="la", window=6), "window=6"),
        (dict(attention="ela", window=2), "window=2"),
        (dict(attention="ga", stages=[5]), r"stages=\[5\]"),
        (dict(attention="ga", stages=[]), r"stages=\[\]"),
        (dict(attention="ga", heads=3), "heads=3|num_heads=3"),
        (dict(attention="ga", attn_ratio=0), "attn_ratio=0"),
        (dict(attention="ga", baseline="plain"), "not baselines"),
        (dict(baseline="size_matched"), "matched_to=None"),
        (dict(baseline="size_matched", matched_to="xx"), "matched_to='xx'"),
        (dict(matched_to="ga"), "needs baseline='size_matched'"),
        (dict(baseline="matched"), "baseline='matched'"),
        (dict(backbone="vit", attention="ga"), "attention='ga'"),
        (dict(backbone="vit", family="vit"), "family='vit'"),
        (dict(backbone="resnet18", family="densenet121"), "family='densenet121'"),
        (dict(image_size=100), "image_size=100"),
        (dict(num_classes=0), "num_classes=0"),
        (dict(backbone="efficientnet-b0", pretrained_path="x.pt"), "pretrained_path"),
        (dict(backbone="resnet18", pretrained_path="/nonexistent/r18.pt"), "no such file"),
    ],
)
def test_invalid_options_are_clear_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_network(**kwargs)


def test_map_larger_than_ga_table_is_a_clear_error(nets):
    with pytest.raises(ValueError, match="larger than the relative position table"):
        nets[("resnet18", "ga")](torch.randn(1, 3, 128, 128))


def test_stages_accept_json_lists_and_strings():
    a = describe_network("resnet18", "la", stages=[4, 3])
    b = describe_network("resnet18", "la", stages="3,4")
    assert a == b and a["stages"] == "3,4"
    net = build_network("resnet18", "la", stages=[2], image_size=64)
    assert hasattr(net.layer2, "attn") and not hasattr(net.layer3, "attn")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_describe_counts_what_build_builds(nets, case):
    info = describe_network(*case, num_classes=CLASSES, image_size=IMAGE)
    assert info["params_count"] == count_parameters(nets[case])
    assert info["backbone"] == case[0] and info["attention"] == case[1] and info["family"] == case[0]
    if case[1] == "none":
        assert info["baseline"] == "plain" and info["stages"] is None
    else:
        assert info["baseline"] is None and info["matched_to"] is None and info["stages"] == "3,4"


def test_describe_tags_of_baselines():
    matched = describe_network("resnet18", baseline="size_matched", matched_to="ela", image_size=64)
    assert (matched["baseline"], matched["matched_to"], matched["stages"]) == ("size_matched", "ela", "3,4")
    assert matched["width"].startswith("widen_factor=")
    vit = describe_network("vit", family="densenet121", image_size=64)
    assert (vit["baseline"], vit["family"], vit["attention"], vit["matched_to"]) == ("vit", "densenet121", "none", None)


def test_network_from_bundle_config():
    config = {
        "network_def": {
            "_target_": "medattn_monai.networks.build_network",
            "backbone": "resnet18",
            "attention": "la",
            "num_classes": 2,
            "image_size": 64,
            "stages": [3, 4],
            "heads": None,
            "window": 5,
        }
    }
    net = ConfigParser(config).get_parsed_content("network_def")
    assert net.layer4.attn.window == 5 and net(torch.randn(1, 3, 64, 64)).shape == (1, 2)


MAP_CASES = [("resnet18", "ga"), ("densenet121", "la"), ("resnet18", "ela"), ("efficientnet-b0", "ela")]


@pytest.mark.parametrize("case", MAP_CASES, ids="-".join)
def test_attention_weights_and_maps(nets, case):
    net, x = nets[case], torch.randn(2, 3, 64, 64)
    weights = collect_attention(net, x)
    received = attention_received(net, x)
    assert weights and set(weights) == set(received)
    for name, w in weights.items():
        module = net.get_submodule(name)
        assert w.shape[:2] == (2, module.heads)
        torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))
        height, width = received[name].shape[-2:]
        assert w.shape[2] == height * width
        assert w.shape[3] == (height * width if case[1] == "ga" else module.window**2)
        torch.testing.assert_close(received[name].sum((1, 2)), torch.ones(2))
    assert collect_attention(nets[(case[0], "none")], x) == {}
    net.get_submodule(gradcam_target_layer(net))


def test_attention_received_credits_the_neighbours():
    # local weights that all go to the right-hand neighbour: a map's first column receives nothing
    from medattn_monai.networks.attention_maps import _received

    weights = torch.zeros(1, 1, 4 * 5, 9)
    weights[..., 5] = 1.0  # neighbour (dy, dx) = (0, +1)
    weights[0, 0, torch.arange(4) * 5 + 4] = 0.0  # the last column has no right-hand neighbour: pays itself
    weights[0, 0, torch.arange(4) * 5 + 4, 4] = 1.0
    received = _received(weights, (4, 5), local=True)[0] * 20
    assert received[:, 0].eq(0).all() and received[:, 4].eq(2).all() and received[:, 1:4].eq(1).all()


def test_vit_attention_and_rollout(vits):
    vit, x = vits[64], torch.randn(2, 3, 64, 64)
    weights = collect_attention(vit, x)
    assert len(weights) == 12 and all(w.shape[-1] == 1 + 8 * 8 for w in weights.values())
    rollout = attention_rollout(vit, x)
    assert rollout.shape == (2, 8, 8)
    torch.testing.assert_close(rollout.sum((1, 2)), torch.ones(2))
    assert all(not blk.attn.save_attn for blk in vit.vit.blocks)  # restored
    with pytest.raises(ValueError, match="rollout"):
        gradcam_target_layer(vit)


def test_models_table(capsys):
    assert print_model_table(image_size=64, backbones="resnet18") is None
    out = capsys.readouterr().out
    for name in ("resnet18 plain", "resnet18 ga", "resnet18 size-matched to ela", "vit (sized to resnet18)"):
        assert name in out
    assert "-29.3%" in out  # ela's overhead: the attention convolutions have fewer parameters
    with pytest.raises(ConfigError, match="resnet50"):
        print_model_table(backbones="resnet50")


# the network_args a run folder of the code before NetworkSpec recorded for build_network("resnet18", "la", ...)
OLD_RUN_ARGS = {"backbone": "resnet18", "attention": "la", "num_classes": 2, "in_channels": 3, "image_size": 64,
                "stages": [3, 4], "heads": None, "attn_ratio": 4, "window": 7, "baseline": None, "matched_to": None,
                "family": None}


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(backbone="resnet18", attention="la", image_size=64, stages=(3, 4)),
        dict(backbone="densenet121", attention="ga", image_size=64, stages="4", heads=2),
        dict(backbone="efficientnet-b0", baseline="size_matched", matched_to="ela", image_size=64, stages=3),
        dict(backbone="vit", family="densenet121", image_size=64),
    ],
    ids=["tuple-stages", "string-stages", "size-matched", "vit"],
)
def test_network_args_rebuild_the_network(kwargs):
    net = build_network(**kwargs)
    recorded = json.loads(json.dumps(net.network_args))  # what run.json holds
    again = build_network(**recorded)
    assert again.network_args == recorded
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
    again.load_state_dict(net.state_dict())


def test_network_args_keep_their_format():
    assert build_network("resnet18", "la", image_size=64, stages=(3, 4)).network_args == OLD_RUN_ARGS
    assert build_network(**OLD_RUN_ARGS).layer4.attn.window == 7


def test_spec_is_normalised_once_and_refuses_unknown_keys():
    spec = NetworkSpec(attention="ga", window=3, stages="4,3")
    assert spec == NetworkSpec(attention="ga") and spec.stages == (3, 4) and spec.window == 7
    assert NetworkSpec(stages=[2], heads=4) == NetworkSpec() and NetworkSpec().baseline == "plain"
    others = (NetworkSpec("vit", family="efficientnet-b0"), NetworkSpec(baseline="size_matched", matched_to="la"))
    for same in (spec, *others):
        assert NetworkSpec(**dataclasses.asdict(same)) == same  # a spec's fields give the same spec
    assert NetworkSpec.from_mapping(dict(OLD_RUN_ARGS, pretrained_path=None)) == NetworkSpec.from_args(**OLD_RUN_ARGS)
    with pytest.raises(ConfigError, match="unknown network argument 'head' .*closest known: 'heads'"):
        NetworkSpec.from_mapping({"backbone": "resnet18", "head": 2})
    with pytest.raises(ConfigError, match="'windows' .*closest known: 'window'"):
        build_network("resnet18", "la", windows=5)
    with pytest.raises(ConfigError, match="'baseline' .*closest known"):
        AttentionResNet18(baseline="plain")  # the classes take no factory fields
    with pytest.raises(ConfigError, match="'se' is not a variant of efficientnet-b0"):
        AttentionEfficientNetB0(attention="se")


def test_signatures_are_the_spec_fields():
    fields = [f.name for f in dataclasses.fields(NetworkSpec)]
    assert list(inspect.signature(build_network).parameters) == fields + ["pretrained_path"]
    assert list(inspect.signature(describe_network).parameters) == fields + ["pretrained_path"]
    assert list(inspect.signature(network_recipe).parameters) == fields


@pytest.mark.parametrize("case", [("densenet121", "la"), ("efficientnet-b0", "ela"), ("vit", "none")], ids="-".join)
def test_meta_counts_equal_those_of_a_plain_meta_build(case):
    """meta_network skips initialisers and count_macs skips norms: neither may change a shape or a count."""
    from torch.utils.flop_counter import FlopCounterMode

    from medattn_monai.networks.meta_device import count_macs, meta_network

    cls, kwargs = network_recipe(*case, image_size=64)
    fast = meta_network(cls, kwargs)
    with torch.device("meta"):
        plain = cls(**kwargs).eval()
    shapes = [(k, v.shape, v.requires_grad) for k, v in plain.named_parameters()]
    assert [(k, v.shape, v.requires_grad) for k, v in fast.named_parameters()] == shapes
    assert {k: v.shape for k, v in fast.named_buffers()} == {k: v.shape for k, v in plain.named_buffers()}
    x = torch.empty(1, 3, 64, 64, device="meta")
    with FlopCounterMode(display=False) as counter:
        out = plain(x)
    assert count_macs(fast, x) == (counter.get_total_flops() // 2, out.shape) and fast.training
