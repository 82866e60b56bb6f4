"""Small I/O helpers: atomic writes and CSV reading that names the file and columns at fault."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd

from ..errors import DataError

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


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A converter that fails half-way never leaves partial output behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates the file private (0600); give the result the permissions a plain open() would
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(obj: Any, path: str | Path, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=indent, sort_keys=False) + "\n")
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
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"{what} {path} lacks column(s) {missing}; it has {list(df.columns)}"
        )
    return df
