"""Attention operators and blocks against explicit float64 references (issue 3, "Tests")."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medattn_monai.networks.blocks import (
    DepthwiseLocalAttention2d,
    GlobalSelfAttention2d,
    LocalAttentionConv2d,
    LocalSelfAttention2d,
    global_attention,
    local_attention,
    local_attention_weights,
    neighbour_offsets,
)

f64 = torch.float64


def naive_global(q, k, v, table):
    """softmax(QKᵀ/√d + B)·V with the bias looked up entry by entry; q, k, v: B×h×d×H×W."""
    b, h, d, height, width = q.shape
    n = height * width
    half_y, half_x = (table.shape[1] - 1) // 2, (table.shape[2] - 1) // 2
    bias = torch.empty(h, n, n, dtype=q.dtype)
    for i in range(n):
        for j in range(n):
            dy, dx = j // width - i // width, j % width - i % width
            bias[:, i, j] = table[:, dy + half_y, dx + half_x]
    qs, ks, vs = (t.flatten(3).transpose(-1, -2) for t in (q, k, v))
    weights = torch.softmax(qs @ ks.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
    return (weights @ vs).transpose(-1, -2).reshape(b, h, v.shape[2], height, width)


def naive_local(q, k, v, table):
    """Per-pixel loop: each query attends to the in-map positions of its k×k window."""
    b, h, d, height, width = q.shape
    r = table.shape[-1] // 2
    out = torch.zeros(b, h, v.shape[2], height, width, dtype=q.dtype)
    for y in range(height):
        for x in range(width):
            keys = [(yy, xx) for yy in range(y - r, y + r + 1) for xx in range(x - r, x + r + 1)
                    if 0 <= yy < height and 0 <= xx < width]
            ks = torch.stack([k[..., yy, xx] for yy, xx in keys], dim=-1)  # B×h×d×n
            vs = torch.stack([v[..., yy, xx] for yy, xx in keys], dim=-1)
            bias = torch.stack([table[:, yy - y + r, xx - x + r] for yy, xx in keys], dim=-1)  # h×n
            logits = (q[..., y, x].unsqueeze(-1) * ks).sum(2) / math.sqrt(d) + bias
            out[..., y, x] = (torch.softmax(logits, dim=-1).unsqueeze(2) * vs).sum(-1)
    return out


def qkv(b, h, d, height, width, dv=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (b, h, d, height, width)
    return (
        torch.randn(shape, generator=g, dtype=f64),
        torch.randn(shape, generator=g, dtype=f64),
        torch.randn((b, h, dv or d, height, width), generator=g, dtype=f64),
    )


def test_global_matches_naive_reference():
    q, k, v = qkv(2, 2, 4, 5, 6, dv=3)
    table = torch.randn(2, 2 * 6 - 1, 2 * 7 - 1, dtype=f64)  # built for maps up to 6×7: a centred sub-table is used
    torch.testing.assert_close(global_attention(q, k, v, table), naive_global(q, k, v, table), atol=1e-5, rtol=0)


def test_global_hand_computed_two_positions():
    # a 1×2 map, one head of width 1; q·k = 0 everywhere, so only the bias decides: offset +1 has bias ln 3
    q = torch.tensor([1.0, 2.0], dtype=f64).view(1, 1, 1, 1, 2)
    k = torch.zeros(1, 1, 1, 1, 2, dtype=f64)
    v = torch.tensor([4.0, 8.0], dtype=f64).view(1, 1, 1, 1, 2)
    table = torch.tensor([[[0.0, 0.0, math.log(3.0)]]], dtype=f64)  # offsets −1, 0, +1 along W
    out = global_attention(q, k, v, table).flatten()
    # query 0 sees keys at offsets 0, +1: weights 1/4, 3/4 -> 7; query 1 sees offsets −1, 0: 1/2, 1/2 -> 6
    torch.testing.assert_close(out, torch.tensor([7.0, 6.0], dtype=f64))


def test_global_layer_matches_naive_reference_float64():
    layer = GlobalSelfAttention2d(16, max_size=6, heads=2, attn_ratio=2).to(f64).eval()
    layer.reset_gamma(1.0)
    with torch.no_grad():
        layer.norm.running_mean.uniform_(-1, 1)
        layer.norm.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 16, 5, 6, dtype=f64)
    q, k, v = (t.reshape(2, 2, 4, 5, 6) for t in layer.qkv(layer.norm(x)).chunk(3, dim=1))
    expected = x + layer.proj(naive_global(q, k, v, layer.rel_pos.table).reshape(2, 8, 5, 6))
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "height, width, window, block",
    [(11, 9, 5, 3), (13, 17, 3, 4), (6, 5, 5, 8), (4, 9, 7, 2)],
    ids=["halo", "halo-3x3", "dense", "halo-thin"],
)
def test_local_matches_per_pixel_loop(height, width, window, block):
    q, k, v = qkv(1, 2, 3, height, width, dv=2)
    table = torch.randn(2, window, window, dtype=f64)
    torch.testing.assert_close(local_attention(q, k, v, table, block), naive_local(q, k, v, table), atol=1e-10, rtol=0)


def test_local_gradients_match_reference():
    q, k, v = (t.requires_grad_() for t in qkv(1, 1, 2, 9, 7, seed=1))
    table = torch.randn(1, 5, 5, dtype=f64, requires_grad=True)
    grads = torch.autograd.grad(local_attention(q, k, v, table, 3).square().sum(), (q, k, v, table))
    expected = torch.autograd.grad(naive_local(q, k, v, table).square().sum(), (q, k, v, table))
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, atol=1e-9, rtol=0)


@pytest.mark.parametrize("window", [9, 11])
def test_local_with_whole_map_window_equals_global(window):
    ga = GlobalSelfAttention2d(32, max_size=5, attn_ratio=1).to(f64).eval()
    la = LocalSelfAttention2d(32, window=window, attn_ratio=1).to(f64).eval()
    pad = (window - 9) // 2
    with torch.no_grad():
        la.load_state_dict({k: v for k, v in ga.state_dict().items() if k != "rel_pos.table"}, strict=False)
        la.rel_pos.table.copy_(F.pad(ga.rel_pos.table, [pad] * 4, value=5.0))  # offsets beyond ±4 never occur
        ga.reset_gamma(1.0)
        la.reset_gamma(1.0)
    x = torch.randn(2, 32, 5, 5, dtype=f64)
    torch.testing.assert_close(la(x), ga(x), atol=1e-10, rtol=0)


def test_local_result_does_not_depend_on_block_size():
    layer = LocalSelfAttention2d(64, window=5).eval()
    x = torch.randn(2, 64, 19, 23)
    outs = []
    for block in (2, 4, 8, 12):
        layer.block_size = block
        outs.append(layer(x))
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "layer, size",
    [
        (GlobalSelfAttention2d(32, max_size=8, attn_ratio=2), (6, 7)),
        (LocalSelfAttention2d(32, window=5, attn_ratio=2, block_size=3), (10, 9)),
        (LocalAttentionConv2d(16, 32, window=5, block_size=3), (9, 10)),
        (DepthwiseLocalAttention2d(64, window=3, stride=2, block_size=3), (9, 8)),
    ],
    ids=["ga", "la", "ela-conv", "ela-depthwise"],
)
def test_returned_weights(layer, size):
    layer = layer.to(f64).eval()
    if hasattr(layer, "reset_gamma"):
        layer.reset_gamma(1.0)
    x = torch.randn(2, layer.qkv.in_channels if hasattr(layer, "qkv") else layer.channels, *size, dtype=f64)
    out, weights = layer.forward_with_weights(x)
    height, width = size
    assert weights.shape[:3] == (2, layer.heads, height * width)
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
    # weights·V equals the fast path
    torch.testing.assert_close(out, layer(x), atol=1e-10, rtol=0)
    if isinstance(layer, GlobalSelfAttention2d):
        assert weights.shape[-1] == height * width
        return
    window = layer.window
    offsets = neighbour_offsets(window)
    ys = torch.arange(height).repeat_interleave(width)[:, None] + offsets[:, 0]
    xs = torch.arange(width).repeat(height)[:, None] + offsets[:, 1]
    outside = (ys < 0) | (ys >= height) | (xs < 0) | (xs >= width)  # HW×k²
    assert (~outside[0]).sum() == (window // 2 + 1) ** 2  # the top-left corner sees a quarter window
    assert torch.all(weights[..., outside] == 0)
    assert torch.all(weights[..., ~outside] > 0)


def test_local_weights_layout_matches_offsets():
    # one query, keys differing only in position: the weight of neighbour n must sit at neighbour_offsets[n]
    height = width = 5
    q = torch.zeros(1, 1, 1, height, width, dtype=f64)
    k = torch.zeros_like(q)
    table = torch.arange(9, dtype=f64).view(1, 3, 3)  # bias grows along (dy, dx) row-major
    weights = local_attention_weights(q, k, table)[0, 0, 2 * width + 2]  # the centre query
    expected = torch.softmax(torch.arange(9, dtype=f64), dim=0)
    torch.testing.assert_close(weights, expected)
    expected = [[-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 0], [0, 1], [1, -1], [1, 0], [1, 1]]
    assert neighbour_offsets(3).tolist() == expected


def test_depthwise_strided_equals_attend_then_pool():
    strided = DepthwiseLocalAttention2d(64, window=5, stride=2, block_size=3).to(f64)
    x = torch.randn(2, 64, 10, 12, dtype=f64)
    q, k, v = strided._qkv(x)
    expected = F.avg_pool2d(naive_local(q, k, v, strided.rel_pos.table).reshape(2, 64, 10, 12), 2)
    torch.testing.assert_close(strided(x), expected, atol=1e-10, rtol=0)
    assert strided(torch.randn(1, 64, 7, 7, dtype=f64)).shape[-2:] == (4, 4)  # ceil, as MONAI's "same" strided conv


def test_gamma_zero_is_identity_and_nonzero_is_not():
    for layer in (GlobalSelfAttention2d(32, 8), LocalSelfAttention2d(32, 5)):
        layer.eval()
        x = torch.randn(1, 32, 8, 8)
        assert torch.equal(layer(x), x)
        layer.reset_gamma(0.5)
        assert not torch.allclose(layer(x), x)


def test_padded_halo_queries_give_finite_gradients_in_bfloat16():
    layer = LocalSelfAttention2d(64, window=7, block_size=4)
    layer.reset_gamma(1.0)
    x = torch.randn(2, 64, 13, 11, requires_grad=True)  # 13 = 4·4 − 3: padded query rows whose windows lie outside
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    out.float().sum().backward()
    assert torch.isfinite(out.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: LocalSelfAttention2d(64, window=6), "window"),
        (lambda: LocalSelfAttention2d(64, window=1), "window"),
        (lambda: GlobalSelfAttention2d(64, heads=3), "heads=3"),
        (lambda: GlobalSelfAttention2d(8, attn_ratio=16), "attn_ratio"),
        (lambda: LocalAttentionConv2d(32, 48, heads=5), "heads=5"),
        (lambda: DepthwiseLocalAttention2d(64, stride=3), "stride"),
        (lambda: DepthwiseLocalAttention2d(60, heads=8), "heads=8"),
    ],
)
def test_bad_arguments_name_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_map_larger_than_bias_table_is_a_clear_error():
    layer = GlobalSelfAttention2d(32, max_size=4)
    with pytest.raises(ValueError, match=r"5x4 is larger .* up to 4x4"):
        layer(torch.randn(1, 32, 5, 4))
    layer(torch.randn(1, 32, 3, 2))  # smaller maps use the centred sub-table


def test_blocks_script_and_match_eager():
    for layer, x in [
        (GlobalSelfAttention2d(32, 6), torch.randn(1, 32, 5, 6)),
        (LocalSelfAttention2d(32, 5, block_size=3), torch.randn(1, 32, 9, 8)),
        (DepthwiseLocalAttention2d(48, 3, stride=2), torch.randn(1, 48, 8, 8)),
    ]:
        layer.eval()
        torch.testing.assert_close(torch.jit.script(layer)(x), layer(x))


@pytest.mark.parametrize("d, dv", [(15, 240), (32, 32), (6, 10)])
def test_gpu_layout_of_sdpa_gives_the_same_attention(d, dv):
    """The GPU layout (tokens copied to unit stride, widths zero-padded to multiples of 8) changes no output."""
    from medattn_monai.networks.blocks.attention_ops import _sdpa

    torch.manual_seed(0)
    q, k = (torch.randn(2, 3, d, 25, dtype=torch.float64).transpose(-1, -2) for _ in range(2))  # last-dim stride 25
    v = torch.randn(2, 3, 25, dv, dtype=torch.float64)
    mask = torch.randn(1, 3, 25, 25, dtype=torch.float64)
    mask[..., 3] = -1e30
    q.requires_grad_(True)
    plain = _sdpa(q, k, v, mask, gpu_layout=False)
    padded = _sdpa(q, k, v, mask, gpu_layout=True)
    assert padded.shape == plain.shape == (2, 3, 25, dv)
    torch.testing.assert_close(padded, plain)
    (g_plain,) = torch.autograd.grad(plain.sum(), q)
    (g_padded,) = torch.autograd.grad(padded.sum(), q)
    torch.testing.assert_close(g_padded, g_plain)
