"""Data pipeline images/s against the model's training images/s.

The pipeline is what the bundle's training does per batch before the network: the loader (RAM cache or streaming
JPEG decode in 0/1/2 workers) and ``PrepareBatch`` (uint8 -> float, batched flips/rotations/colour jitter,
normalisation). The model side is one training step (forward, backward, AdamW step) on ready batches. The
pipeline must stay at least 2x ahead of the model with the default settings (``cache: auto`` -> RAM,
``num_workers: auto`` -> 0), so the network never waits for data.

    python benchmarks/data_pipeline.py [--sizes 64 224] [--images 512]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import demo_split, machine, write_rows
from medattn_monai.data import (
    BatchAugment,
    ImageClassificationDataset,
    LoadResizeImaged,
    PrepareBatch,
    load_datalist,
    make_dataloader,
    split_items,
)
from medattn_monai.engine.training_setup import make_optimizer
from medattn_monai.networks import build_network


def pipeline_rate(items: list, size: int, cache: str, workers: int | str, batch: int,
                  epochs: int) -> tuple[float, float]:
    """(first epoch, later epochs) images/s of loader + batched preprocessing."""
    ds = ImageClassificationDataset(items, LoadResizeImaged("image", size), (3, size, size), cache=cache,
                                    progress=False)
    loader = make_dataloader(ds, batch, shuffle=True, num_workers=workers, drop_last=True)
    prep = PrepareBatch(augment=BatchAugment(brightness=0.1, contrast=0.1, saturation=0.1))
    rates = []
    for epoch in range(1, epochs + 1):
        loader.sampler.set_epoch(epoch)
        start, n = time.perf_counter(), 0
        for b in loader:
            x, _ = prep(b)
            n += len(x)
        rates.append(n / (time.perf_counter() - start))
    return rates[0], statistics.median(rates[1:])


def model_rate(backbone: str, size: int, batch: int, steps: int = 6) -> float:
    """Training images/s of the network alone on ready batches (median of steps after one warm-up)."""
    net = build_network(backbone, "none", 8, 3, size).train()
    opt = make_optimizer(net, 1e-3, 0.05)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 8, (batch,))
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"{'px':>4} {'cache':>7} {'workers':>8} {'epoch 1 img/s':>14} {'later img/s':>12} {'model img/s':>12} "
          f"{'later/model':>12}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            data, datalist = demo_split(Path(tmp), size, args.images, 8)
            items = split_items(load_datalist(datalist), "training", data)
            model = model_rate(args.backbone, size, args.batch)
            for cache, workers in (("ram", "auto"), ("ram", 0), ("stream", 0), ("stream", 1), ("stream", 2)):
                first, later = pipeline_rate(items, size, cache, workers, args.batch, args.epochs)
                label = f"{workers}" + (" (auto)" if workers == "auto" else "")
                rows.append({"size": size, "cache": cache, "workers": str(workers), "first": first, "later": later,
                             "model": model, "ratio": later / model})
                print(f"{size:>4} {cache:>7} {label:>8} {first:>14.0f} {later:>12.0f} {model:>12.1f} "
                      f"{later / model:>12.1f}", flush=True)
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
