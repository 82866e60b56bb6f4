"""Training images/s: the bundle (MONAI ConfigWorkflow, from JPEG files) against a hand-written PyTorch loop.

Both sides train the same network from the same initial weights with the same batch size, optimizer, schedule,
batched augmentation and normalisation, validate every epoch on the same images and save the same checkpoints
(``checkpoint_last.pt``: model, optimizer, scheduler, epoch, every epoch; ``model.pt`` when validation improves;
both atomically). What each side times:

- bundle: ``trainer.run()`` of the bundle's ``train.json`` (MLflow tracking on, progress bar off), starting from
  JPEG files: the first epoch includes decoding them into the RAM cache;
- loop: the same epochs over images already decoded into a uint8 tensor.

Network construction and config parsing are outside both timings. The two alternate, ``--repeats`` times each;
the table shows the median images/s of each and the median of the repeats' ratios (bundle / loop). Both sides run
in this one process under the same C-allocator settings: the bundle's ``retain_host_memory`` (on by default for CPU
training, process-wide) is applied before the first run, so the ratio compares the training machinery, not the
allocator; ``benchmarks/host_memory.py`` measures what that setting itself gains. With memory retained, the first
run of a network larger than any before it grows the process's heap (page faults once); an untimed training step
of each network before its repeats does that, so neither side pays it in the timings.

    python benchmarks/train_throughput.py            # resnet18 and densenet121 x none/ga/la/ela at 64 and 224 px
    python benchmarks/train_throughput.py --quick    # a 2-minute subset
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import demo_split, machine, write_rows
from medattn_monai.data import IMAGENET_MEAN, IMAGENET_STD, BatchAugment, load_datalist, load_image_uint8, split_items
from medattn_monai.engine.bundles import bundle_configs
from medattn_monai.engine.device import retain_host_memory
from medattn_monai.engine.training_setup import make_optimizer, seed_everything
from medattn_monai.metrics import balanced_accuracy
from medattn_monai.networks import build_network

REPO = Path(__file__).resolve().parents[1]


def bundle_run(data: Path, datalist: Path, work: Path, backbone: str, attention: str, size: int, epochs: int,
               batch: int, overrides: dict | None = None) -> float:
    """Seconds of the bundle's ``trainer.run()`` (the MLflow store is one per benchmark, as in a study)."""
    from monai.bundle import ConfigWorkflow

    configs = bundle_configs("isic_attention_classification", "train.json")
    wf = ConfigWorkflow(config_file=configs, workflow_type="train",
                        meta_file=str(Path(configs[0]).parent / "metadata.json"), logging_file=False,
                        backbone=backbone, attention=attention, image_size=size, epochs=epochs, batch_size=batch,
                        dataset_dir=str(data), datalist=str(datalist), progress=False,
                        output_root=str(work / "runs"), tracking_uri=f"sqlite:///{work.parent / 'mlflow.db'}",
                        **(overrides or {}))
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    start = time.perf_counter()
    trainer.run()
    return time.perf_counter() - start


