"""What uploading every checkpoint to the tracking server costs a training, per epoch.

A run on a shared store uploads ``run.json``, ``model.pt`` (when validation improved) and ``checkpoint_last.pt`` at
every epoch from a background thread (``medattn_monai/tracking/artifact_upload.py``). This benchmark trains the
ISIC bundle in this process against a real ``mlflow server`` (sqlite backend, proxied artifact folder, on the same
machine: it competes for the same cores, the worst case) twice per repeat, with the per-epoch uploads on and off
(off: the files are uploaded once, at the end, as runs on a local store do), alternating which goes first. It
times epochs 2 … N (epoch 1 decodes the images into the RAM cache; the end of the run uploads the last files on
both sides alike): **ratio** = median over repeats of (seconds off / seconds on), so 1.0 means no cost, and the
cost per epoch = median of (on − off) / (N − 1). It also times one upload of a checkpoint's files on its own.

    python benchmarks/checkpoint_upload.py                 # resnet18 at 64 px (512 images) and 224 px (96), 5 repeats
    python benchmarks/checkpoint_upload.py --quick         # 64 px, 3 repeats
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import medattn_monai.handlers.checkpoint_upload as checkpoint_upload
from _common import demo_split, machine, write_rows
from medattn_monai.engine.bundles import bundle_configs
from medattn_monai.engine.device import retain_host_memory

_ALWAYS = checkpoint_upload.uploads_each_checkpoint


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    """An ``mlflow server`` with proxied artifacts in ``folder``; its URL."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
           "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    raise SystemExit("mlflow server did not start")


def timed_run(data: Path, datalist: Path, work: Path, uri: str, size: int, epochs: int, uploads: bool) -> float:
    """Seconds per epoch of epochs 2 … ``epochs`` of one bundle training, with or without per-epoch uploads."""
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    checkpoint_upload.uploads_each_checkpoint = _ALWAYS if uploads else (lambda uri, run_type: False)
    configs = bundle_configs("isic_attention_classification", "train.json")
    meta = str(Path(configs[0]).parent / "metadata.json")
    wf = ConfigWorkflow(config_file=configs, workflow_type="train", meta_file=meta, logging_file=False,
                        image_size=size, epochs=epochs, batch_size=32, dataset_dir=str(data), datalist=str(datalist),
                        progress=False, output_root=str(work / "runs"), tracking_uri=uri,
                        experiment_name="upload-benchmark")
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    marks: dict[int, float] = {}
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: marks.__setitem__(e.state.epoch, time.perf_counter()))
    trainer.run()
    return (marks[epochs] - marks[1]) / (epochs - 1)


def upload_seconds(uri: str, run_dir: Path, repeats: int = 3) -> float:
    """Median seconds to upload ``model.pt`` and ``checkpoint_last.pt`` of ``run_dir`` once, nothing else running."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("upload-benchmark").experiment_id
    run_id = client.create_run(experiment).info.run_id
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for name in ("model.pt", "checkpoint_last.pt"):
            client.log_artifact(run_id, str(run_dir / name))
        times.append(time.perf_counter() - start)
    client.set_terminated(run_id)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--sizes", default=None, help="image sizes to run, e.g. 224 (default: 64 and 224)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    sizes = [(64, 512, 64)] if args.quick else [(64, 512, 64), (224, 96, 32)]
    if args.sizes:
        sizes = [s for s in sizes if str(s[0]) in args.sizes.split(",")]
    print(machine())
    retain_host_memory("auto", "cpu")  # as the bundle does for CPU training: both sides alike from the start
    rows = []
    with tempfile.TemporaryDirectory(prefix="medattn-upload-bench-") as tmp:
        root = Path(tmp)
        server, uri = start_server(root / "server")
        try:
            for size, n_train, n_val in sizes:
                data, datalist = demo_split(root, size, n_train, n_val)
                times: dict[bool, list[float]] = {True: [], False: []}
                for repeat in range(repeats):
                    for uploads in ((True, False) if repeat % 2 == 0 else (False, True)):
                        work = root / f"{size}-{repeat}-{uploads}"
                        times[uploads].append(timed_run(data, datalist, work, uri, size, args.epochs, uploads))
                ratios = [off / on for on, off in zip(times[True], times[False], strict=True)]
                costs = [on - off for on, off in zip(times[True], times[False], strict=True)]
                run_dir = next((root / f"{size}-0-True" / "runs").glob("*/*"))
                row = {"image_size": size, "train_images": n_train, "epochs": args.epochs, "repeats": repeats,
                       "epoch_s_off": statistics.median(times[False]), "epoch_s_on": statistics.median(times[True]),
                       "ratio": statistics.median(ratios), "cost_s_per_epoch": statistics.median(costs),
                       "upload_s": upload_seconds(uri, run_dir),
                       "checkpoint_mb": sum(os.path.getsize(run_dir / n) for n in ("model.pt", "checkpoint_last.pt"))
                       / 2**20, "all_on": times[True], "all_off": times[False]}
                rows.append(row)
                print(f"{size} px: epoch {row['epoch_s_off']:.2f} s off, {row['epoch_s_on']:.2f} s on, ratio "
                      f"{row['ratio']:.3f}, cost {row['cost_s_per_epoch']:+.2f} s/epoch; one upload of "
                      f"{row['checkpoint_mb']:.0f} MB: {row['upload_s']:.2f} s", flush=True)
        finally:
            os.killpg(server.pid, 15)
            server.wait()
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
