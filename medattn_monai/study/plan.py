"""One cell of a study on its way through it: its bundle keys, then its parameters, then its runs in MLflow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..engine.bundles import DEFAULT_BUNDLE, bundle_configs, data_overrides, load_config
from ..tracking.mlflow_runs import filter_literal, open_client
from ..tracking.tags import cell_of
from .cells import Cell, matrix
from .config import StudyConfig

__all__ = ["CellPlan", "find_runs", "is_done", "plans_of"]


@dataclass
class CellPlan:
    """One cell on its way through the study: its bundle keys, then its parameters, then its runs."""

    cell: Cell
    bundle: str
    base: dict[str, Any]
    seeds: list[int]
    params: dict[str, Any] | None = None
    source: str = ""
    cell_hash: str = ""
    experiment: str = ""
    tracking_uri: str | None = None

    @property
    def label(self) -> str:
        return self.cell.label

    def overrides(self, seed: int) -> dict[str, Any]:
        """The bundle keys of the cell's run with ``seed``: read from files (the study config, the search's
        storage), so checked as data, never code."""
        source = f"the study's keys for cell {self.label} ({self.source or 'study config'})"
        return data_overrides({**self.base, **(self.params or {}), "seed": seed}, source)

    def resolve(self) -> None:
        """Fix the cell's identity (its ``cell`` tag) and experiment from its final configuration."""
        parser = load_config(bundle_configs(self.bundle, "train.json"), **self.overrides(self.seeds[0]))
        datalist = parser.get_parsed_content("datalist_content")
        self.cell_hash = cell_of(parser.get_parsed_content("dataset_name"), datalist["split_hash"],
                                 parser.get_parsed_content("hyper_parameters"))
        self.experiment = parser.get_parsed_content("experiment_name")
        self.tracking_uri = parser.get_parsed_content("tracking_uri")


def plans_of(cfg: StudyConfig) -> list[CellPlan]:
    """A plan for every cell of the study's matrix, with the bundle keys its runs share."""
    cells = matrix(len(cfg.datasets), cfg.backbones, cfg.variants, cfg.baselines)
    plans = []
    for cell in cells:
        dataset = dict(cfg.datasets[cell.dataset])
        bundle = dataset.pop("bundle", DEFAULT_BUNDLE)
        base = {"progress": False, **cfg.overrides, **dataset, **cell.network, "output_root": cfg.output_root}
        if cfg.tracking_uri:
            base["tracking_uri"] = cfg.tracking_uri
        base["extra_tags"] = {**base.get("extra_tags", {}), "study": cfg.name}
        plans.append(CellPlan(cell, bundle, base, list(cfg.seeds)))
    return plans


def find_runs(plan: CellPlan, seed: int) -> list[Any]:
    """The training runs of (cell, seed), newest first."""
    client = open_client(plan.tracking_uri)
    exp = client.get_experiment_by_name(plan.experiment)
    if exp is None:
        return []
    query = (f"tags.cell = {filter_literal(plan.cell_hash)} and tags.seed = {filter_literal(seed)} "
             "and tags.run_type = 'train'")
    return client.search_runs([exp.experiment_id], filter_string=query, order_by=["attributes.start_time DESC"])


def is_done(run: Any) -> bool:
    """Whether a run of (cell, seed) is done: FINISHED and evaluated."""
    return run.info.status == "FINISHED" and run.data.tags.get("evaluated") == "true"
