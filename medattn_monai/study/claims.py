"""Claims on a study's runs: which worker trains which ``(cell, seed)``, held in the shared Optuna storage.

A claim is an Optuna *study* named ``claim:<key>#<generation>``. Creating a study is atomic in every Optuna storage
(journal and database), so of two workers claiming at once exactly one wins; a dead holder's claim (its owner's
process gone, or its heartbeat older than ``grace`` seconds) is taken over by creating the next generation, which
again only one worker can do. Optuna's heartbeat covers trials only, so claims keep an owner and heartbeat of our
own (:mod:`medattn_monai.search.liveness` says which mechanism applies where).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..search.liveness import GRACE_S, HEARTBEAT_S, OWNER, Heartbeat, owner_alive

__all__ = ["CLAIM_PREFIX", "Claim", "claim_state", "try_claim"]

CLAIM_PREFIX = "claim:"
# claims seen without an owner, and when first: one still ownerless after the grace period lost its creator between
# creating it and naming itself (a worker killed right then would otherwise block its run for good)
_OWNERLESS: dict[tuple[int, int], float] = {}


@dataclass
class Claim:
    """A claim on one unit of work (see the module docstring); ``release`` or ``finish`` it when done."""

    storage: Any
    key: str
    study_id: int
    generation: int
    interval: float = HEARTBEAT_S
    _heartbeat: Heartbeat | None = field(default=None, repr=False)
    _done: bool = field(default=False, repr=False)

    def _set(self, name: str, value: Any) -> None:
        self.storage.set_study_user_attr(self.study_id, name, value)

    def __enter__(self) -> Claim:
        self._heartbeat = Heartbeat(lambda now: self._set("heartbeat", now), self.interval)
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
    if "owner" not in attrs:  # its creator is writing its name this very moment, or died just before
        first = _OWNERLESS.setdefault((id(storage), newest), time.time())
        return ("held" if time.time() - first < grace else "stale"), generation
    return ("held" if owner_alive(attrs["owner"], attrs.get("heartbeat"), grace) else "stale"), generation


def try_claim(storage: Any, key: str, grace: float = GRACE_S, interval: float = HEARTBEAT_S) -> Claim | None:
    """Claim ``key`` for this process (its heartbeat every ``interval`` seconds), or None when a live worker holds
    it (a worker on another host without heartbeat for ``grace`` seconds counts as dead).

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
    return Claim(storage, key, sid, generation, interval)
