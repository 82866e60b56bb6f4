"""One training at a time in a run folder: an exclusive lock its training process holds until it ends."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .atomic_write import storage_error

__all__ = ["TRAINING_LOCK", "lock_run_folder", "unlock_run_folder"]

TRAINING_LOCK = ".training.lock"  # held by the process training into the folder (hidden: never an artifact)


def lock_run_folder(run_dir: str | Path) -> Any:
    """Hold the run folder for this training (an exclusive ``flock`` on its :data:`TRAINING_LOCK`), so that a second
    process never trains into it at the same time (two ``medattn resume`` of one run would log every epoch twice
    and overwrite each other's checkpoints). The system releases it when the process dies, even by SIGKILL.

    Returns the open lock file, for :func:`unlock_run_folder`. Raises ``ConfigError`` naming the holder.
    """
    import fcntl
    import socket

    path = Path(run_dir) / TRAINING_LOCK
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            lock = open(path, "a+")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "another process"
                lock.close()
                raise ConfigError(f"{run_dir} is being trained by {holder}: wait for it to end (or stop it), then try "
                                  "again") from None
            if path.exists() and os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino:
                break
            lock.close()  # its holder removed it while we waited for it: lock the file that is there now
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()} on {socket.gethostname()}")
        lock.flush()
    except OSError as e:  # the folder cannot be written: named, not its hidden lock file
        raise storage_error(run_dir, e) from None
    return lock


def unlock_run_folder(lock: Any) -> None:
    """Release :func:`lock_run_folder`'s lock and remove its file (the folder is left as the training made it)."""
    if lock is None or lock.closed:
        return
    try:
        Path(lock.name).unlink(missing_ok=True)
    finally:
        lock.close()  # closing the file releases the flock
