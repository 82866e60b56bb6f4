"""``medattn study``: the paper's protocol as one resumable command.

For every cell of the matrix (datasets × backbones × variants and baselines): a hyper-parameter search (or given
parameters), then one training per seed with the best parameters, each evaluated on the bundle's test splits, all
recorded in MLflow under the project's tags (``run_type=train``, ``cell``) plus ``study=<name>``. At the end: a
summary table (mean ± std per cell and metric), ``medattn compare`` per experiment and ``medattn explain`` on one
run per cell.

Resumable and shareable: what is done is read back from MLflow (a FINISHED, evaluated run of a (cell, seed) is
never trained again; a run killed hard is resumed into the same MLflow run; a FAILED one is retried ``retries``
times and then reported), and workers that run the same config on the same Optuna storage and MLflow store split
the work through claims (:mod:`medattn_monai.study.claims`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..console import quiet_runs
from ..engine.bundles import data_overrides
from ..engine.launch import release_memory, resume_training, run_training
from ..engine.workflow import DATA_PATHS, evaluate
from ..errors import ConfigError, MedattnError, StorageError, error_message, find_medattn_error
from ..explain.maps_command import explain
from ..search.search import SearchResult, search
from ..search.storage import default_storage, open_storage
from ..stats.compare import compare
from ..stats.report import terminal_table
from ..tracking.mlflow_runs import filter_literal, open_client
from ..tracking.run_folder import BEST_MODEL, LAST_CHECKPOINT, RUN_INFO, fetch_run_folder, read_run_info
from ..tracking.store import mask_secrets, mlflow_ui_command
from ..tracking.ui import where_to_watch
from .claims import try_claim
from .config import StudyConfig, read_study_file
from .plan import CellPlan, find_runs, is_done, plans_of
from .summary import collect_runs, log_summary, summarize, wide_summary, write_summary

__all__ = ["StudyIncomplete", "StudyResult", "study"]

logger = logging.getLogger("medattn")
_EVAL_SETTINGS = ("progress", "cache", "num_workers", "val_batch_size", "amp", "channels_last")
POLL_S = 15.0


class StudyIncomplete(MedattnError):
    """Some runs failed even after their retries (the summary and comparison cover the others)."""

    exit_code = 1


@dataclass
class StudyResult:
    """What a study produced: the runs it covers, the per-cell summary, and what failed or is still running."""

    out: str
    runs: pd.DataFrame
    summary: pd.DataFrame
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)


class _Runner:
    """Runs the plans of one study config in this worker."""

    def __init__(self, cfg: StudyConfig) -> None:
        self.cfg = cfg
        self.storage = cfg.storage or default_storage(cfg.output_root)
        self._storage = open_storage(self.storage, timeout=cfg.storage_timeout)
        self.outcomes: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []

    # --- parameters ------------------------------------------------------------------------------------------
    def parameters(self, plan: CellPlan) -> bool:
        """Set ``plan.params`` from the given ones or the cell's search; False while other workers still search."""
        given = self.cfg.params.get(plan.label, self.cfg.params.get("*"))
        search_cfg = self.cfg.search
        if given is not None or not search_cfg["enabled"]:
            plan.params, plan.source = dict(given or {}), "given" if given is not None else "bundle defaults"
            return True
        overrides = data_overrides({**plan.base, **search_cfg["overrides"], "seed": search_cfg["seed"]},
                                   f"the study config's search keys for cell {plan.label}")
        result: SearchResult = search(
            plan.bundle, n_trials=search_cfg["n_trials"], space=search_cfg["space"], storage=self.storage,
            sampler_seed=search_cfg["sampler_seed"], n_startup_trials=search_cfg["n_startup_trials"],
            n_warmup_steps=search_cfg["n_warmup_steps"], enqueue_defaults=search_cfg["enqueue_defaults"],
            gpus_per_run=self.cfg.gpus_per_run, heartbeat_interval=self.cfg.heartbeat_interval,
            grace_period=self.cfg.grace_period, storage_timeout=self.cfg.storage_timeout, quiet=True, **overrides,
        )
        if not result.finished:
            logger.info("%s: waiting for other workers' trials of %s", plan.label, result.study_name)
            return False
        if result.best_value is None:
            raise ConfigError(f"the search of {plan.label} ({result.study_name}) has no completed trial: "
                              f"{result.counts}; see its trials in MLflow")
        plan.params, plan.source = dict(result.best_params), f"search {result.study_name} trial {result.best_trial}"
        return True

    # --- one (cell, seed) ------------------------------------------------------------------------------------
    def _eval_settings(self, plan: CellPlan) -> dict[str, Any]:
        return {k: plan.base[k] for k in _EVAL_SETTINGS + DATA_PATHS if k in plan.base}

    def _take_over(self, plan: CellPlan, seed: int, runs: list[Any]) -> str | None:
        """Resume the newest interrupted run of (cell, seed) from its last checkpoint, from this machine's run
        folder or else its MLflow artifacts; returns its folder, or None when none has a checkpoint. Interrupted
        runs left behind are marked FAILED: this worker holds the claim, so their workers are gone."""
        client = open_client(plan.tracking_uri)
        resumed = None
        for run in (r for r in runs if r.info.status in ("RUNNING", "KILLED")):
            if resumed is None:
                try:
                    folder = fetch_run_folder(run.info.run_id, self.cfg.output_root, plan.tracking_uri)
                except ConfigError as e:  # no run.json anywhere: killed before its first epoch's upload
                    logger.info("%s seed %d: run %s cannot be resumed: %s", plan.label, seed, run.info.run_name, e)
                else:
                    if (Path(folder) / LAST_CHECKPOINT).is_file():
                        logger.info("%s seed %d: resuming the interrupted run %s", plan.label, seed,
                                    run.info.run_name)
                        data = {k: plan.base[k] for k in DATA_PATHS if k in plan.base}
                        resumed = resume_training(folder, self.cfg.gpus_per_run, **data_overrides(
                            data, f"the study config's data keys for cell {plan.label}"))
                        continue
            if run.info.status == "RUNNING":
                client.set_tag(run.info.run_id, "error", "abandoned by the study: its worker is gone and no checkpoint "
                                                         "of it can be resumed; its (cell, seed) runs anew")
                client.set_terminated(run.info.run_id, "FAILED")
        return resumed

    def _advance(self, plan: CellPlan, seed: int) -> tuple[str, str]:
        """Take (cell, seed) one step to done, from whatever state MLflow records; returns (action, run id)."""
        runs = find_runs(plan, seed)
        finished = [r for r in runs if r.info.status == "FINISHED"]
        if finished:
            run_dir = fetch_run_folder(finished[0].info.run_id, self.cfg.output_root, plan.tracking_uri,
                                       artifacts=(RUN_INFO, BEST_MODEL))
            action = "evaluated"
        else:
            run_dir, action = self._take_over(plan, seed, runs), "resumed"
            if run_dir is None:
                run_dir, action = run_training(plan.bundle, plan.overrides(seed), self.cfg.gpus_per_run), "trained"
        try:
            evaluate(run_dir, splits=self.cfg.eval_splits, **self._eval_settings(plan))
        finally:
            release_memory()
        run_id = read_run_info(run_dir)["run_id"]
        open_client(plan.tracking_uri).set_tag(run_id, "evaluated", "true")
        return action, run_id

    def ensure(self, plan: CellPlan, seed: int) -> dict[str, Any] | None:
        """Make (cell, seed) done; returns its outcome, or None when another worker holds it."""
        outcome = {"experiment": plan.experiment, "cell": plan.label, "cell_hash": plan.cell_hash, "seed": seed}
        runs = find_runs(plan, seed)
        if runs and any(is_done(r) for r in runs):
            return {**outcome, "action": "skipped", "run_id": next(r.info.run_id for r in runs if is_done(r))}
        claim = try_claim(self._storage, f"{plan.experiment}/{plan.cell_hash}/s{seed}", self.cfg.grace_period,
                          self.cfg.heartbeat_interval)
        if claim is None:
            return None
        errors = []
        with claim:
            for attempt in range(1 + self.cfg.retries):
                try:
                    action, run_id = self._advance(plan, seed)
                    claim.finish()
                    return {**outcome, "action": action, "run_id": run_id, "errors": errors}
                except KeyboardInterrupt:
                    raise
                except Exception as e:  # a failed run is retried, then reported
                    if isinstance(find_medattn_error(e), StorageError):  # a full disk fails every run: stop here
                        raise
                    err = find_medattn_error(e) or e
                    errors.append(mask_secrets(f"{type(err).__name__}: {error_message(err)}"))
                    logger.warning("%s seed %d failed (attempt %d of %d): %s", plan.label, seed, attempt + 1,
                                   1 + self.cfg.retries, errors[-1])
        failure = {**outcome, "action": "failed", "run_id": None, "errors": errors}
        self.failures.append(failure)
        return failure

    # --- the matrix ------------------------------------------------------------------------------------------
    def run(self, plans: list[CellPlan]) -> None:
        from tqdm.auto import tqdm

        total = sum(len(p.seeds) for p in plans)
        remaining = {id(p): list(p.seeds) for p in plans}
        pending = list(plans)
        # the runs' own lines (epochs, MLflow, evaluation) are hidden: the bar and one line per finished run remain
        with quiet_runs(), tqdm(total=total, desc="study", unit="run", dynamic_ncols=True) as bar:
            while pending:
                progressed = False
                for plan in list(pending):
                    if plan.params is None:
                        bar.set_postfix_str(f"{plan.label}: search")
                        if not self.parameters(plan):
                            continue
                        plan.resolve()
                        bar.write(f"{plan.label}: {plan.source}: {json.dumps(plan.params, sort_keys=True)}")
                        progressed = True
                    for seed in list(remaining[id(plan)]):
                        bar.set_postfix_str(f"{plan.label} seed {seed}")
                        started = time.monotonic()
                        outcome = self.ensure(plan, seed)
                        if outcome is None:
                            continue
                        self.outcomes.append(outcome)
                        remaining[id(plan)].remove(seed)
                        bar.update(1)
                        progressed = True
                        bar.write(_finished_line(plan, seed, outcome, time.monotonic() - started))
                    if not remaining[id(plan)]:
                        pending.remove(plan)
                if pending and not progressed:
                    bar.set_postfix_str(f"waiting for other workers ({len(pending)} cells)")
                    time.sleep(POLL_S)


