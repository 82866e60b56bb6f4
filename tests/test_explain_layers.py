"""Which layers the explanation maps come from, the warning on coarse grids, and what the figures say about colours.

Untrained networks and random arrays: the layer choice depends only on the networks' grids, and the figures only
on what they are given. The maps of trained runs are in tests/test_explain_runs.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from medattn_monai.errors import ConfigError
from medattn_monai.explain import TrainedRun, choose_map_layers, coarse_grid_warning, explain_maps, map_grids, rendering
from medattn_monai.networks import build_network


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny networks on a busy machine: one intra-op thread, restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _net(backbone: str, attention: str, image_size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(backbone, attention, num_classes=3, image_size=image_size)


def test_grids_are_measured_on_the_network():
    grids = map_grids(_net("resnet18", "ga", 64), 64)
    # conv1 and the max-pool halve the input each, then layers 2-4 halve it again
    assert [grids[f"layer{k}"] for k in (1, 2, 3, 4)] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    assert grids["layer3.attn"] == (4, 4) and grids["layer4.attn"] == (2, 2)  # the map each layer attends over


def test_auto_takes_the_deepest_stage_with_at_least_7x7_positions():
    at_64 = choose_map_layers(_net("resnet18", "ga", 64), 64)
    assert (at_64.gradcam, at_64.gradcam_grid) == ("layer2", (8, 8))
    # attention sits at stages 3 and 4 only: the finest of them, not a blur of both
    assert at_64.attention == ("layer3.attn",) and at_64.attention_grid == (4, 4)
    at_128 = choose_map_layers(_net("resnet18", "la", 128), 128)
    assert (at_128.gradcam, at_128.gradcam_grid) == ("layer3", (8, 8))
    assert at_128.attention == ("layer3.attn",) and at_128.attention_grid == (8, 8)
    # where the last stage is fine enough (224 px, as the backbones were designed), auto changes nothing
    at_224 = choose_map_layers(_net("resnet18", "ga", 224), 224)
    assert (at_224.gradcam, at_224.gradcam_grid) == ("layer4", (7, 7))
    assert at_224.attention == ("layer3.attn", "layer4.attn") and at_224.attention_grid == (7, 7)


def test_last_all_and_named_layers():
    net = _net("resnet18", "ela", 64)
    layers = choose_map_layers(net, 64, gradcam_layer="last", attention_layer="all")
    assert (layers.gradcam, layers.gradcam_grid) == ("layer4", (2, 2))
    assert layers.attention == ("layer3.0.conv2", "layer3.1.conv2", "layer4.0.conv2", "layer4.1.conv2")
    assert layers.attention_grid == (2, 2)  # the coarsest of the averaged layers
    named = choose_map_layers(net, 64, gradcam_layer="layer3", attention_layer="layer4.1.conv2")
    assert (named.gradcam, named.gradcam_grid, named.attention) == ("layer3", (4, 4), ("layer4.1.conv2",))
    with pytest.raises(ConfigError, match="layer9"):
        choose_map_layers(net, 64, gradcam_layer="layer9")
    with pytest.raises(ConfigError, match="layer3.0.conv2"):  # lists the attention layers there are
        choose_map_layers(net, 64, attention_layer="layer3")
    with pytest.raises(ConfigError, match="not a spatial map"):
        choose_map_layers(net, 64, gradcam_layer="fc")


def test_networks_without_a_conv_stage_or_without_spatial_attention():
    vit = choose_map_layers(_net("vit", "none", 64), 64)
    assert vit.gradcam is None and vit.attention_grids == {"rollout": (8, 8)} and vit.attention_layer_arg is None
    se = choose_map_layers(_net("resnet18", "se", 64), 64)  # channel attention: no attention map
    assert se.gradcam == "layer2" and se.attention == ()
    with pytest.raises(ConfigError, match="no spatial attention layers"):  # asked for a map it cannot have
        choose_map_layers(_net("resnet18", "none", 64), 64, attention_layer="layer3.attn")


def test_the_warning_names_the_run_the_layers_their_grids_and_what_would_help():
    net = _net("resnet18", "ga", 64)
    line = coarse_grid_warning("resnet18-ga-s0-x", choose_map_layers(net, 64, gradcam_layer="last"))
    assert "\n" not in line
    for part in ("resnet18-ga-s0-x", "64 px", "Grad-CAM on layer4 is a 2×2 grid", "image_size 224",
                 "attention on layer3.attn is a 4×4 grid", "image_size 128"):
        assert part in line, part
    auto = coarse_grid_warning("r", choose_map_layers(net, 64))
    assert "Grad-CAM" not in auto and "layer3.attn is a 4×4 grid" in auto  # Grad-CAM's layer2 is 8×8
    assert coarse_grid_warning("r", choose_map_layers(_net("resnet18", "none", 64), 64)) is None
    assert coarse_grid_warning("r", choose_map_layers(_net("resnet18", "la", 128), 128)) is None
    # averaging layers of two grids: only the coarse one is named
    mixed = coarse_grid_warning("r", choose_map_layers(_net("resnet18", "ga", 128), 128, attention_layer="all"))
    assert "attention on layer4.attn is a 4×4 grid" in mixed and "layer3.attn" not in mixed
    rollout = coarse_grid_warning("r", choose_map_layers(_net("vit", "none", 32), 32))
    assert "attention rollout is a 4×4 grid" in rollout


def test_explain_maps_warns_once_about_a_coarse_grid(demo_data, caplog):
    from medattn_monai.data import load_datalist, split_items

    datalist = load_datalist(demo_data.datalist)
    info = {"params": {"image_size": 64}, "classes": datalist["classes"], "run_name": "resnet18-la-s0-test"}
    trained = TrainedRun(Path("."), info, _net("resnet18", "la", 64).eval(), torch.device("cpu"))
    items = split_items(datalist, "test", demo_data.dataset_dir)[:2]
    with caplog.at_level(logging.WARNING, logger="medattn"):
        result = explain_maps(trained, items, gradcam_layer="last", n_figures=1, num_workers=0)
    (line,) = [r.getMessage() for r in caplog.records if "coarse maps" in r.getMessage()]
    assert "resnet18-la-s0-test" in line and "layer4 is a 2×2 grid" in line and "layer3.attn is a 4×4" in line
    assert result["layers"].gradcam == "layer4" and result["gradcam_layer"] == "layer4"


def _colour_bars(monkeypatch, draw) -> list:
    """The colour bars of the figure ``draw`` saves, as (label, tick labels): the axes with a label, among the
    figure's and those inset in its panels (the panels have none)."""
    saved = []
    monkeypatch.setattr(rendering, "_save", lambda fig, path, dpi: saved.append(fig) or Path(path))
    draw()
    (fig,) = saved
    fig.canvas.draw()
    bars = [ax for panel in fig.axes for ax in (panel, *panel.child_axes) if ax.get_xlabel()]
    return [(bar.get_xlabel(), [t.get_text() for t in bar.get_xticklabels()]) for bar in bars]


