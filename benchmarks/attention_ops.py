"""Benchmark of the attention layers (not a test): time and peak memory of ``ga`` and ``la`` against naive references.

Measured in one run, so the ratios compare like with like:

1. Forward + backward of a ``GlobalSelfAttention2d`` and a ``LocalSelfAttention2d`` (k = 7) layer at 14×14×256 and
   28×28×128, batch 16, against naive layers with the same weights that materialise the explicit attention matrix:
   ``softmax(QKᵀ/√d + B)·V`` over ``HW × HW`` (``la``: with the window as a −inf mask), plus ``la``'s unfold form
   (the slow path that returns weights; memory O(HW·k²·d)).
2. ``la``'s peak memory at 28×28 vs 56×56 (×4 positions): linear growth in H·W means a ratio near 4.
3. A ResNet-18 training step (forward, backward, SGD) at 224 px, plain against ``ga`` and ``la`` at stages 3–4,
   interleaved over repeats (issue 8's budget: at most +15 %).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the process's resident high-water mark
(``VmHWM``, reset through ``/proc/self/clear_refs``) above its resident size before the step, with glibc's mmap
threshold pinned low (the script re-executes itself with ``MALLOC_MMAP_THRESHOLD_``) so freed tensors leave the
resident set. Times are medians (and minima) over repeats after a warm-up.

    python benchmarks/attention_ops.py                 # everything, CPU (and CUDA when present)
    python benchmarks/attention_ops.py --quick         # fewer repeats, smaller ResNet batch
    python benchmarks/attention_ops.py --threads 1     # pin intra-op threads (stable figures on a busy machine)
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

if "MALLOC_MMAP_THRESHOLD_" not in os.environ and sys.platform.startswith("linux"):
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"  # freed tensors are unmapped: RSS follows live memory
    os.execv(sys.executable, [sys.executable, *sys.argv])

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from medattn_monai.networks import build_network
from medattn_monai.networks.blocks import GlobalSelfAttention2d, LocalSelfAttention2d
from medattn_monai.networks.blocks.relative_position import gather_relative_bias, pairwise_offsets


# ---------------------------------------------------------------------------------------------- naive references
def naive_forward(layer, x: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """The layer's output with an explicit ``HW × HW`` softmax (``window``: out-of-window logits set to −inf)."""
    q, k, v = layer._qkv(x)
    b, h, d, height, width = q.shape
    dy, dx = pairwise_offsets(height, width, x.device)
    logits = torch.einsum("bhdn,bhdm->bhnm", q.flatten(3), k.flatten(3)) * d**-0.5
    logits = logits + gather_relative_bias(layer.rel_pos.table, dy, dx).to(logits.dtype)
    if window is not None:
        r = window // 2
        logits = logits.masked_fill((dy.abs() > r) | (dx.abs() > r), float("-inf"))
    out = torch.einsum("bhnm,bhdm->bhdn", logits.softmax(-1), v.flatten(3)).reshape(b, h, d, height, width)
    return layer._residual(x, out)


def unfold_forward(layer, x: torch.Tensor) -> torch.Tensor:
    """``la`` through its slow path (unfolded k² neighbours, explicit weights)."""
    return layer.forward_with_weights(x)[0]


