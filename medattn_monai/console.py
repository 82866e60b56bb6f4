"""What the terminal shows: the project's own lines by default, the engines' log lines with ``--verbose``.

Every Ignite engine logs its runs through a logger under ``ignite.engine.engine`` (``Engine.logger``): "Engine run
resuming from iteration 0, epoch N" and "Epoch[N] Complete" for the training and again for the validation
evaluator, which runs once per epoch; MONAI adds "Got new best metric …" through the same logger. Ignite also logs
an exception before re-raising it ("Engine run is terminating due to exception: …"), and the text of an exception
re-raised from a DataLoader worker holds the worker's whole traceback: one bad image printed two tracebacks before
the one-line error. The exception still ends the command after that, as one line for a project error and with its
traceback for any other (or with ``MEDATTN_TRACEBACK=1``), so these log lines only repeat it.

By default the ``medattn`` commands show none of these lines; ``--verbose`` (or ``MEDATTN_VERBOSE=1``, which a
``torchrun`` child inherits) shows them all. For ``python -m monai.bundle run`` the bundle's ``logging.conf``
decides (it sets the same loggers quiet). :func:`quiet_runs` keeps a study's many trainings to the study's own
lines.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ENGINE_LOGGER", "VERBOSE_ENV", "apply_engine_logging", "is_verbose", "quiet_runs", "set_verbose"]

VERBOSE_ENV = "MEDATTN_VERBOSE"
# the parent of every engine's logger (Ignite names them ignite.engine.engine.<class>)
ENGINE_LOGGER = "ignite.engine.engine"
# "Setting logging properties based on config: …", once per workflow (a study creates hundreds)
MONAI_WORKFLOW_LOGGER = "monai.bundle.workflows"
# the project's per-run lines: epoch summaries, run start and end, evaluation results, search trials
PROJECT_LOGGERS = ("medattn", "medattn_monai")


def is_verbose() -> bool:
    """Whether the user asked for every log line (``--verbose`` or ``MEDATTN_VERBOSE``)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes")


def set_verbose(verbose: bool) -> None:
    """Record the choice in the environment, where processes started from this one find it too."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)


def apply_engine_logging(verbose: bool | None = None) -> None:
    """Show the engines' log lines (``verbose``) or none of them; None: as :func:`is_verbose` says.

    Call it after MONAI applied a bundle's ``logging.conf`` (which may set these loggers itself).
    """
    verbose = is_verbose() if verbose is None else verbose
    logging.getLogger(ENGINE_LOGGER).setLevel(logging.INFO if verbose else logging.CRITICAL)
    logging.getLogger(MONAI_WORKFLOW_LOGGER).setLevel(logging.INFO if verbose else logging.WARNING)


@contextmanager
def quiet_runs(verbose: bool | None = None) -> Iterator[None]:
    """Within the block, the project's per-run INFO lines are hidden (warnings still show), unless ``verbose``."""
    verbose = is_verbose() if verbose is None else verbose
    loggers = [logging.getLogger(name) for name in PROJECT_LOGGERS]
    levels = [lg.level for lg in loggers]
    if not verbose:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