def test_every_map_figure_has_a_colour_bar_saying_what_the_colours_mean(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    images, cams, atts = rng.random((3, 3, 32, 32)), rng.random((3, 32, 32)), rng.random((3, 32, 32))
    one = _colour_bars(monkeypatch, lambda: rendering.render_explanation(
        tmp_path / "a.png", images[0], cams[0], attention=atts[0], gradcam_title="Grad-CAM (layer2, 8×8)"))
    assert len(one) == 2  # one under each map
    (cam_label, ticks), (att_label, _) = one
    assert "Grad-CAM: evidence for the predicted class" in cam_label and "attention received" in att_label
    assert "scaled per image" in cam_label and ticks == ["0.0", "0.5", "1.0"]
    vit = _colour_bars(monkeypatch, lambda: rendering.render_explanation(
        tmp_path / "v.png", images[0], None, attention=atts[0], attention_meaning=rendering.ROLLOUT_MEANING))
    assert len(vit) == 1 and "rollout" in vit[0][0]
    (sheet,) = _colour_bars(monkeypatch, lambda: rendering.render_contact_sheet(
        tmp_path / "s.png", images, cams, attentions=atts, per_row=2))
    assert "Grad-CAM: evidence for the predicted class" in sheet[0] and "attention received" in sheet[0]
