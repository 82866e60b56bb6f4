"""Who is working on what: leases held in the shared Optuna storage, so workers never do the same work twice and
work left by a dead worker is taken over.

Each lease records its owner (host, process id and the process's start time) and a heartbeat refreshed by a
background thread. An owner is dead when its process no longer exists on this host, or, seen from another host,
when its heartbeat is older than ``grace`` seconds.

Two kinds of work carry leases:

- a search trial (Optuna trial user attributes ``owner`` and ``heartbeat``): a trial left RUNNING by a dead worker is
  marked FAIL, so its budget goes back to the search;
- a study run ``(cell, seed)``: a claim is an Optuna *study* named ``claim:<key>#<generation>``. Creating a study
  is atomic in every Optuna storage (journal and database), so of two workers claiming at once exactly one wins;
  a dead holder's claim is taken over by creating the next generation, which again only one worker can do.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["OWNER", "Heartbeat", "Claim", "owner_alive", "fail_stale_trials", "try_claim", "claim_state"]

HEARTBEAT_S = 60.0
GRACE_S = 600.0
CLAIM_PREFIX = "claim:"


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


@dataclass
class Claim:
    """A claim on one unit of work (see the module docstring); ``release`` or ``finish`` it when done."""

    storage: Any
    key: str
    study_id: int
    generation: int
    _heartbeat: Heartbeat | None = field(default=None, repr=False)
    _done: bool = field(default=False, repr=False)

    def _set(self, name: str, value: Any) -> None:
        self.storage.set_study_user_attr(self.study_id, name, value)

    def __enter__(self) -> "Claim":
        self._heartbeat = Heartbeat(lambda now: self._set("heartbeat", now))
        self._heartbeat.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._heartbeat is not None:
            self._heartbeat.__exit__()
        # done work stays claimed (later workers skip it); failed or interrupted work is given back
        self._set("state", "done" if exc_type is None and self._done else "released")

    def finish(self) -> None:
        """Mark the work done (it stays claimed, so nobody redoes it)."""
        self._done = True


def _claim_name(key: str, generation: int) -> str:
    return f"{CLAIM_PREFIX}{key}#{generation}"


def claim_state(storage: Any, key: str, grace: float = GRACE_S) -> tuple[str, int]:
    """``(state, generation)`` of the newest claim on ``key``: ``free``, ``held`` (a live worker), ``done``,
    ``released`` or ``stale`` (its worker died)."""
    generation, newest = 0, None
    while True:
        try:
            sid = storage.get_study_id_from_name(_claim_name(key, generation))
        except KeyError:
            break
        newest, generation = sid, generation + 1
    if newest is None:
        return "free", 0
    attrs = storage.get_study_user_attrs(newest)
    generation -= 1
    if attrs.get("state") in ("done", "released"):
        return attrs["state"], generation
    if "owner" not in attrs:
        return "held", generation  # its creator is writing its name this very moment
    return ("held" if owner_alive(attrs["owner"], attrs.get("heartbeat"), grace) else "stale"), generation


def try_claim(storage: Any, key: str, grace: float = GRACE_S) -> Claim | None:
    """Claim ``key`` for this process, or None when a live worker holds it.

    A ``done`` claim can be claimed again: whether work is done is the caller's record to judge (a study asks
    MLflow), the claim only keeps two workers from doing it at once.
    """
    from optuna.exceptions import DuplicatedStudyError
    from optuna.study import StudyDirection

    state, generation = claim_state(storage, key, grace)
    if state == "held":
        return None
    if state != "free":  # released or stale: the next generation
        generation += 1
    try:
        sid = storage.create_new_study([StudyDirection.MAXIMIZE], _claim_name(key, generation))
    except DuplicatedStudyError:
        return None  # another worker claimed it first
    storage.set_study_user_attr(sid, "owner", OWNER)
    return Claim(storage, key, sid, generation)
