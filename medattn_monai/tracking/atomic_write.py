"""Writing a file so that a failure leaves nothing behind.

The new content goes to a hidden temporary file beside the target (``.<name>.tmp``) that replaces the target only
once it is complete: a SIGKILL mid-write keeps the previous file, and a write that fails (a full disk, a read-only
folder, a file-size limit) removes the temporary file and raises a :class:`~medattn_monai.errors.StorageError`
naming the target, so neither a half-written file nor the space it took is left behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..errors import MedattnError, StorageError, find_cause

__all__ = ["copy_file", "storage_error", "temporary_path", "write_atomically"]

# Linux's ioctl that shares a file's blocks with a new file (a reflink: btrfs, XFS, …) instead of copying them
_FICLONE = 0x40049409
_MB = 1 << 20


def temporary_path(path: str | Path) -> Path:
    """The hidden file a new version of ``path`` is written to before it replaces ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


def _free_space(path: Path) -> int | None:
    for folder in (path, *path.parents):
        if folder.is_dir():
            return shutil.disk_usage(folder).free
    return None


def storage_error(path: str | Path, error: OSError) -> StorageError:
    """The one-line error of a failed write of ``path``: what the system said, and why where it is known."""
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        free = _free_space(Path(path).parent)
        reason += f" ({free / _MB:.1f} MB were left on its disk)" if free is not None else ""
    elif error.errno == errno.EFBIG:
        reason += " (a file-size limit applies: see `ulimit -f`)"
    elif error.errno == errno.EROFS:
        reason += " (its file system is mounted read-only)"
    elif error.errno in (errno.EACCES, errno.EPERM):
        reason += " (this user may not write there)"
    return StorageError(f"cannot write {path}: {reason}")


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(file)`` into its temporary file, then move that over ``path``.

    Raises:
        StorageError: the system refused the write (the temporary file is removed, ``path`` is unchanged).
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as e:
        cause = find_cause(e, OSError)  # torch.save wraps the OSError of a failed write in a RuntimeError
        error = storage_error(path, cause) if cause is not None and not isinstance(e, MedattnError) else None
        try:  # after the error is worded: it says how full the disk was
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if error is not None:
            raise error from None
        raise


def copy_file(src: str | Path, dest: str | Path) -> None:
    """An independent copy of ``src`` at ``dest`` (written atomically): a reflink where the file system has them
    (no space taken until one of the two changes), else a full copy. Editing one never changes the other."""

    def write(out: BinaryIO) -> None:
        with open(src, "rb") as source:
            try:
                fcntl.ioctl(out.fileno(), _FICLONE, source.fileno())
                return
            except OSError:  # no reflinks here (ext4, tmpfs, another file system): copy the bytes
                pass
            shutil.copyfileobj(source, out, _MB)

    write_atomically(dest, write)