def hand_loop(data: Path, datalist: Path, work: Path, backbone: str, attention: str, size: int, epochs: int,
              batch: int, lr: float = 0.002, wd: float = 0.05, seed: int = 0) -> float:
    """Seconds of a plain PyTorch training loop doing the same per-epoch work on pre-decoded images."""
    from monai.optimizers import WarmupCosineSchedule

    d = load_datalist(datalist)

    def decoded(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        items = split_items(d, split, data)
        return (torch.stack([load_image_uint8(i["image"], size) for i in items]),
                torch.tensor([i["label"] for i in items]))

    xs, ys = decoded("training")
    xv, yv = decoded("validation")
    seed_everything(seed)
    net = build_network(backbone, attention, len(d["classes"]), 3, size)
    opt = make_optimizer(net, lr, wd)
    steps = len(xs) // batch
    sched = WarmupCosineSchedule(opt, warmup_steps=steps, t_total=epochs * steps)
    aug = BatchAugment(brightness=0.1, contrast=0.1, saturation=0.1, seed=seed)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    best = -1.0

    def save(obj: object, path: Path) -> None:
        torch.save(obj, path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)

    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        aug.set_epoch(epoch)
        order = torch.randperm(len(xs), generator=torch.Generator().manual_seed(seed + epoch))
        net.train()
        for i in range(steps):
            idx = order[i * batch:(i + 1) * batch]
            x = (aug(xs[idx].float().div_(255)) - mean) / std
            loss = F.cross_entropy(net(x), ys[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net((xv[j:j + 128].float().div_(255) - mean) / std).argmax(1)
                              for j in range(0, len(xv), 128)])
        bacc = balanced_accuracy(yv.numpy(), pred.numpy())
        if bacc > best:
            best = bacc
            save(net.state_dict(), work / "model.pt")
        save({"model": net.state_dict(), "optimizer": opt.state_dict(), "lr_scheduler": sched.state_dict(),
              "epoch": epoch}, work / "checkpoint_last.pt")
    return time.perf_counter() - start


def warm_allocator(backbone: str, attention: str, size: int, batch: int, classes: int = 8) -> None:
    """One untimed training step of the network: the heap reaches its peak before either side is timed."""
    net = build_network(backbone, attention, classes, 3, size)
    F.cross_entropy(net(torch.randn(batch, 3, size, size)), torch.randint(0, classes, (batch,))).backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="resnet18 none/ga at 64 px, fewer images")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--networks", nargs="+", default=[f"{b}:{a}" for b in ("resnet18", "densenet121")
                                                          for a in ("none", "ga", "la", "ela")])
    parser.add_argument("--images", type=int, default=512, help="training images below 128 px")
    parser.add_argument("--large-images", type=int, default=96, help="training images at 128 px and above")
    parser.add_argument("--val-images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bundle-only", action="store_true",
                        help="time only the bundle and report peak GPU memory (the GPU check)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="bundle overrides (JSON values), e.g. compile=true log_mlflow=false")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    if args.quick:
        args.sizes, args.networks, args.images, args.repeats = [64], ["resnet18:none", "resnet18:ga"], 256, 3

    device = "cuda" if torch.cuda.is_available() else "cpu"
    retained = retain_host_memory(overrides.get("retain_host_memory", "auto"), device)
    print(f"machine: {machine()}; retain_host_memory: {retained} (both sides)")
    if args.bundle_only:
        print(f"{'network':<22}{'px':>5}{'bundle img/s':>14}{'peak GPU MiB':>14}")
    else:
        print(f"{'network':<22}{'px':>5}{'bundle img/s':>14}{'loop img/s':>12}{'ratio':>8}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if overrides.get("log_mlflow", True):
            import mlflow

            mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}").search_experiments()  # create the store once
        for size in args.sizes:
            n_images = args.images if size < 128 else args.large_images
            data, datalist = demo_split(root, size, n_images, args.val_images)
            for spec in args.networks:
                backbone, attention = spec.split(":")
                times = {"bundle": [], "loop": []}
                if torch.cuda.is_available():
                    torch.cuda.reset_peak_memory_stats()
                elif retained:
                    warm_allocator(backbone, attention, size, args.batch)
                for r in range(args.repeats):
                    order = ("bundle", "loop") if r % 2 == 0 else ("loop", "bundle")
                    if args.bundle_only:
                        order = ("bundle",)
                    for side in order:
                        work = Path(tempfile.mkdtemp(dir=root))
                        gc.collect()  # the previous run's cyclic garbage (a workflow, its RAM cache) is not timed
                        if side == "bundle":
                            t = bundle_run(data, datalist, work, backbone, attention, size, args.epochs, args.batch,
                                           overrides)
                        else:
                            t = hand_loop(data, datalist, work, backbone, attention, size, args.epochs, args.batch)
                        times[side].append(t)
                n = args.epochs * (n_images // args.batch) * args.batch
                b = n / statistics.median(times["bundle"])
                if args.bundle_only:
                    peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else float("nan")
                    rows.append({"network": spec, "size": size, "bundle_img_s": b, "peak_gpu_mib": peak})
                    print(f"{spec:<22}{size:>5}{b:>14.1f}{peak:>14.0f}", flush=True)
                    continue
                lp = n / statistics.median(times["loop"])
                # each repeat's bundle and loop ran back to back: the median of their ratios cancels slow drifts
                # of a shared machine that the ratio of the two medians would keep
                ratio = statistics.median(lt / bt for bt, lt in zip(times["bundle"], times["loop"], strict=True))
                rows.append({"network": spec, "size": size, "bundle_img_s": b, "loop_img_s": lp, "ratio": ratio,
                             "bundle_s": times["bundle"], "loop_s": times["loop"]})
                print(f"{spec:<22}{size:>5}{b:>14.1f}{lp:>12.1f}{ratio:>8.3f}", flush=True)
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
