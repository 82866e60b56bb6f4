"""Is a worker alive? Owners and heartbeats kept in the shared Optuna storage, so work left by a dead worker is taken
over.

An owner is a process (host, process id and the process's start time); a heartbeat is a time stamp a background
thread refreshes. An owner is dead when its process no longer exists on this host, or, seen from another host,
when its heartbeat is older than ``grace`` seconds.

A search trial records its owner and heartbeat as Optuna trial user attributes: a trial left RUNNING by a dead
worker is marked FAIL (:func:`fail_stale_trials`), so its budget goes back to the search. The study's claims on its
runs (:mod:`medattn_monai.study.claims`) use the same owners and heartbeats.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any, Callable

__all__ = ["GRACE_S", "HEARTBEAT_S", "OWNER", "Heartbeat", "owner_alive", "fail_stale_trials", "trial_heartbeat"]

HEARTBEAT_S = 60.0
GRACE_S = 600.0


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

    def __enter__(self) -> "Heartbeat":
        self.beat(time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def trial_heartbeat(storage: Any, trial_id: int, interval: float = HEARTBEAT_S) -> Heartbeat:
    """Record this process as the owner of a RUNNING trial and keep its heartbeat fresh."""
    storage.set_trial_user_attr(trial_id, "owner", OWNER)
    return Heartbeat(lambda now: storage.set_trial_user_attr(trial_id, "heartbeat", now), interval)


def fail_stale_trials(study: Any, storage: Any, grace: float = GRACE_S) -> list[int]:
    """Mark FAIL the RUNNING trials of ``study`` (kept in ``storage``) whose worker died; returns their numbers."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if "owner" not in attrs and trial.datetime_start and time.time() - trial.datetime_start.timestamp() < grace:
            continue  # just started: its owner has not written its name yet
        if owner_alive(attrs.get("owner"), attrs.get("heartbeat"), grace):
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, "stale", True)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            failed.append(trial.number)
        except (UpdateFinishedTrialError, RuntimeError):
            pass  # another worker got there first
    return failed
