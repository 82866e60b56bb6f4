"""A run's checkpoints uploaded to its MLflow run while it trains, so that another machine can take the run over.

A team's workers share no file system: what a worker on another machine needs to resume a run (``run.json``,
``model.pt``, ``checkpoint_last.pt``: :mod:`.run_folder`) must be in MLflow before the worker that trains it dies.
:class:`CheckpointUploads` uploads each checkpoint's files from a background thread as soon as they are on disk:

- **Exactly the files of one checkpoint.** The files are hard-linked into ``<run folder>/.upload/<n>/`` the moment
  they are written (the run folder replaces its files, never edits them, so a link keeps that version; where links
  are impossible the files are copied) and uploaded from there, ``model.pt`` before ``checkpoint_last.pt`` as the
  checkpointer writes them: the uploaded checkpoint never claims a best epoch whose ``model.pt`` is not uploaded.
- **The newest wins.** A checkpoint written while an older one still waits replaces it (per file), so a slow
  network never queues up checkpoints.
- **A bounded share of the time.** Uploading takes CPU time (reading, sending; on a small machine also the
  server's), and a training's compute threads wait for the slowest of them: uploads take at most a tenth of the
  wall time. After uploading for *u* seconds the thread rests 9 *u* seconds; a checkpoint written meanwhile waits
  (the newest wins). An epoch of minutes is uploaded every epoch; very short epochs every few epochs, so a takeover
  may repeat a few of them.
- **Failures are retried, never fatal.** A failed upload (the server restarting, a network hiccup) is tried again
  after a growing pause (up to a minute), for as long as the run goes on; each attempt also has MLflow's own
  retries. Training never waits for an upload, except at its end (:meth:`CheckpointUploads.close`).

Which runs: every ``run_type=train`` run of a store that other machines reach (anything but a local ``sqlite:``
file); a local store has the run folder beside it, and a search trial is never resumed (a dead worker's trial is
failed and tried anew), so both get their files once, at the end, as before.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .store import mask_secrets

__all__ = ["STAGING", "CheckpointUploads", "uploads_each_checkpoint"]

logger = logging.getLogger("medattn")

STAGING = ".upload"  # inside the run folder; hidden, so never uploaded as an artifact itself
_PAUSES = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # seconds between attempts after consecutive failures
# at most this share of the wall time goes to uploading (benchmarks/RESULTS.md, section 6): after uploading for u
# seconds the thread rests u * (1 / share - 1) seconds before the next checkpoint, which may have replaced others
_MAX_SHARE = 0.1


def uploads_each_checkpoint(tracking_uri: str, run_type: str | None) -> bool:
    """Whether a run uploads every checkpoint as it is written (see the module docstring)."""
    return run_type == "train" and not str(tracking_uri).startswith("sqlite:")


def _stage(path: Path, folder: Path) -> Path:
    """``path`` hard-linked (else copied) into ``folder``; the staged file keeps its name (the artifact's)."""
    folder.mkdir(parents=True, exist_ok=True)
    staged = folder / path.name
    try:
        os.link(path, staged)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(path, staged)
    return staged


class CheckpointUploads:
    """Uploads a run's checkpoint files to its MLflow run from one background thread (see the module docstring).

    Args:
        client: an ``MlflowClient`` of the run's store.
        run_id: the MLflow run.
        run_dir: the run folder; files are staged in its ``.upload/`` folder.
    """

    def __init__(self, client: Any, run_id: str, run_dir: str | Path) -> None:
        self.client, self.run_id = client, run_id
        self.staging = Path(run_dir) / STAGING
        shutil.rmtree(self.staging, ignore_errors=True)  # left by a worker killed mid-upload
        self._pending: dict[str, Path] = {}  # artifact name -> staged file, in upload order
        self._uploaded: dict[str, tuple[int, ...]] = {}  # artifact name -> identity of the uploaded version
        self._busy = False
        self._closed = False
        self._flush = False  # set by close(): upload what waits without resting
        self._count = 0
        self._failures = 0
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="medattn-artifact-upload", daemon=True)
        self._thread.start()

    # --- the training's side ---------------------------------------------------------------------------------
    def submit(self, paths: Sequence[str | Path]) -> None:
        """Upload these files (one checkpoint's, in the order written); called in the thread that wrote them."""
        try:
            with self._cond:
                self._count += 1
                folder = self.staging / str(self._count)
                for path in map(Path, paths):
                    if not path.is_file():
                        continue
                    old = self._pending.pop(path.name, None)
                    self._pending[path.name] = _stage(path, folder)  # re-inserted: after the files staged before
                    if old is not None:
                        _remove(old)
                self._cond.notify_all()
        except OSError as e:  # a full disk, say: the checkpoint is on disk, only its upload is lost
            logger.warning("checkpoint files of MLflow run %s not staged for upload: %s", self.run_id, e)

    def is_uploaded(self, path: str | Path) -> bool:
        """Whether the version of ``path`` now on disk is the one uploaded as its artifact."""
        try:
            version = _version(Path(path))
        except OSError:
            return False
        with self._cond:
            return self._uploaded.get(Path(path).name) == version

    def close(self, timeout: float | None = None) -> bool:
        """Wait until every submitted file is uploaded (at most ``timeout`` seconds; None: until done) and stop the
        thread, which removes the staging folder; returns whether everything was uploaded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flush = True
            self._cond.notify_all()
            while self._pending or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(1.0 if left is None else min(left, 1.0))
            done = not (self._pending or self._busy)
            self._closed = True
            self._cond.notify_all()
        if done:
            self._thread.join()
        else:
            logger.warning("MLflow run %s: the last checkpoint's upload did not finish within %g s; the run's "
                           "files are uploaded once more as it ends", self.run_id, timeout)
        return done

    # --- the uploading thread --------------------------------------------------------------------------------
    def _next(self) -> tuple[str, Path] | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            name = next(iter(self._pending))
            self._busy = True
            return name, self._pending.pop(name)

    def _run(self) -> None:
        spent = 0.0  # seconds of uploading since the last rest
        while True:
            item = self._next()
            if item is None:
                shutil.rmtree(self.staging, ignore_errors=True)
                return
            name, staged = item
            start = time.monotonic()
            ok = self._upload(staged)
            spent += time.monotonic() - start if ok else 0.0
            with self._cond:
                if ok:
                    self._uploaded[name] = _version(staged)
                    _remove(staged)
                elif name not in self._pending:  # not superseded meanwhile: try this version again, first
                    self._pending = {name: staged, **self._pending}
                else:
                    _remove(staged)
                self._busy = False
                self._cond.notify_all()
                closed = self._closed
                rest = ok and not self._pending
            if not ok and not closed:
                pause = _PAUSES[min(self._failures - 1, len(_PAUSES) - 1)]
                with self._cond:
                    self._cond.wait_for(lambda: self._closed, timeout=pause)
            elif rest:  # a checkpoint is complete: rest (see the module docstring)
                with self._cond:
                    self._cond.wait_for(lambda: self._flush, timeout=spent * (1 / _MAX_SHARE - 1))
                spent = 0.0

    def _upload(self, staged: Path) -> bool:
        try:
            self.client.log_artifact(self.run_id, str(staged))
        except Exception as e:  # noqa: BLE001 - any failure is retried; the run must not fail over an upload
            self._failures += 1
            if self._failures == 1 or self._failures % 10 == 0:
                logger.warning("upload of %s to MLflow run %s failed (attempt %d), retrying: %s", staged.name,
                               self.run_id, self._failures, mask_secrets(str(e)).splitlines()[0][:300])
            return False
        if self._failures:
            logger.info("upload of %s to MLflow run %s succeeded after %d failed attempt(s)", staged.name,
                        self.run_id, self._failures)
        self._failures = 0
        return True


def _version(path: Path) -> tuple[int, ...]:
    """What tells two versions of a file apart (a link shares it; a rewrite changes the time, and an inode number
    may be reused)."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
