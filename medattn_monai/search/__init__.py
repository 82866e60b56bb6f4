"""Hyper-parameter search and the multi-seed study: Optuna trials as MLflow child runs, then every cell of the
matrix (datasets × backbones × variants and baselines) trained with its best parameters for every seed."""

from __future__ import annotations

from .cells import Cell, matrix, network_label
from .pruning import OptunaPruning
from .search import SearchResult, search, search_study_name
from .space import SearchSpace, load_space
from .storage import default_storage, open_storage
from .study import StudyIncomplete, StudyResult, study, summarize
from .study_config import StudyConfig, load_study_config

__all__ = [
    "Cell", "OptunaPruning", "SearchResult", "SearchSpace", "StudyConfig", "StudyIncomplete", "StudyResult",
    "default_storage", "load_space", "load_study_config", "matrix", "network_label", "open_storage", "search",
    "search_study_name", "study", "summarize",
]
