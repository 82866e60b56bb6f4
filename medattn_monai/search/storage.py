"""The Optuna storage that workers share: a journal file on one machine, a database for several.

- A path (default ``<output_root>/optuna.journal``): Optuna's ``JournalStorage`` with a file backend. Appends are
  serialised by a lock file, so any number of processes on one machine (or on a file system with working
  symbolic links, e.g. NFS) can share it.
- A URL (``postgresql://user:pass@host/db``, ``mysql+pymysql://…``, ``sqlite:///…``): Optuna's ``RDBStorage``, for
  workers on several machines. (SQLite locks the whole file: fine for one machine, not for many writers.)

Opening a database copes with what happens when a team starts: workers started at the same moment on a new
database all create Optuna's tables at once, and all but one fail (PostgreSQL: ``duplicate key value violates
unique constraint "pg_type_typname_nsp_index"``): such a creation race is retried after a short, growing pause. A
database that cannot be reached is retried until ``timeout`` seconds have passed, then refused with one line that
names its URL with the password masked. The URL itself (with its password) is used only to connect.
"""

from __future__ import annotations

import logging
import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..tracking.store import mask_log_records, mask_secrets

__all__ = ["DEFAULT_JOURNAL", "STORAGE_TIMEOUT_S", "default_storage", "is_url", "open_storage"]

DEFAULT_JOURNAL = "optuna.journal"
STORAGE_TIMEOUT_S = 30.0
_RACE_TRIES = 12
_RACE_WORDS = ("already exists", "duplicate key", "uniqueviolation", "duplicatetable", "duplicateobject",
               "duplicate entry")

logger = logging.getLogger("medattn")


def is_url(storage: str) -> bool:
    """Whether ``storage`` names a database (an Optuna RDB URL) rather than a journal file."""
    return "://" in storage


def default_storage(output_root: str = "runs") -> str:
    """The default storage: a journal file beside the run folders."""
    return str(Path(output_root) / DEFAULT_JOURNAL)


def open_storage(storage: str, heartbeat_interval: int | None = None, grace_period: int | None = None,
                 stale_trial_callback: Callable[[Any, Any], None] | None = None,
                 timeout: float = STORAGE_TIMEOUT_S) -> Any:
    """An Optuna storage object for a journal path or a database URL (see the module docstring).

    Args:
        storage: a journal file path or a database URL.
        heartbeat_interval, grace_period: seconds; on a database, Optuna's own trial heartbeat (a RUNNING trial
            without a heartbeat for ``grace_period`` seconds is failed by ``optuna.storages.fail_stale_trials``,
            which then calls ``stale_trial_callback(study, trial)``). A journal has no heartbeat of Optuna's:
            :mod:`.liveness` keeps one for it.
        timeout: seconds to keep trying to reach a database before giving up with one line.
    """
    import optuna

    if not isinstance(storage, str) or not storage:
        raise ConfigError(f"storage must be a journal file path or a database URL, got {storage!r}")
    if is_url(storage):
        heartbeat = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period,
                     "heartbeat_stale_trial_callback": stale_trial_callback} if heartbeat_interval else {}
        return _open_database(storage, heartbeat, timeout)
    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error.__cause__ or error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return mask_secrets(lines[0] if lines else type(cause).__name__)


def _is_creation_race(error: BaseException) -> bool:
    text = f"{error} {error.__cause__ or ''}".lower()
    return any(word in text for word in _RACE_WORDS)


def _connect_args(url: str, seconds: float) -> dict[str, Any]:
    # without a connect timeout, a host that drops packets blocks for the operating system's TCP timeout (minutes)
    if url.startswith(("postgresql", "postgres", "mysql", "mariadb")):
        return {"connect_args": {"connect_timeout": max(2, int(seconds))}}
    return {}


def _open_database(url: str, heartbeat: dict[str, Any], timeout: float) -> Any:
    """``RDBStorage(url)``, retrying the table-creation race and an unreachable server (see the module docstring)."""
    import optuna
    import sqlalchemy.exc

    shown = mask_secrets(url)
    if shown != url:
        mask_log_records()  # SQLAlchemy and the drivers may log it
    deadline, races, pause = time.monotonic() + timeout, 0, 0.1
    while True:
        left = deadline - time.monotonic()
        try:
            with warnings.catch_warnings():  # heartbeat_interval is "experimental" in Optuna: not the user's concern
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=_connect_args(url, min(max(left, 2), 10)),
                                                  **heartbeat)
        except ImportError as e:
            raise ConfigError(f"cannot open the Optuna storage {shown}: its database driver is missing "
                              f"({_first_line(e)}); for postgresql:// URLs install psycopg 3: "
                              "pip install \"psycopg[binary]\"") from None
        except sqlalchemy.exc.ArgumentError as e:
            raise ConfigError(f"cannot open the Optuna storage {shown}: not a database URL "
                              f"({_first_line(e)})") from None
        except Exception as e:  # noqa: BLE001 - SQLAlchemy and the drivers raise many types
            if _is_creation_race(e) and races < _RACE_TRIES:
                races += 1  # another worker is creating the same tables this very moment: theirs will do
                time.sleep(pause * (1 + random.random()))
                pause = min(2 * pause, 2.0)
                continue
            unreachable = isinstance(e, sqlalchemy.exc.OperationalError) and not url.startswith("sqlite")
            if unreachable and time.monotonic() + 1 < deadline:
                logger.info("Optuna storage %s not reachable yet, retrying: %s", shown, _first_line(e))
                time.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
                continue
            if unreachable:
                raise ConfigError(f"cannot reach the Optuna storage {shown} within {timeout:g} s: "
                                  f"{_first_line(e)}") from None
            raise ConfigError(f"cannot open the Optuna storage {shown}: {_first_line(e)}") from None