# ---------------------------------------------------------------------------------------------- measurement
def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def peak_memory_mib(step: Callable[[], None], device: torch.device) -> float:
    """Peak memory above the starting level while ``step`` runs."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        return float("nan")
    base = _rss_kib("VmRSS")
    step()
    return (_rss_kib("VmHWM") - base) / 1024


def timed(step: Callable[[], None], device: torch.device) -> float:
    """Seconds of one call of ``step`` (waiting for the GPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def time_s(step: Callable[[], None], device: torch.device, repeats: int) -> tuple[float, float]:
    """(median, min) seconds of ``step`` after one warm-up."""
    step()
    times = [timed(step, device) for _ in range(repeats)]
    return statistics.median(times), min(times)


def fwd_bwd(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        x.grad = None
        fn(x).square().mean().backward()

    return step


# ---------------------------------------------------------------------------------------------- benchmarks
def layer_table(device: torch.device, repeats: int, batch: int) -> list[str]:
    rows = ["| layer | map | implementation | fwd+bwd ms (median / min) | peak MiB | time ratio | memory ratio |",
            "|---|---|---|---|---|---|---|"]
    for side, channels in ((14, 256), (28, 128)):
        torch.manual_seed(0)
        x = torch.randn(batch, channels, side, side, device=device, requires_grad=True)
        ga = GlobalSelfAttention2d(channels, max_size=side).to(device)
        la = LocalSelfAttention2d(channels, window=7).to(device)
        for layer in (ga, la):
            layer.reset_gamma(1.0)
        cases = [
            ("ga", "ours (SDPA, bias mask)", ga),
            ("ga", "naive (explicit HW×HW)", lambda t, ga=ga: naive_forward(ga, t)),
            ("la", "ours (halo/dense SDPA)", la),
            ("la", "naive (masked HW×HW)", lambda t, la=la: naive_forward(la, t, window=7)),
            ("la", "unfold (slow path)", lambda t, la=la: unfold_forward(la, t)),
        ]
        ours = {}
        for name, impl, fn in cases:
            step = fwd_bwd(fn, x)
            median, fastest = time_s(step, device, repeats)
            mem = peak_memory_mib(step, device)
            if impl.startswith("ours"):
                ours[name] = (median, mem)
            t_ratio = median / ours[name][0]
            m_ratio = mem / ours[name][1] if ours[name][1] > 0 else float("nan")
            rows.append(
                f"| {name} | {side}×{side}×{channels} | {impl} | {median * 1e3:.1f} / {fastest * 1e3:.1f} | "
                f"{mem:.0f} | {t_ratio:.2f}× | {m_ratio:.2f}× |"
            )
    return rows


def la_growth(device: torch.device, batch: int) -> list[str]:
    rows = ["| map | positions | la peak MiB | ratio to 28×28 |", "|---|---|---|---|"]
    first = None
    for side in (28, 56):
        torch.manual_seed(0)
        x = torch.randn(batch, 128, side, side, device=device, requires_grad=True)
        la = LocalSelfAttention2d(128, window=7).to(device)
        la.reset_gamma(1.0)
        step = fwd_bwd(la, x)
        step()
        mem = peak_memory_mib(step, device)
        first = first or mem
        rows.append(f"| {side}×{side} | {side * side} | {mem:.0f} | {mem / first:.2f}× |")
    return rows


def resnet_overhead(device: torch.device, repeats: int, batch: int) -> list[str]:
    torch.manual_seed(0)
    x = torch.randn(batch, 3, 224, 224, device=device)
    y = torch.randint(0, 2, (batch,), device=device)
    nets = {a: build_network("resnet18", a, image_size=224).to(device) for a in ("none", "ga", "la")}
    steps = {}
    for name, net in nets.items():
        opt = torch.optim.SGD(net.parameters(), lr=0.01)

        def step(net=net, opt=opt) -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()

        step()
        steps[name] = step
    times = {name: [] for name in nets}
    for _ in range(repeats):  # interleaved, so drift in machine load hits every network alike
        for name, step in steps.items():
            times[name].append(timed(step, device))
    base = statistics.median(times["none"])
    rows = [f"| ResNet-18 @224, batch {batch} | step s (median / min) | overhead vs plain (median) |", "|---|---|---|"]
    for name, ts in times.items():
        median = statistics.median(ts)
        rows.append(f"| {name} | {median:.3f} / {min(ts):.3f} | {median / base - 1:+.1%} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a smaller ResNet batch")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: both when CUDA is present)")
    parser.add_argument("--skip-resnet", action="store_true", help="skip the ResNet-18 training-step comparison")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device(args.device)] if args.device else [torch.device("cpu")] + (
        [torch.device("cuda")] if torch.cuda.is_available() else []
    )
    repeats = 3 if args.quick else 7
    print(f"# attention_ops: torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, {torch.get_num_threads()} threads")
    for device in devices:
        name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
        print(f"\n## {name}\n")
        print("\n".join(layer_table(device, repeats, batch=16)))
        print()
        print("\n".join(la_growth(device, batch=16)))
        if not args.skip_resnet:
            print()
            print("\n".join(resnet_overhead(device, repeats + 2, batch=8 if args.quick else 16)))


if __name__ == "__main__":
    main()
