"""The study: the paper's protocol as one resumable command (``medattn study``).

For every cell of the matrix (datasets × backbones × variants and baselines, :mod:`.cells`): a hyper-parameter
search (:mod:`medattn_monai.search`), one training per seed, evaluation, then the summary (:mod:`.summary`), the
statistical comparison (:mod:`medattn_monai.stats`) and explanations (:mod:`medattn_monai.explain`). The
orchestrator is :mod:`.runner`; its configuration :mod:`.config`; workers split the runs through :mod:`.claims`.
"""

from __future__ import annotations

from .cells import Cell, matrix
from .config import StudyConfig, load_study_config
from .runner import StudyIncomplete, StudyResult, study
from .summary import summarize

__all__ = ["Cell", "StudyConfig", "StudyIncomplete", "StudyResult", "load_study_config", "matrix", "study", "summarize"]
