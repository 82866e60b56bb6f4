"""Small I/O helpers: atomic writes and CSV reading that names the file and columns at fault."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError, DataError

__all__ = ["atomic_path", "write_json_atomic", "read_csv_checked"]


def _umask() -> int:
    # read, not set-and-restore: os.umask(0) would briefly change the mask for every thread of the process
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _make_parents(path: Path) -> list[Path]:
    """Create the missing folders above ``path``; returns them, outermost first. Errors name the path."""
    missing = []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"cannot write {path}: {parent} is a file, not a folder")
    if path.is_dir():
        raise ConfigError(f"cannot write {path}: it is a folder")
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
    except OSError as e:
        _remove_folders(created)
        raise ConfigError(f"cannot write {path}: cannot create folder {e.filename or folder}: {e.strerror}") from None
    return created


def _remove_folders(created: list[Path]) -> None:
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            pass


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A converter that fails half-way never leaves partial output behind: neither the temporary file nor the folders
    this made for it. A path that cannot be written (its parent is a file or read-only, it is a folder) is a
    :class:`ConfigError` naming it.
    """
    path = Path(path)
    created = _make_parents(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        _remove_folders(created)
        raise ConfigError(f"cannot write {path}: {e.strerror} (in folder {path.parent})") from None
    os.close(fd)
    done = False
    try:
        yield Path(tmp)
        try:
            # mkstemp creates the file private (0600); give the result the permissions a plain open() would
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except OSError as e:
            raise ConfigError(f"cannot write {path}: {e.strerror}") from None
        done = True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if not done:
            _remove_folders(created)


def write_json_atomic(obj: Any, path: str | Path, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=False) + "\n"
    with atomic_path(path) as tmp:
        try:
            tmp.write_text(text)
        except OSError as e:  # e.g. the disk is full
            raise ConfigError(f"cannot write {path}: {e.strerror}") from None
    return Path(path)


def read_csv_checked(path: str | Path, required: Sequence[str], what: str, **kwargs: Any) -> pd.DataFrame:
    """Read a CSV and check it has the ``required`` columns; the error names the file and the missing ones."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        df = pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"cannot parse {what} {path}: {e}") from None
    except OSError as e:
        raise DataError(f"cannot read {what} {path}: {e.strerror}") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"{what} {path} lacks column(s) {missing}; it has {list(df.columns)}"
        )
    return df