def _finished_line(plan: CellPlan, seed: int, outcome: dict[str, Any], seconds: float) -> str:
    """The one line a finished (cell, seed) gets on the screen: what was done, the run, its metrics."""
    if outcome["action"] == "failed":
        return f"{plan.label} seed {seed}: FAILED ({'; '.join(outcome['errors'])})"
    run = open_client(plan.tracking_uri).get_run(outcome["run_id"])
    metrics = "  ".join(f"{k} {run.data.metrics[k]:.4f}" for k in ("best_val_bacc", "test_bacc")
                        if k in run.data.metrics)
    if outcome["action"] == "skipped":
        return f"{plan.label} seed {seed}: done before, {run.info.run_name}  {metrics}"
    return f"{plan.label} seed {seed}: {outcome['action']} {run.info.run_name}  {metrics}  [{seconds:.0f} s]"


def _where_to_watch(plans: list[CellPlan]) -> list[str]:
    """A line per experiment of the study: its comparison view in the MLflow UI."""
    lines = []
    for experiment in sorted({p.experiment for p in plans if p.experiment}):
        uri = next(p.tracking_uri for p in plans if p.experiment == experiment)
        found = open_client(uri).get_experiment_by_name(experiment)
        if found is not None:
            lines.append(f"{experiment}: {where_to_watch(uri, found.experiment_id)}")
    return lines


