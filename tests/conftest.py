"""Shared fixtures: one demo dataset and one small trained ISIC run for every test that needs a model."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
ISIC_BUNDLE = REPO / "bundles" / "isic_attention_classification"
ISIC_CONFIGS = ISIC_BUNDLE / "configs"
CAMELYON_BUNDLE = REPO / "bundles" / "camelyon17_attention_classification"
# small and fast, but the same code path as the README's demo run
TRAIN_OVERRIDES = {"epochs": 3, "image_size": 32, "batch_size": 32, "val_batch_size": 256, "progress": False}
# fixtures that train a model: a test that needs one (itself or through another fixture) is an end-to-end training
TRAINING_FIXTURES = frozenset({"trained_run", "attention_run", "camelyon_run", "shortcut_run", "control_run"})


def pytest_collection_modifyitems(config, items):
    """Mark every test that uses a training fixture ``slow`` (``pytest -m "not slow"`` leaves them out); a test that
    trains by itself, or reaches a trained run through ``request.getfixturevalue``, carries the mark explicitly."""
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory):
    """No test writes an MLflow store into the working directory or reads the user's."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.setdefault("MPLBACKEND", "Agg")
    stores = ("mlflow.db", "mlruns.db", "mlruns")  # MLflow's and MONAI's defaults, and ours
    present = {name for name in stores if Path(name).exists()}
    yield
    written = [name for name in stores if Path(name).exists() and name not in present]
    assert not written, f"a test wrote an MLflow store into the working directory: {written}"


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> SimpleNamespace:
    """The ISIC demo dataset (small), written once per session."""
    import mlflow

    from medattn_monai.data.demo import make_demo_data

    root = tmp_path_factory.mktemp("demo")
    make_demo_data(str(root), seed=0, n_lesions=400)
    # an initialised, empty MLflow store: creating one costs seconds (schema migrations), copying it nothing
    store = root / "empty_mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{store}").search_experiments()
    return SimpleNamespace(root=root, dataset_dir=root / "isic2019", datalist=root / "isic2019_datalist.json",
                           empty_store=store)


def fresh_store(demo_data: SimpleNamespace, folder: Path) -> str:
    """The URI of a new, empty MLflow store in ``folder``."""
    db = folder / "mlruns" / "mlflow.db"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(demo_data.empty_store, db)
    return f"sqlite:///{db}"


def train_overrides(demo_data: SimpleNamespace, work: Path, **extra) -> dict:
    """Config overrides that point a training at the demo data and a private store and output folder."""
    return {
        **TRAIN_OVERRIDES,
        "dataset_dir": str(demo_data.dataset_dir),
        "datalist": str(demo_data.datalist),
        "output_root": str(work / "runs"),
        "tracking_uri": fresh_store(demo_data, work),
        **extra,
    }


@pytest.fixture(scope="session")
def trained_run(demo_data, tmp_path_factory) -> SimpleNamespace:
    """One 3-epoch ResNet18 training on the demo data, evaluated on its test split (shared by many tests)."""
    from medattn_monai.engine import evaluate, train

    work = tmp_path_factory.mktemp("trained")
    overrides = train_overrides(demo_data, work)
    run_dir = train(**overrides)
    evaluate(run_dir)
    from medattn_monai.tracking import read_run_info

    info = read_run_info(run_dir)
    return SimpleNamespace(run_dir=Path(run_dir), info=info, tracking_uri=overrides["tracking_uri"], work=work,
                           overrides=overrides)


def camelyon_paths(demo_data: SimpleNamespace, work: Path) -> dict:
    """Config overrides that point the Camelyon17 bundle at the demo data and a private store and output folder."""
    return {
        "dataset_dir": str(demo_data.root / "camelyon17"),
        "datalist": str(demo_data.root / "camelyon17_datalist.json"),
        "output_root": str(work / "runs"),
        "tracking_uri": f"sqlite:///{work / 'mlruns' / 'mlflow.db'}",
    }


