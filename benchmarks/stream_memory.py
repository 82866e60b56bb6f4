"""Resident memory while streaming a split far beyond the RAM-cache budget (how full Camelyon17 is read).

Usage: python benchmarks/stream_memory.py [--items 50000] [--workers 2] [--batch 256]

Writes the Camelyon17 demo folder (600 patches of 96×96), builds a split of ``--items`` items cycling over its
patches with ``cache: auto`` and a budget too small for it (so it streams), reads one epoch through the bundle's
loader with ``--workers`` decoding processes, and prints the resident memory of the whole process tree (main process
and loader workers) at intervals: it must stay flat, whatever the number of items. For comparison, caching the
same split in RAM would take ``items × 27 KB``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine
from medattn_monai.data import ImageClassificationDataset, LoadResizeImaged, load_datalist, make_dataloader, split_items
from medattn_monai.data.demo import make_demo_data


def tree_rss_mb(pid: int | None = None) -> float:
    """Resident memory of a process and all its descendants, in MiB (Linux /proc)."""
    pid = pid or os.getpid()
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_demo_data(tmp, datasets="camelyon17")
        datalist = load_datalist(Path(tmp) / "camelyon17_datalist.json")
        patches = [item for split in ("training", "validation", "test", "val_ood", "test_ood")
                   for item in split_items(datalist, split, Path(tmp) / "camelyon17")]
        data = [dict(patches[i % len(patches)], index=i) for i in range(args.items)]
        dataset = ImageClassificationDataset(data, LoadResizeImaged("image", 96), (3, 96, 96), cache="auto",
                                             cache_budget=1e-9, progress=False, name="stream")
        loader = make_dataloader(dataset, args.batch, shuffle=True, num_workers=args.workers)
        print(f"machine: {machine()}")
        print(f"{args.items} items, cache={dataset.cache}, {args.workers} workers; a RAM cache would take "
              f"{dataset.bytes_needed / 2**20:.0f} MB")
        start, samples = time.perf_counter(), []
        every = max(1, len(loader) // 10)
        for step, _ in enumerate(loader):
            if step % every == 0:
                samples.append(tree_rss_mb())
                print(f"  batch {step:5d}/{len(loader)}  resident {samples[-1]:7.0f} MB")
        elapsed = time.perf_counter() - start
    print(f"resident memory after warm-up {samples[1]:.0f} MB, peak {max(samples[1:]):.0f} MB "
          f"(growth {max(samples[1:]) - samples[1]:+.0f} MB) over {args.items} images in {elapsed:.0f} s "
          f"({args.items / elapsed:.0f} images/s)")


if __name__ == "__main__":
    main()
