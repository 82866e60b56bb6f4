"""CUDA check of the attention networks (not a test; needs a GPU): the fused path gives the CPU's answer.

For every backbone x {ga, la, ela} at 224 px, the same weights on CPU and CUDA must give the same output at every
attention layer (forward hooks; float32 with TF32 off), and close outputs under bf16 autocast (the bundles' AMP on
CUDA). The attention must run through a fused SDPA kernel: each forward is repeated, in float32 and in bf16, with
only the memory-efficient kernel (the fused kernel that takes a float bias mask) allowed, which raises where SDPA
would fall back to its unfused math path.

    python benchmarks/cuda_consistency.py
"""

from __future__ import annotations

import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from medattn_monai.networks import build_network
from medattn_monai.networks.blocks import (
    DepthwiseLocalAttention2d,
    GlobalSelfAttention2d,
    LocalAttentionConv2d,
    LocalSelfAttention2d,
)

LAYERS = (GlobalSelfAttention2d, LocalSelfAttention2d, LocalAttentionConv2d, DepthwiseLocalAttention2d)


def layer_outputs(net: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Output of every attention layer of ``net`` for ``x``, in call order, as float32 on the CPU."""
    outs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: outs.append(o.detach().float().cpu()))
             for m in net.modules() if isinstance(m, LAYERS)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return outs


def worst(outs: list[torch.Tensor], refs: list[torch.Tensor]) -> float:
    """Largest |difference| over all layers, relative to each layer's largest |reference|."""
    return max(((o - r).abs().max() / r.abs().max().clamp_min(1e-12)).item() for o, r in zip(outs, refs, strict=True))


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this check needs a GPU")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    print(f"{'network':<22}{'layers':>7}{'fp32 rel diff':>15}{'bf16 rel diff':>15}  fused (fp32, bf16)")
    failed = []
    for backbone in ("resnet18", "densenet121", "efficientnet-b0"):
        for attention in ("ga", "la", "ela"):
            torch.manual_seed(0)
            net = build_network(backbone, attention, 8, 3, 224).eval()
            for m in net.modules():
                if hasattr(m, "reset_gamma"):
                    m.reset_gamma(1.0)  # residual attention starts at gamma = 0: open it, or its output is x alone
            x = torch.randn(4, 3, 224, 224)
            refs = layer_outputs(net, x)
            net, xc = net.cuda(), x.cuda()
            d32 = worst(layer_outputs(net, xc), refs)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                d16 = worst(layer_outputs(net, xc), refs)
            fused = []
            for amp in (False, True):
                try:
                    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]), torch.autocast("cuda", torch.bfloat16,
                                                                                         enabled=amp):
                        layer_outputs(net, xc)
                    fused.append("yes")
                except RuntimeError:
                    fused.append("NO")
            name = f"{backbone}:{attention}"
            print(f"{name:<22}{len(refs):>7}{d32:>15.2e}{d16:>15.2e}  {', '.join(fused)}", flush=True)
            if not refs or d32 > 1e-4 or d16 > 5e-2 or "NO" in fused:
                failed.append(name)
    if failed:
        sys.exit(f"mismatch or unfused attention: {', '.join(failed)}")
    print("every attention layer agrees with the CPU and runs fused SDPA kernels")


if __name__ == "__main__":
    main()