@pytest.fixture(scope="session")
def camelyon_run(demo_data, tmp_path_factory) -> SimpleNamespace:
    """One 2-epoch Camelyon17 training on the demo data (64-pixel patches, batches of 8: 60 optimiser steps, enough
    for BatchNorm's running statistics to settle), evaluated on every split, once per session."""
    from medattn_monai.engine import evaluate, train
    from medattn_monai.tracking import read_run_info

    work = tmp_path_factory.mktemp("camelyon_run")
    overrides = {"epochs": 2, "batch_size": 8, "image_size": 64, "val_batch_size": 256, "progress": False,
                 **camelyon_paths(demo_data, work)}
    run_dir = train(CAMELYON_BUNDLE.name, **overrides)
    evaluate(run_dir)
    return SimpleNamespace(run_dir=Path(run_dir), info=read_run_info(run_dir), overrides=overrides, work=work)


def workflow_property_problems(configs_dir: Path, workflow_type: str, configs: list[str], overrides: dict) -> list:
    """Model-Zoo-style ``ConfigWorkflow(...).check_properties()`` of a bundle's config files (an empty list: none).

    The multi-GPU overlay is checked without a process group (its ``initialize`` would start one).
    """
    from monai.bundle import ConfigWorkflow

    overrides = dict(overrides)
    if "multi_gpu_train.json" in configs:
        pytest.importorskip("torch.distributed")
        overrides["initialize"] = ["$medattn_monai.engine.training_setup.seed_everything(@seed)"]
        overrides["network"] = "$@network_def"
    workflow = ConfigWorkflow(config_file=[str(configs_dir / c) for c in configs],
                              meta_file=str(configs_dir / "metadata.json"), workflow_type=workflow_type, **overrides)
    workflow.initialize()
    return workflow.check_properties()


@pytest.fixture(scope="session")
def attention_run(demo_data, tmp_path_factory) -> SimpleNamespace:
    """One 1-epoch ResNet18 + local self-attention (``la``) training on the demo data, evaluated on its test split:
    the cheapest run whose network is not a plain MONAI one."""
    from medattn_monai.engine import evaluate, train
    from medattn_monai.tracking import read_run_info

    work = tmp_path_factory.mktemp("trained_la")
    overrides = train_overrides(demo_data, work, attention="la", epochs=1)
    run_dir = train(**overrides)
    evaluate(run_dir)
    return SimpleNamespace(run_dir=Path(run_dir), info=read_run_info(run_dir), tracking_uri=overrides["tracking_uri"],
                           work=work, overrides=overrides)


@pytest.fixture
def one_thread():
    """One intra-op thread for in-process trainings: the test machine's cores are shared, and oversubscribed
    OpenMP threads slow a training down many times over. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sigkill_when(cmd: list[str], cwd: Path, ready: Callable[[], Any], what: str, poll: float = 0.05,
                 timeout: float = 240, **env: str) -> Any:
    """Start ``cmd`` (with ``REPO`` on ``PYTHONPATH``), SIGKILL it as soon as ``ready()`` returns something true, and
    return that; fail with the command's stderr if it ends or times out first (``what`` says what was awaited)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO), **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            found = ready()
            if found:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return found
            time.sleep(poll)
        raise AssertionError(f"{what} did not happen: {proc.stderr.read()[-3000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="session")
def team_servers():
    """PostgreSQL and an MLflow tracking server (PostgreSQL backend, proxied artifacts) on 127.0.0.1, set up from
    docs/team.md for the whole session (``tests/team_setup.py``); skipped with the reason where PostgreSQL or psycopg
    is missing, which under ``CI=true`` is a failure."""
    from team_setup import postgres_missing, start_team_servers

    reason = postgres_missing()
    if reason is None:
        try:
            import psycopg  # noqa: F401 - only whether the driver imports
        except ImportError:
            reason = "psycopg 3 is missing (pip install -e '.[team]')"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs PostgreSQL for the team tests: {reason}")
        pytest.skip(reason)
    servers = start_team_servers()
    yield servers
    servers.stop()
