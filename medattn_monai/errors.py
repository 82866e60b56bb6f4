"""Error types whose message is the whole story for the user.

A :class:`MedattnError` names the file, row or field at fault. The command line prints it on one line and exits
with status 2; :func:`install_excepthook` does the same for ``python -m monai.bundle run`` (the bundles call it
from their ``initialize`` list). Set ``MEDATTN_TRACEBACK=1`` to see the full traceback anyway.
"""

from __future__ import annotations

import os
import sys

__all__ = ["MedattnError", "DataError", "ConfigError", "StorageError", "install_excepthook", "find_cause",
           "find_medattn_error", "error_message", "exception_chain", "file_system_error"]


class MedattnError(Exception):
    """Base class: an error caused by the user's input, explained by its message."""

    exit_code = 2


class DataError(MedattnError):
    """Bad data: a missing or unreadable image, an unknown label, wrong CSV columns, an empty split."""


class ConfigError(MedattnError):
    """Bad configuration: an unknown key, a value out of range, an inconsistent combination."""


class StorageError(MedattnError):
    """A place the command must write to cannot take it: a full disk, a read-only folder or store, a file too large.

    Not the user's input, so not exit status 2; the message names the place and what was left as it was.
    """

    exit_code = 1


def exception_chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling (``__cause__``, else ``__context__``), in
    that order, each once."""
    chain: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in chain):
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def find_cause(exc: BaseException | None, kind: type | tuple[type, ...]) -> BaseException | None:
    """Return the first exception of type ``kind`` in ``exc``'s cause/context chain (Ignite and MONAI wrap errors,
    e.g. MONAI's ``RuntimeError("Failed to evaluate …")`` around whatever a bundle's ``run`` expression raised)."""
    return next((e for e in exception_chain(exc) if isinstance(e, kind)), None)


def find_medattn_error(exc: BaseException | None) -> MedattnError | None:
    """Return the first :class:`MedattnError` in ``exc``'s cause/context chain."""
    return find_cause(exc, MedattnError)  # type: ignore[return-value]


def file_system_error(exc: BaseException | None) -> StorageError | None:
    """A :class:`StorageError` for an ``OSError`` naming a file (a folder that cannot be created, a file that cannot
    be read or written) in ``exc``'s chain: the file and the system's reason are the whole story for the user."""
    err = find_cause(exc, OSError)
    if err is None or not getattr(err, "filename", None) or not err.strerror:
        return None
    return StorageError(f"cannot use {err.filename}: {err.strerror}")


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