def _compare(cfg: StudyConfig, plans: list[CellPlan], out: Path) -> None:
    settings = {k: v for k, v in cfg.compare.items() if k != "enabled"}
    for experiment in sorted({p.experiment for p in plans if p.experiment}):
        uri = next(p.tracking_uri for p in plans if p.experiment == experiment)
        compare(experiment, out=str(out / "comparison" / experiment), tracking_uri=uri, **settings)


def _explain(cfg: StudyConfig, runs: pd.DataFrame, plans: list[CellPlan]) -> None:
    """``medattn explain`` on the first seed's run of every cell, unless that run was explained already."""
    settings = {k: v for k, v in cfg.explain.items() if k != "enabled"}
    uris = {p.experiment: p.tracking_uri for p in plans}
    for (experiment, cell), group in runs.groupby(["experiment", "cell"], sort=False):
        run_id = group.sort_values("seed")["run_id"].iloc[0]
        client = open_client(uris.get(experiment))
        exp = client.get_experiment_by_name(experiment)
        done = client.search_runs([exp.experiment_id], max_results=1, filter_string=(
            "tags.run_type = 'explain' and tags.analysis = 'maps' and attributes.status = 'FINISHED' "
            f"and tags.explained_run_id = {filter_literal(run_id)}"))
        if done:
            continue
        try:
            explain(run_id=run_id, output_root=cfg.output_root, tracking_uri=uris.get(experiment), **settings)
        except Exception as e:  # noqa: BLE001 - explanations are a report, not a reason to lose the study
            message = mask_secrets(error_message(find_medattn_error(e) or e))
            print(f"explain {cell} ({run_id}): failed: {message}")
        finally:
            release_memory()


