"""Is a worker alive? Which engine answers depends on the storage:

- **Search trials on a database** (``RDBStorage``): Optuna's own heartbeat. The worker records it with
  ``storage.record_heartbeat`` every ``heartbeat_interval`` seconds; ``optuna.storages.fail_stale_trials`` fails a
  RUNNING trial whose heartbeat is older than ``grace_period`` and calls the search's stale-trial callback
  (:mod:`.reconcile`). Besides, a trial records its owner (host, process id, start time), so that on the owner's own
  host a dead process is recognised at once instead of after the grace period.
- **Search trials on a journal file** (no heartbeat in Optuna for it) and **the study's run claims**
  (:mod:`medattn_monai.study.claims`, which are not trials): our own owner and heartbeat, kept as user attributes in
  the storage. An owner is dead when its process no longer exists on this host, or, seen from another host, when its
  heartbeat is older than ``grace`` seconds.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError

__all__ = ["GRACE_S", "HEARTBEAT_S", "OWNER", "Heartbeat", "check_liveness_settings", "owner_alive",
           "trial_heartbeat", "trial_worker_dead", "uses_optuna_heartbeat"]

HEARTBEAT_S = 60
GRACE_S = 600


def _start_time(pid: int) -> str | None:
    # field 22 of /proc/<pid>/stat: start time in clock ticks since boot (tells a reused pid from the original)
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}


OWNER = _owner()


def owner_alive(owner: dict[str, Any] | None, heartbeat: float | None, grace: float = GRACE_S) -> bool:
    """Whether the worker ``owner`` (an ``OWNER`` dict recorded earlier) still runs.

    On this host the process table decides; elsewhere the heartbeat's age (unknown owners count as alive for
    ``grace`` seconds after their last heartbeat).
    """
    if owner and owner.get("host") == socket.gethostname():
        pid = int(owner.get("pid", -1))
        if pid == os.getpid():
            return owner.get("start") == OWNER["start"]
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, another user's
        recorded, now = owner.get("start"), _start_time(pid)
        return recorded is None or now is None or recorded == now
    return heartbeat is not None and time.time() - float(heartbeat) < grace


class Heartbeat:
    """A daemon thread calling ``beat(time.time())`` every ``interval`` seconds until stopped (a context manager)."""

    def __init__(self, beat: Callable[[float], None], interval: float = HEARTBEAT_S) -> None:
        self.beat, self.interval = beat, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="medattn-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat(time.time())
            except Exception:  # noqa: BLE001 - a missed beat is harmless; the next one retries
                pass

    def __enter__(self) -> Heartbeat:
        self.beat(time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def check_liveness_settings(heartbeat_interval: Any, grace_period: Any, source: str = "search") -> None:
    """Refuse intervals Optuna cannot take (whole seconds) or a grace that a live worker could outlast."""
    for name, value in (("heartbeat_interval", heartbeat_interval), ("grace_period", grace_period)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ConfigError(f"{source}: {name} must be a whole number of seconds >= 1, got {value!r}")
    if grace_period <= heartbeat_interval:
        raise ConfigError(f"{source}: grace_period ({grace_period} s) must be longer than heartbeat_interval "
                          f"({heartbeat_interval} s), or live workers would be taken for dead between two beats")


def uses_optuna_heartbeat(storage: Any) -> bool:
    """Whether ``storage`` is a database storage opened with Optuna's trial heartbeat."""
    import optuna

    return isinstance(storage, optuna.storages.RDBStorage) and storage.get_heartbeat_interval() is not None


def trial_heartbeat(storage: Any, trial_id: int, interval: float = HEARTBEAT_S) -> Heartbeat:
    """Record this process as the owner of a RUNNING trial and keep its heartbeat fresh: Optuna's own on a
    database storage opened with a heartbeat, a ``heartbeat`` user attribute otherwise (a journal)."""
    storage.set_trial_user_attr(trial_id, "owner", OWNER)
    if uses_optuna_heartbeat(storage):
        return Heartbeat(lambda now: storage.record_heartbeat(trial_id), interval)
    return Heartbeat(lambda now: storage.set_trial_user_attr(trial_id, "heartbeat", now), interval)


def trial_worker_dead(trial: Any, grace: float, optuna_heartbeat: bool) -> bool:
    """Whether our own rules say that the worker of a RUNNING trial is gone.

    With ``optuna_heartbeat`` (a database storage), a worker on another host is judged by Optuna's heartbeat
    (``optuna.storages.fail_stale_trials``), not here; only a dead process on this host is recognised at once.
    """
    attrs = trial.user_attrs
    owner = attrs.get("owner")
    if owner is None:  # killed before writing its name, or writing it this very moment
        return bool(trial.datetime_start) and time.time() - trial.datetime_start.timestamp() > grace
    if optuna_heartbeat and owner.get("host") != socket.gethostname():
        return False
    return not owner_alive(owner, attrs.get("heartbeat"), grace)
