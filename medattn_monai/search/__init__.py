"""Hyper-parameter search: an Optuna study over bundle trainings, each trial an MLflow child run of the search's
parent run; workers on one storage share its trials (:mod:`.liveness` tells a live worker from a dead one)."""

from __future__ import annotations

from .pruning import OptunaPruning
from .search import SearchResult, search, search_study_name
from .space import SearchSpace, load_space
from .storage import default_storage, open_storage

__all__ = [
    "OptunaPruning", "SearchResult", "SearchSpace", "default_storage", "load_space", "open_storage", "search",
    "search_study_name",
]
