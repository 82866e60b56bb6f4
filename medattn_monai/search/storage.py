"""The Optuna storage that workers share: a journal file on one machine, a database for several.

- A path (default ``<output_root>/optuna.journal``): Optuna's ``JournalStorage`` with a file backend. Appends are
  serialised by a lock file, so any number of processes on one machine (or on a file system with working
  symbolic links, e.g. NFS) can share it.
- A URL (``postgresql://user:pass@host/db``, ``mysql+pymysql://…``, ``sqlite:///…``): Optuna's ``RDBStorage``, for
  workers on several machines. (SQLite locks the whole file: fine for one machine, not for many writers.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["DEFAULT_JOURNAL", "default_storage", "open_storage", "is_url"]

DEFAULT_JOURNAL = "optuna.journal"


def is_url(storage: str) -> bool:
    """Whether ``storage`` names a database (an Optuna RDB URL) rather than a journal file."""
    return "://" in storage


def default_storage(output_root: str = "runs") -> str:
    """The default storage: a journal file beside the run folders."""
    return str(Path(output_root) / DEFAULT_JOURNAL)


def open_storage(storage: str) -> Any:
    """An Optuna storage object for a journal path or a database URL (see the module docstring)."""
    import optuna

    if not isinstance(storage, str) or not storage:
        raise ConfigError(f"storage must be a journal file path or a database URL, got {storage!r}")
    if is_url(storage):
        try:
            return optuna.storages.RDBStorage(storage)
        except Exception as e:  # noqa: BLE001 - SQLAlchemy raises many types for a bad URL or server
            raise ConfigError(f"cannot open the Optuna storage {storage}: {e}") from None
    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
