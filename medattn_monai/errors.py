"""Error types whose message is the whole story for the user.

A :class:`MedattnError` names the file, row or field at fault. The command line prints it on one line and exits
with status 2; :func:`install_excepthook` does the same for ``python -m monai.bundle run`` (the bundles call it
from their ``initialize`` list). Set ``MEDATTN_TRACEBACK=1`` to see the full traceback anyway.
"""

from __future__ import annotations

import os
import sys

__all__ = ["MedattnError", "DataError", "ConfigError", "install_excepthook", "find_cause", "find_medattn_error",
           "error_message"]


class MedattnError(Exception):
    """Base class: an error caused by the user's input, explained by its message."""

    exit_code = 2


class DataError(MedattnError):
    """Bad data: a missing or unreadable image, an unknown label, wrong CSV columns, an empty split."""


class ConfigError(MedattnError):
    """Bad configuration: an unknown key, a value out of range, an inconsistent combination."""


def find_cause(exc: BaseException | None, kind: type | tuple[type, ...]) -> BaseException | None:
    """Return the first exception of type ``kind`` in ``exc``'s cause/context chain (Ignite and MONAI wrap errors,
    e.g. MONAI's ``RuntimeError("Failed to evaluate …")`` around whatever a bundle's ``run`` expression raised)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def find_medattn_error(exc: BaseException | None) -> MedattnError | None:
    """Return the first :class:`MedattnError` in ``exc``'s cause/context chain."""
    return find_cause(exc, MedattnError)  # type: ignore[return-value]


def error_message(err: BaseException) -> str:
    """The message of ``err`` without the worker traceback PyTorch's DataLoader prepends when re-raising it."""
    text = str(err)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        _, sep, msg = last.partition(f"{type(err).__name__}: ")
        text = msg if sep else last
    return text


def _excepthook(exc_type, exc, tb, _previous=sys.excepthook):
    err = find_medattn_error(exc)
    if err is None or os.environ.get("MEDATTN_TRACEBACK"):
        _previous(exc_type, exc, tb)
        return
    print(f"medattn: error: {error_message(err)}", file=sys.stderr)
    sys.stderr.flush()
    # sys.exit is not possible from an excepthook; the interpreter exits with status 1 after it returns


def install_excepthook() -> None:
    """Print project errors as one line (no traceback) when they end the program. Idempotent."""
    if sys.excepthook is not _excepthook:
        sys.excepthook = _excepthook
