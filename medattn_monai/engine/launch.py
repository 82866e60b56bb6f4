"""Run one bundle training for a search or a study: in this process, or under ``torchrun`` on several devices.

With ``gpus > 1`` the training runs as ``torchrun --standalone --nproc_per_node=<gpus> -m
medattn_monai.engine.torchrun_entry <spec.json>`` with the bundle's ``multi_gpu_train.json`` overlay: one process
per GPU with NCCL, or with gloo on a machine without CUDA (which only makes sense for testing). Rank 0 writes the
outcome to the spec's result file, so the caller learns whether the run finished, was pruned or failed, and why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import MedattnError, find_cause
from ..tracking.naming import make_run_name
from .bundles import bundle_configs, load_config
from .workflow import resume, run_workflow

__all__ = ["PRUNED", "TrainingFailed", "plan_run", "run_training", "resume_training", "release_memory"]

PRUNED = "pruned"


class TrainingFailed(MedattnError):
    """A training launched under ``torchrun`` failed; the message is rank 0's error."""

    exit_code = 1


def plan_run(bundle: str, overrides: Mapping[str, Any], multi_gpu: bool = False) -> tuple[dict[str, Any], str]:
    """The overrides with a fixed ``run_name``, and the run folder they will produce (known before training)."""
    names = ["train.json"] + (["multi_gpu_train.json"] if multi_gpu else [])
    parser = load_config(bundle_configs(bundle, *names), **overrides)
    overrides = dict(overrides)
    if not overrides.get("run_name"):
        keys = ("backbone", "attention", "seed", "baseline", "matched_to", "family")
        facts = {k: parser.get_parsed_content(k) for k in keys if k in parser}
        overrides["run_name"] = make_run_name(**{**facts, "seed": int(facts["seed"])})
        parser["run_name"] = overrides["run_name"]
    return overrides, str(parser.get_parsed_content("output_dir"))


def run_training(bundle: str, overrides: Mapping[str, Any], gpus: int = 1,
                 extra_handlers: Sequence[Mapping[str, Any]] = ()) -> str:
    """Train once with ``overrides``; returns the run folder.

    Args:
        bundle: bundle name or folder.
        overrides: bundle config keys.
        gpus: devices (processes) for this run; above 1 it runs under ``torchrun`` with ``multi_gpu_train.json``.
        extra_handlers: handler config items appended to ``train#handlers``. In this process they may hold live
            objects; under ``torchrun`` they must be plain JSON.

    Raises:
        optuna.TrialPruned: a pruning handler stopped the run.
        TrainingFailed: a ``torchrun`` training failed (its error message included).
    """
    if gpus <= 1:
        overrides, run_dir = plan_run(bundle, overrides)
        try:
            run_workflow(bundle_configs(bundle, "train.json"), "train", extra_handlers=extra_handlers, **overrides)
        except Exception as e:
            pruned = _pruned_cause(e)
            if pruned is not None:  # MONAI wraps what the run expression raised: hand Optuna its own exception
                raise pruned from None
            raise
        finally:
            release_memory()
        return run_dir
    overrides, run_dir = plan_run(bundle, overrides, multi_gpu=True)
    _torchrun({"bundle": bundle, "overrides": overrides, "extra_handlers": list(extra_handlers)}, gpus,
              overrides["run_name"])
    return run_dir


def resume_training(run_dir: str, gpus: int = 1, **settings: Any) -> str:
    """Continue an interrupted run (see :func:`~medattn_monai.engine.workflow.resume`, which takes ``settings``),
    under ``torchrun`` when ``gpus > 1``."""
    if gpus <= 1:
        try:
            return resume(run_dir, **settings)
        finally:
            release_memory()
    _torchrun({"resume": run_dir, "settings": settings}, gpus, Path(run_dir).name)
    return run_dir


def _torchrun(spec: dict[str, Any], gpus: int, name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="medattn-launch-") as tmp:
        spec_path, result_path = Path(tmp, "spec.json"), Path(tmp, "result.json")
        spec_path.write_text(json.dumps({**spec, "result": str(result_path)}))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(gpus)}",
               "-m", "medattn_monai.engine.torchrun_entry", str(spec_path)]
        proc = subprocess.run(cmd, env=_child_env())
        result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    if result.get("status") == PRUNED:
        import optuna

        raise optuna.TrialPruned(result.get("message", "pruned"))
    if proc.returncode != 0 or result.get("status") != "finished":
        raise TrainingFailed(f"torchrun training {name} failed (exit code {proc.returncode}): "
                             f"{result.get('message', 'see the log above')}")


def release_memory() -> None:
    """Free what a finished in-process run left behind before the next one starts.

    Ignite engines and MONAI's config items reference each other, so a run's datasets (with their RAM caches of
    decoded images, gigabytes on real data) become cyclic garbage that Python's collector may keep for many more
    runs: collect it now, and hand cached GPU memory back.
    """
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _pruned_cause(e: BaseException) -> BaseException | None:
    import optuna

    return find_cause(e, optuna.TrialPruned)


def _child_env() -> dict[str, str]:
    # the children must import this very package, wherever it was imported from (an installed copy or a checkout)
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
