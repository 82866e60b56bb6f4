"""Local explanations: Grad-CAM against MONAI's, attention rollout against a hand-written one, map checks, PNGs."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from monai.networks.nets import ViT, resnet18
from monai.visualize import GradCAM
from monai.visualize.class_activation_maps import default_normalizer

from medattn_monai.errors import ConfigError
from medattn_monai.explain import (
    attention_map,
    attention_rollout,
    grad_cam,
    has_attention_map,
    map_rank_correlation,
    mask_share,
    mask_share_by_class,
    mask_share_frame,
    normalize_maps,
    render_contact_sheet,
    render_explanation,
    upsample_maps,
)
from medattn_monai.networks import build_network, collect_attention
from medattn_monai.networks.blocks.attention_ops import neighbour_offsets


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The networks here are tiny: with intra-op threads on a busy 2-core machine, thread contention made a test
    take 30 s instead of 0.5 s. One thread for this module, restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return resnet18(spatial_dims=2, conv1_t_stride=2, bias_downsample=False, num_classes=3)


@pytest.fixture(scope="module")
def batch():
    # with this seed all 12 (image, class) maps of the untrained network have some positive evidence
    return torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------------------------------- Grad-CAM


def test_grad_cam_equals_monai_gradcam_on_the_same_layer(resnet, batch):
    """MONAI's GradCAM (hooks, its own gradient averaging) computes ReLU(sum_k mean(dy/dA_k) A_k) at the layer and
    upsamples bilinearly (align_corners=False): without post-processing the raw maps are equal. Its default
    post-processing rescales max -> 0, min -> 1 where ours maps max -> 1, so ours = 1 - MONAI's default output
    wherever the map is not constant (an all-zero map, all evidence negative, is all zeros for us)."""
    monai_cam = GradCAM(copy.deepcopy(resnet), target_layers="layer4", postprocessing=lambda m: m)
    non_trivial = 0
    for target in range(3):
        raw_monai = monai_cam(batch, class_idx=target).detach()  # B x 1 x H x W
        raw_ours = grad_cam(resnet, batch, "layer4", target=target, normalize=False)
        assert raw_ours.shape == (4, 64, 64)
        torch.testing.assert_close(raw_ours, raw_monai[:, 0], atol=1e-6, rtol=1e-4)
        ours = grad_cam(resnet, batch, "layer4", target=target)
        monai_default = default_normalizer(raw_monai)[:, 0]  # what GradCAM's default postprocessing applies
        varies = raw_ours.amax(dim=(1, 2)) > raw_ours.amin(dim=(1, 2))
        torch.testing.assert_close(ours[varies], 1.0 - monai_default[varies], atol=1e-5, rtol=0)
        assert torch.all(ours[~varies] == 0)
        non_trivial += int(varies.sum())
    assert non_trivial == 12  # every map carries signal, so the comparison means something
    assert resnet.training  # the model's mode is restored


def test_grad_cam_explains_each_images_own_target_in_a_batch(resnet, batch):
    targets = torch.tensor([0, 2, 1, 1])
    together = grad_cam(resnet, batch, "layer4", target=targets)
    for i, target in enumerate(targets.tolist()):
        alone = grad_cam(resnet, batch[i : i + 1], "layer4", target=target)
        torch.testing.assert_close(together[i], alone[0], atol=1e-5, rtol=0)
    predicted = resnet.eval()(batch).argmax(dim=1)
    resnet.train()
    torch.testing.assert_close(grad_cam(resnet, batch, "layer4"), grad_cam(resnet, batch, "layer4", target=predicted))
    maps = together.reshape(4, -1)
    assert torch.all(maps.min(dim=1).values == 0)
    assert torch.allclose(maps.max(dim=1).values, torch.ones(4))  # each map normalised to [0, 1]


def test_grad_cam_unknown_layer_names_the_children(resnet, batch):
    with pytest.raises(ConfigError, match="layer4"):
        grad_cam(resnet, batch, "layer9")


def test_normalize_maps_per_image_and_constant_maps():
    maps = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[4.0, 4.0], [4.0, 4.0]]])
    expected = torch.tensor([[[0.0, 0.5], [0.25, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(normalize_maps(maps), expected)


# ----------------------------------------------------------------------------------------- attention rollout


def _tiny_vit(classification: bool) -> ViT:
    torch.manual_seed(2)
    return ViT(in_channels=1, img_size=(32, 48), patch_size=(8, 8), hidden_size=32, mlp_dim=64, num_layers=3,
               num_heads=4, spatial_dims=2, classification=classification, save_attn=True)


def _numpy_rollout(weights) -> np.ndarray:
    """Abnar & Zuidema by hand: mean over heads, + I, rows renormalised, product from the first layer on."""
    result = None
    for w in weights:
        att = w.numpy().astype(np.float64).mean(axis=1)
        att = att + np.eye(att.shape[-1])
        att = att / att.sum(axis=-1, keepdims=True)
        result = att if result is None else np.einsum("bij,bjk->bik", att, result)
    return result


@pytest.mark.parametrize("classification", [False, True])
def test_attention_rollout_equals_a_numpy_rollout_of_the_returned_attention(classification):
    vit = _tiny_vit(classification)
    x = torch.randn(2, 1, 32, 48, generator=torch.Generator().manual_seed(3))
    weights = list(collect_attention(vit, x).values())  # the blocks' weights, first block first
    assert len(weights) == 3
    reference = _numpy_rollout(weights)
    np.testing.assert_allclose(reference.sum(axis=-1), 1.0, atol=1e-6)  # rows well-formed
    # no class token: the 4 x 6 patch tokens; mean over query rows. With one: token 0's row over tokens 1..24
    scores = reference[:, 0, 1:] if classification else reference.mean(axis=1)
    assert np.all(scores > 0)
    scores = scores / scores.sum(axis=1, keepdims=True)  # a distribution over the patches
    grid = attention_rollout(vit, x)
    assert grid.shape == (2, 4, 6)
    np.testing.assert_allclose(grid.numpy(), scores.reshape(2, 4, 6), atol=1e-6)
    # as an explanation map: relative to uniform on the patch grid, upsampled, then min-max normalised
    relative = attention_map(vit, x, upsample=False, normalize=False)
    np.testing.assert_allclose(relative.numpy(), 24 * scores.reshape(2, 4, 6), atol=1e-5)
    maps = attention_map(vit, x)
    assert maps.shape == (2, 32, 48)
    torch.testing.assert_close(maps, normalize_maps(upsample_maps(relative, (32, 48))))
    assert torch.allclose(maps.amax(dim=(1, 2)), torch.ones(2)) and torch.all(maps.amin(dim=(1, 2)) == 0)


def test_attention_rollout_works_through_a_wrapper_and_restores_the_flags():
    vit = ViT(in_channels=1, img_size=32, patch_size=8, hidden_size=32, mlp_dim=64, num_layers=2, num_heads=4,
              spatial_dims=2, save_attn=False)

    class Logits(torch.nn.Module):  # the project's ViT returns logits only; a wrapper like this one
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.head = torch.nn.Linear(32, 2)

        def forward(self, x):
            return self.head(self.inner(x)[0].mean(dim=1))

    model = Logits(vit)
    maps = attention_rollout(model, torch.randn(1, 1, 32, 32))
    assert maps.shape == (1, 4, 4)
    assert all(not block.attn.save_attn for block in vit.blocks)
    assert model.training
    with pytest.raises(ValueError, match="no monai.networks.nets.ViT"):
        attention_rollout(torch.nn.Conv2d(1, 1, 1), torch.randn(1, 1, 8, 8))


# ----------------------------------------------------------------------------- attention maps of the networks


def _received_by_hand(weights: torch.Tensor, local: bool) -> torch.Tensor:
    """docs/networks.md's layouts, aggregated with loops: the attention each position receives, mean over heads
    and queries; a local weight goes to the neighbour at ``neighbour_offsets(k)[n]`` from its query."""
    mean = weights.double().mean(dim=1)  # B x HW x keys
    b, hw, keys = mean.shape
    side = int(round(hw**0.5))
    if not local:
        return mean.mean(dim=1).reshape(b, side, side)
    received = torch.zeros(b, side, side, dtype=torch.float64)
    offsets = neighbour_offsets(int(round(keys**0.5))).tolist()
    for q in range(hw):
        y, x = divmod(q, side)
        for n, (dy, dx) in enumerate(offsets):
            if 0 <= y + dy < side and 0 <= x + dx < side:
                received[:, y + dy, x + dx] += mean[:, q, n]
            else:
                assert torch.all(mean[:, q, n] == 0)  # neighbours outside the map are masked out
    return received / hw


@pytest.mark.parametrize("attention", ["ga", "la", "ela"])
def test_attention_map_is_the_returned_attention_weights_aggregated_as_documented(attention):
    torch.manual_seed(0)
    # window 3 on the 4 x 4 (layer3) and 2 x 2 (layer4) maps of a 64-pixel input: neighbours fall off the edges
    net = build_network("resnet18", attention, num_classes=3, image_size=64, window=3).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    weights = collect_attention(net, x)
    assert len(weights) == (4 if attention == "ela" else 2)  # ela: every block of layer3 and layer4
    relative = {}
    for name, w in weights.items():
        by_hand = _received_by_hand(w, local=attention != "ga")
        torch.testing.assert_close(by_hand.sum(dim=(1, 2)), torch.ones(2, dtype=torch.float64))
        relative[name] = by_hand * by_hand[0].numel()  # 1 = what uniform attention would give
        got = attention_map(net, x, layer=name, upsample=False, normalize=False)
        torch.testing.assert_close(got.double(), relative[name], atol=1e-6, rtol=1e-5)
    combined = torch.stack([upsample_maps(m.float(), (64, 64)) for m in relative.values()]).mean(dim=0)
    torch.testing.assert_close(attention_map(net, x, normalize=False), combined, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attention_map(net, x), normalize_maps(combined), atol=1e-5, rtol=1e-5)
    assert not net.training


def test_attention_map_needs_spatial_attention():
    for attention in ("none", "se"):  # se weighs channels, not positions
        net = build_network("resnet18", attention, num_classes=2, image_size=64)
        assert not has_attention_map(net)
        with pytest.raises(ValueError, match="no spatial attention"):
            attention_map(net, torch.randn(1, 3, 64, 64))
    net = build_network("resnet18", "la", num_classes=2, image_size=64)
    with pytest.raises(ConfigError, match="layer4.attn"):
        attention_map(net, torch.randn(1, 3, 64, 64), layer="layer9")
    with pytest.raises(ValueError, match="upsample"):
        attention_map(net, torch.randn(1, 3, 64, 64), upsample=False)


# -------------------------------------------------------------------------------------------------- map checks


def test_mask_share_by_hand():
    attributions = np.array([
        [[1.0, 3.0], [0.0, 0.0]],  # 3 of 4 inside
        [[2.0, 2.0], [2.0, 2.0]],  # uniform: the share is the area share, 1/4
        [[0.0, 0.0], [0.0, 0.0]],  # no attribution: undefined
    ])
    masks = np.array([[[0, 1], [0, 0]], [[1, 0], [0, 0]], [[1, 1], [0, 0]]], dtype=bool)
    np.testing.assert_allclose(mask_share(attributions, masks), [0.75, 0.25, np.nan])
    np.testing.assert_allclose(mask_share(torch.as_tensor(attributions), torch.as_tensor(masks)), [0.75, 0.25, np.nan])
    with pytest.raises(ValueError, match="non-negative"):
        mask_share(-attributions, masks)
    with pytest.raises(ValueError, match="binary"):
        mask_share(attributions, masks * 0.5)


def test_mask_share_per_class_table(tmp_path):
    attributions = np.array([[[1.0, 3.0], [0.0, 0.0]], [[2.0, 2.0], [2.0, 2.0]], [[1.0, 1.0], [1.0, 1.0]],
                             [[5.0, 0.0], [0.0, 0.0]]])
    masks = np.array([[[0, 1], [0, 0]], [[1, 0], [0, 0]], [[1, 1], [0, 0]], [[0, 0], [0, 0]]])
    frame = mask_share_frame(attributions, masks, [0, 0, 1, 1], image_ids=["a", "b", "c", "d"])
    assert list(frame.columns) == ["image", "label", "share", "area_share"]
    np.testing.assert_allclose(frame["share"], [0.75, 0.25, 0.5, 0.0])
    np.testing.assert_allclose(frame["area_share"], [0.25, 0.25, 0.5, 0.0])
    table = mask_share_by_class(frame, class_names=["MEL", "NV"])
    # class 0: shares 0.75, 0.25 -> 0.5 over area 0.25 (ratio 2); class 1: image d has an empty mask, left out
    expected = pd.DataFrame({"label": [0, 1], "class": ["MEL", "NV"], "n": [2, 1], "mean_share": [0.5, 0.5],
                             "mean_area_share": [0.25, 0.5], "ratio": [2.0, 1.0]})
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    table.to_csv(tmp_path / "share.csv", index=False)
    assert pd.read_csv(tmp_path / "share.csv").shape == (2, 6)
    # over all classes: the three images with a mask, (0.75 + 0.25 + 0.5) / 3 over (0.25 + 0.25 + 0.5) / 3
    overall = mask_share_by_class(frame, class_names=["MEL", "NV"], overall=True)
    assert overall["class"].tolist() == ["MEL", "NV", "all"] and overall["label"].tolist() == [0, 1, -1]
    np.testing.assert_allclose(overall.iloc[2][["n", "mean_share", "mean_area_share", "ratio"]].astype(float),
                               [3, 0.5, 1 / 3, 1.5])


def test_map_rank_correlation_by_hand():
    a = np.array([[[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.0]], [[1, 1], [1, 1.0]]])
    b = np.array([[[10, 20], [30, 40.0]], [[4.0, 3.0], [2.0, 1.0]], [[1.0, 3.0], [2.0, 4.0]], [[1, 2], [3, 4.0]]])
    # identical order: 1; reversed: -1; ranks (1,3,2,4) vs (1,2,3,4): 1 - 6*2/(4*15) = 0.8; constant map: NaN
    np.testing.assert_allclose(map_rank_correlation(a, b), [1.0, -1.0, 0.8, np.nan])
    ties = map_rank_correlation(np.array([[0.0, 0.0, 1.0, 2.0]]), np.array([[1.0, 2.0, 3.0, 4.0]]))
    np.testing.assert_allclose(ties, [np.corrcoef([1.5, 1.5, 3, 4], [1, 2, 3, 4])[0, 1]])
    with pytest.raises(ValueError, match="shape"):
        map_rank_correlation(a, b[:, :1])


# ---------------------------------------------------------------------------------------------------- rendering


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_render_one_png_per_image_and_a_contact_sheet(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 3, 32, 32))
    cams = rng.random((5, 32, 32))
    attns = rng.random((5, 32, 32))
    one = render_explanation(tmp_path / "img" / "a.png", images[0], cams[0], attention=attns[0], pred=1, label=0,
                             class_names=["benign", "malignant"])
    two = render_explanation(tmp_path / "b.png", images[1, 0], cams[1])
    width3, _ = _png_size(one)
    width2, _ = _png_size(two)
    assert width3 > width2  # three panels against two
    sheet = render_contact_sheet(tmp_path / "sheet.png", torch.as_tensor(images), torch.as_tensor(cams),
                                 attentions=attns, preds=[0, 1, 0, 1, 1], labels=[0, 0, 1, 1, 0], per_row=2)
    width, height = _png_size(sheet)
    assert width > 0 and height > 0
    with pytest.raises(ValueError):
        render_contact_sheet(tmp_path / "none.png", images[:0], cams[:0])
    # a ViT has no Grad-CAM: image | rollout only
    vit_one = render_explanation(tmp_path / "vit.png", images[0], None, attention=attns[0], attention_title="rollout")
    assert _png_size(vit_one)[0] < width3
    render_contact_sheet(tmp_path / "vit_sheet.png", images, None, attentions=attns, attention_title="rollout")
    with pytest.raises(ValueError, match="nothing to draw"):
        render_explanation(tmp_path / "empty.png", images[0], None)