def study(config: str | None = None, demo: bool = False, out: str | None = None, **changes: Any) -> StudyResult:
    """Run the study of ``config`` (resumable; several workers may run it at once on a shared storage).

    Args:
        config: the study YAML/JSON (see ``docs/study.md``).
        demo: the whole protocol on small synthetic ISIC data (ResNet18 none/ga/la/ela, 2 trials per variant,
            3 seeds, 64 px): a few minutes on a laptop; writes ``demo_data/study`` and runs into ``runs/``.
        out: folder of the summary and comparison (default: the config's ``out``).
        changes: top-level config keys to change, e.g. ``--gpus_per_run 2`` or ``--seeds 5``.

    Returns:
        The :class:`StudyResult`; raises :class:`StudyIncomplete` at the end if some run failed twice.
    """
    import yaml

    if demo == bool(config):
        raise ConfigError("give either --config study.yaml or --demo")
    if demo:
        from .demo import demo_config

        raw = demo_config()
    else:
        raw = read_study_file(config)
    raw = {**raw, **changes, **({"out": out} if out else {})}
    cfg = StudyConfig.from_dict(raw, source=str(config or "the demo study"))
    for folder in (cfg.out, cfg.output_root):  # found now, not after hours of training
        if any(p.exists() and not p.is_dir() for p in (Path(folder), *Path(folder).parents)):
            raise ConfigError(f"{folder} cannot be the study's folder: it or a folder above it is a file")
    plans = plans_of(cfg)
    runner_storage = cfg.storage or default_storage(cfg.output_root)
    print(f"study {cfg.name}: {len(plans)} cells × {len(cfg.seeds)} seeds "
          f"({', '.join(p.label for p in plans)}); Optuna storage {mask_secrets(runner_storage)}")
    print(f"MLflow store: `{mlflow_ui_command(cfg.tracking_uri)}` opens its UI; runs appear there as they train")
    runner = _Runner(cfg)  # opens the storage: an unreachable database stops the study here, nothing trained
    runner.run(plans)

    out_dir = Path(cfg.out)
    runs = collect_runs(plans)
    empty = pd.DataFrame(columns=["experiment", "cell", "metric", "n", "mean", "std"])
    summary = summarize(runs) if len(runs) else empty
    files = write_summary(runs, summary, out_dir, cfg, runner.outcomes)
    wide = wide_summary(summary, terminal=True)
    print("\n" + (terminal_table(wide) if not wide.empty else "no finished runs") + "\n")
    counts: dict[str, int] = {}
    for o in runner.outcomes:
        counts[o["action"]] = counts.get(o["action"], 0) + 1
    print("runs: " + ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) + f"; summary in {out_dir}")
    for line in _where_to_watch(plans):
        print(line)
    log_summary(cfg, plans, files, mask_secrets(yaml.safe_dump(raw, sort_keys=False)))
    if cfg.compare["enabled"] and len(runs):
        _compare(cfg, plans, out_dir)
    if cfg.explain["enabled"] and len(runs):
        _explain(cfg, runs, plans)
    result = StudyResult(str(out_dir), runs, summary, runner.outcomes, runner.failures)
    if runner.failures:
        listed = "; ".join(f"{f['cell']} seed {f['seed']}: {f['errors'][-1]}" for f in runner.failures)
        raise StudyIncomplete(f"{len(runner.failures)} run(s) failed after {cfg.retries} retr"
                              f"{'y' if cfg.retries == 1 else 'ies'}: {listed}")
    return result
