"""The attention operators on feature maps, as functions: global and local (windowed) 2-D self-attention.

Tensors are per-head feature maps: ``q, k: B×heads×d×H×W`` and ``v: B×heads×dv×H×W`` (``dv`` may differ from
``d``); outputs are ``B×heads×dv×H×W``. Logits are scaled by ``d^-1/2`` and biased by a learned relative position
table (:mod:`.relative_position`):

    global:  out_i = Σ_j softmax_j(q_i·k_j / √d + B[y_j − y_i, x_j − x_i]) v_j           over all H·W keys j
    local:   out_i = Σ_{j ∈ N_k(i)} softmax_j(q_i·k_j / √d + B[y_j − y_i, x_j − x_i]) v_j  over N_k(i), the keys of
             the k×k window around i that lie inside the map (SASA, Ramachandran et al. 2019, arXiv 1906.05909):
             positions outside the map are masked out, never zero-padded keys.

Fast paths (used by ``forward``) run through :func:`torch.nn.functional.scaled_dot_product_attention` with the bias
as a float mask, which selects fused kernels on GPU (and the fused flash kernel on CPU):

- global: one ``HW × HW`` bias per head, broadcast over the batch.
- local on small maps (both sides <= 2·``block_size``, or a window that covers the whole map): the same dense
  form, with out-of-window logits masked. Cheaper there than blocking; memory is bounded because the map is.
- local on larger maps: *halo blocks* (HaloNet, Vaswani et al. 2021, arXiv 2103.12731). The map is cut into
  ``b×b`` query blocks; each attends to its ``(b + 2r)²`` halo (``r = k // 2``) with logits outside each query's
  window or outside the map masked. Memory is O(H·W·(b + 2r)²) = O(H·W·k²) for ``b ~ k``: never an ``HW × HW`` matrix.

Masks are built in the query dtype with a large finite negative (:func:`mask_value`) rather than ``-inf``, so that
padded queries (whose whole window may lie outside the map) give finite, discarded rows instead of NaN gradients;
masked weights still underflow to exactly 0.

The slow paths (``*_attention_weights`` and ``apply_*_weights``) compute the softmax explicitly and return the
attention weights, for explanations and tests:

- global weights: ``B×heads×HW×HW``, query ``i`` and key ``j`` in row-major order (``i = y·W + x``).
- local weights: ``B×heads×HW×k²``; neighbour ``n`` of query ``(y, x)`` is the position
  ``(y + dy, x + dx)`` with ``(dy, dx) = neighbour_offsets(k)[n]`` (row-major over ``dy, dx ∈ [−r, r]``);
  neighbours outside the map have weight exactly 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .relative_position import gather_relative_bias, pairwise_offsets

__all__ = [
    "apply_global_weights",
    "apply_local_weights",
    "check_window",
    "global_attention",
    "global_attention_weights",
    "local_attention",
    "local_attention_weights",
    "mask_value",
    "neighbour_offsets",
    "resolve_heads",
]


def resolve_heads(dim: int, heads: int | None, dim_head: int = 32, divides: int | None = None) -> int:
    """Number of heads for an attention of width ``dim``: ``heads``, or ``max(1, dim // dim_head)`` by default.

    Args:
        dim: the width split into heads (query/key channels).
        heads: the requested number of heads, or None for the default.
        dim_head: default head width.
        divides: another width the heads must divide too (the values' channels, when they differ from ``dim``).
            The default shrinks until it divides both; a requested number must.

    Raises:
        ValueError: when the requested ``heads`` is < 1 or does not divide ``dim`` (and ``divides``).
    """
    others = [dim] if divides is None else [dim, divides]
    if heads is None:
        default = max(1, dim // dim_head)
        while any(o % default for o in others):
            default -= 1
        return default
    if heads < 1 or any(o % heads for o in others):
        raise ValueError(f"heads={heads} must be >= 1 and divide the attention width(s) {others}.")
    return int(heads)


def check_window(window: int) -> int:
    """Validate a local window size: odd and at least 3 (a centred k×k neighbourhood); the one place of this rule."""
    if not isinstance(window, int) or isinstance(window, bool) or window < 3 or window % 2 == 0:
        raise ValueError(f"window={window!r}: expected an odd int >= 3 (a centred k×k neighbourhood)")
    return window


def neighbour_offsets(window: int, device: torch.device | None = None) -> torch.Tensor:
    """``k² × 2`` integer offsets ``(dy, dx)`` of the local neighbours, in the order of the local weights' last dim."""
    r = window // 2
    steps = torch.arange(-r, r + 1, device=device)
    return torch.stack([steps.repeat_interleave(window), steps.repeat(window)], dim=1)


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
          gpu_layout: bool | None = None) -> torch.Tensor:
    """SDPA with a float bias mask, in the layout GPU's fused kernels accept, left out of ``torch.compile`` graphs.

    On a GPU (``gpu_layout`` defaults to "not CPU") the fused kernels need unit stride in the last dimension and the
    memory-efficient one (the fused kernel that takes a float mask) head widths divisible by 8; otherwise SDPA falls
    back to its unfused math path. So tokens are made contiguous, and odd widths (EfficientNet-B0's space-only
    attention) are zero-padded: padded query/key channels add 0 to every logit (the scale stays ``d^-1/2`` of the
    true width), padded value channels are sliced off. CPU kernels take any layout, so nothing is copied there.

    SDPA is one fused kernel already, so compiling it gains nothing; and inductor re-lays-out the broadcast bias for
    the memory-efficient kernel's backward with a non-contiguous last dimension, which that kernel rejects
    ("(*bias): last dimension must be contiguous", torch 2.11 on an H200). The convolutions around it still compile.
    """
    if torch.jit.is_scripting():
        return _sdpa_layout(q, k, v, mask, gpu_layout)
    return _sdpa_uncompiled(q, k, v, mask, gpu_layout)


def _sdpa_layout(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                 gpu_layout: bool | None) -> torch.Tensor:
    if gpu_layout is None:
        gpu_layout = q.device.type != "cpu"
    if not gpu_layout:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    d, dv = q.shape[-1], v.shape[-1]
    pad_d, pad_v = -d % 8, -dv % 8
    q, k, v = F.pad(q, (0, pad_d)), F.pad(k, (0, pad_d)), F.pad(v, (0, pad_v))  # also copies into unit stride
    out = F.scaled_dot_product_attention(q.contiguous(), k.contiguous(), v.contiguous(), attn_mask=mask.contiguous(),
                                         scale=d**-0.5)
    return out[..., :dv] if pad_v else out


@torch.jit.unused
@torch.compiler.disable
def _sdpa_uncompiled(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                     gpu_layout: bool | None) -> torch.Tensor:
    return _sdpa_layout(q, k, v, mask, gpu_layout)


def _to_tokens(t: torch.Tensor) -> torch.Tensor:
    """``B×h×d×H×W`` -> ``B×h×HW×d``."""
    return t.flatten(3).transpose(-1, -2)


def _attend_dense(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SDPA over all positions of the map with a float ``mask`` broadcastable to ``B×h×HW×HW``."""
    b, h, _, height, width = q.shape
    out = _sdpa(_to_tokens(q), _to_tokens(k), _to_tokens(v), mask)
    return out.transpose(-1, -2).reshape(b, h, v.shape[2], height, width)


def _global_bias(table: torch.Tensor, height: int, width: int, device: torch.device) -> torch.Tensor:
    half_y = (table.shape[1] - 1) // 2
    half_x = (table.shape[2] - 1) // 2
    if height - 1 > half_y or width - 1 > half_x:
        raise ValueError(
            f"feature map {height}x{width} is larger than the relative position table "
            f"(built for maps up to {half_y + 1}x{half_x + 1}: raise image_size)."
        )
    dy, dx = pairwise_offsets(height, width, device)
    return gather_relative_bias(table, dy, dx)


def global_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Global self-attention with relative position bias (fast path).

    Args:
        q: ``B×h×d×H×W``.
        k: ``B×h×d×H×W``.
        v: ``B×h×dv×H×W``.
        table: ``h×(2·Dy + 1)×(2·Dx + 1)`` with ``Dy >= H − 1``, ``Dx >= W − 1``.

    Returns:
        ``B×h×dv×H×W``.

    Raises:
        ValueError: when the map is larger than the table covers.
    """
    bias = _global_bias(table, q.shape[-2], q.shape[-1], q.device)
    return _attend_dense(q, k, v, bias.to(q.dtype).unsqueeze(0))


def global_attention_weights(q: torch.Tensor, k: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Explicit global attention weights ``B×h×HW×HW`` (slow path; rows sum to 1)."""
    bias = _global_bias(table, q.shape[-2], q.shape[-1], q.device)
    logits = torch.einsum("bhdn,bhdm->bhnm", q.flatten(3), k.flatten(3)) * q.shape[2] ** -0.5
    return (logits + bias.to(logits.dtype)).softmax(dim=-1)


def apply_global_weights(weights: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``weights`` (``B×h×HW×HW``) applied to ``v`` (``B×h×dv×H×W``): ``B×h×dv×H×W``."""
    out = torch.einsum("bhnm,bhdm->bhdn", weights, v.flatten(3))
    return out.reshape(v.shape)


def mask_value(dtype: torch.dtype) -> float:
    """The logit added at masked positions: finite in ``dtype`` even after adding a logit (fp16 max is 65504)."""
    if dtype == torch.float16:
        return -3.0e4
    return -1.0e30


def _window_bias(table: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Bias of offsets ``(dy, dx)`` with offsets outside the table's window masked (:func:`mask_value`)."""
    r = (table.shape[-1] - 1) // 2
    outside = (dy.abs() > r) | (dx.abs() > r)
    return gather_relative_bias(table, dy, dx).to(dtype).masked_fill(outside, mask_value(dtype))


def _halo_blocks(t: torch.Tensor, r: int, block: int, pad_h: int, pad_w: int) -> torch.Tensor:
    """``B×h×d×H×W`` -> ``B×(nb·h)×(b + 2r)²×d``: each block's keys including its halo (zero-padded, masked later)."""
    b, h, d, height, width = t.shape
    size = block + 2 * r
    padded = F.pad(t.reshape(b, h * d, height, width), [r, pad_w + r, r, pad_h + r])
    n_y = (height + pad_h) // block
    n_x = (width + pad_w) // block
    steps = torch.arange(size, device=t.device)
    rows = torch.arange(n_y, device=t.device)[:, None] * block + steps[None, :]  # n_y×K padded rows per block
    cols = torch.arange(n_x, device=t.device)[:, None] * block + steps[None, :]
    index = (rows[:, None, :, None] * padded.shape[-1] + cols[None, :, None, :]).reshape(-1)  # n_y×n_x×K×K
    # a gather over positions with channels last: rows of h·d contiguous values, and an index_add backward
    # (twice as fast on CPU as Tensor.unfold, whose backward is a generic kernel)
    gathered = padded.flatten(2).transpose(1, 2).index_select(1, index)  # B×(nb·K²)×hd
    return gathered.reshape(b, n_y * n_x, size * size, h, d).transpose(2, 3).reshape(b, n_y * n_x * h, size * size, d)


def _halo_mask(
    table: torch.Tensor, height: int, width: int, block: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Float mask ``(nb·h)×b²×(b + 2r)²``: relative bias inside each query's window, masked elsewhere."""
    heads, window = table.shape[0], table.shape[-1]
    r = window // 2
    size = block + 2 * r
    n_y = (height + block - 1) // block
    n_x = (width + block - 1) // block
    key_pos = torch.arange(size, device=device) - r  # key position relative to the block's first query
    rel = key_pos[None, :] - torch.arange(block, device=device)[:, None]  # b×K: key − query, along one axis
    dy = rel[:, None, :, None].expand(block, block, size, size)
    dx = rel[None, :, None, :].expand(block, block, size, size)
    bias = _window_bias(table, dy, dx, dtype).reshape(heads, block * block, size * size)
    rows = torch.arange(n_y, device=device)[:, None] * block + key_pos[None, :]  # n_y×K absolute key rows
    cols = torch.arange(n_x, device=device)[:, None] * block + key_pos[None, :]
    row_in = (rows >= 0) & (rows < height)
    col_in = (cols >= 0) & (cols < width)
    inside = (row_in[:, None, :, None] & col_in[None, :, None, :]).reshape(n_y * n_x, 1, 1, size * size)
    mask = bias.unsqueeze(0).masked_fill(~inside, mask_value(dtype))  # nb×h×b²×K²
    return mask.reshape(n_y * n_x * heads, block * block, size * size)


def _halo_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor, block: int) -> torch.Tensor:
    b, h, d, height, width = q.shape
    dv = v.shape[2]
    r = table.shape[-1] // 2
    n_y = (height + block - 1) // block
    n_x = (width + block - 1) // block
    pad_h = n_y * block - height
    pad_w = n_x * block - width
    # queries: B×h×d×H×W -> B×(nb·h)×b²×d, blocks major and heads minor, matching the mask's layout
    qb = F.pad(q.reshape(b, h * d, height, width), [0, pad_w, 0, pad_h])
    qb = qb.reshape(b, h, d, n_y, block, n_x, block).permute(0, 3, 5, 1, 4, 6, 2)
    qb = qb.reshape(b, n_y * n_x * h, block * block, d)
    kb = _halo_blocks(k, r, block, pad_h, pad_w)
    vb = _halo_blocks(v, r, block, pad_h, pad_w)
    mask = _halo_mask(table, height, width, block, q.dtype, q.device)
    out = _sdpa(qb, kb, vb, mask.unsqueeze(0))  # B×(nb·h)×b²×dv
    out = out.reshape(b, n_y, n_x, h, block, block, dv).permute(0, 3, 6, 1, 4, 2, 5)
    return out.reshape(b, h, dv, n_y * block, n_x * block)[:, :, :, :height, :width]


def local_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor, block_size: int = 8
) -> torch.Tensor:
    """Local (k×k window) self-attention with relative position bias (fast path).

    Args:
        q: ``B×h×d×H×W``.
        k: ``B×h×d×H×W``.
        v: ``B×h×dv×H×W``.
        table: ``h×k×k`` relative position bias; its size is the window ``k`` (odd).
        block_size: query block side ``b`` of the halo path (maps with a side > 2·b).

    Returns:
        ``B×h×dv×H×W``.
    """
    height, width = q.shape[-2], q.shape[-1]
    r = table.shape[-1] // 2
    if (height <= 2 * block_size and width <= 2 * block_size) or r >= max(height, width) - 1:
        dy, dx = pairwise_offsets(height, width, q.device)
        return _attend_dense(q, k, v, _window_bias(table, dy, dx, q.dtype).unsqueeze(0))
    return _halo_attention(q, k, v, table, block_size)


def _unfold_neighbours(t: torch.Tensor, window: int) -> torch.Tensor:
    """``B×h×d×H×W`` -> ``B×h×d×k²×HW`` (zeros outside the map; they are masked or weighted 0)."""
    b, h, d, height, width = t.shape
    cols = F.unfold(t.reshape(b, h * d, height, width), window, padding=window // 2)
    return cols.reshape(b, h, d, window * window, height * width)


def local_attention_weights(q: torch.Tensor, k: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Explicit local attention weights ``B×h×HW×k²`` (slow path; rows sum to 1, outside neighbours are 0)."""
    window = table.shape[-1]
    height, width = q.shape[-2], q.shape[-1]
    logits = torch.einsum("bhdn,bhdkn->bhnk", q.flatten(3), _unfold_neighbours(k, window)) * q.shape[2] ** -0.5
    offsets = neighbour_offsets(window, q.device)
    logits = logits + gather_relative_bias(table, offsets[:, 0], offsets[:, 1]).to(logits.dtype)[:, None, :]
    ones = torch.ones(1, 1, height, width, dtype=logits.dtype, device=q.device)
    inside = F.unfold(ones, window, padding=window // 2)[0].t() > 0  # HW×k²
    return logits.masked_fill(~inside, float("-inf")).softmax(dim=-1)


def apply_local_weights(weights: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Local ``weights`` (``B×h×HW×k²``) applied to ``v`` (``B×h×dv×H×W``): ``B×h×dv×H×W``."""
    window = int(round(weights.shape[-1] ** 0.5))
    out = torch.einsum("bhnk,bhdkn->bhdn", weights, _unfold_neighbours(v, window))
    return out.reshape(v.shape)
