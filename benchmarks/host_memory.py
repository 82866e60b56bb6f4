"""What the bundles' ``retain_host_memory`` gains on CPU: training steps in fresh processes, allocator alone vs kept.

Every measurement is a fresh interpreter (the setting is process-wide, and glibc's own mmap-threshold adjustment
depends on the process's history) that builds the network and optimizer, then times ``--steps`` training steps
(forward, cross-entropy, backward, AdamW) on one random batch. The two settings alternate, ``--repeats`` times
each. The table shows seconds per step (mean over all steps, the first included: a run pays it), page faults
per step (``ru_minflt``) and the ratio of step times, left alone / retained (> 1: the setting is faster).

    python benchmarks/host_memory.py                              # resnet18, densenet121 at 64 and 224 px
    python benchmarks/host_memory.py --networks densenet121:none --sizes 224 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_rows


def child(spec: str, size: int, batch: int, steps: int, retain: bool) -> dict:
    import torch
    import torch.nn.functional as F

    from medattn_monai.engine.device import retain_host_memory
    from medattn_monai.engine.training_setup import make_optimizer, seed_everything
    from medattn_monai.networks import build_network

    applied = retain_host_memory(retain, "cpu")
    seed_everything(0)
    backbone, attention = spec.split(":")
    net = build_network(backbone, attention, 8, 3, size)
    opt = make_optimizer(net, 0.002, 0.05)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 8, (batch,))
    times, faults = [], []
    for _ in range(steps):
        f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return {"applied": applied, "step_s": statistics.fmean(times), "faults": statistics.fmean(faults)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=["resnet18:none", "densenet121:none"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--child", nargs=3, metavar=("NETWORK", "SIZE", "RETAIN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec, size, retain = args.child
        print(json.dumps(child(spec, int(size), args.batch, args.steps, retain == "1")))
        return

    print(f"machine: {machine()}; batch {args.batch}, {args.steps} steps per fresh process")
    print(f"{'network':<20}{'px':>5}{'left alone s/step':>19}{'faults/step':>13}{'retained s/step':>17}"
          f"{'faults/step':>13}{'ratio':>8}")
    rows = []
    for size in args.sizes:
        for spec in args.networks:
            runs: dict[str, list[dict]] = {"0": [], "1": []}
            for r in range(args.repeats):
                for retain in ("0", "1") if r % 2 == 0 else ("1", "0"):
                    cmd = [sys.executable, __file__, "--child", spec, str(size), retain, "--batch", str(args.batch),
                           "--steps", str(args.steps)]
                    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                    runs[retain].append(json.loads(out.stdout.strip().splitlines()[-1]))
            if not all(run["applied"] for run in runs["1"]):
                raise SystemExit("retain_host_memory had no effect here (not Linux with glibc)")
            alone, kept = (statistics.median(run["step_s"] for run in runs[k]) for k in ("0", "1"))
            f_alone, f_kept = (statistics.median(run["faults"] for run in runs[k]) for k in ("0", "1"))
            row = {"network": spec, "size": size, "alone_step_s": alone, "alone_faults": f_alone,
                   "retained_step_s": kept, "retained_faults": f_kept, "ratio": alone / kept}
            rows.append(row)
            print(f"{spec:<20}{size:>5}{alone:>19.3f}{f_alone:>13.0f}{kept:>17.3f}{f_kept:>13.0f}{alone / kept:>8.3f}",
                  flush=True)
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
