"""The demo writes only into folders it made: it replaces its image folders, so a real dataset must never be taken
for a demo one (``medattn demo-data --out_dir data`` beside a downloaded ``data/isic2019`` would delete it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ...errors import DataError

__all__ = ["MARKER", "check_datalist_file", "check_folder", "claim_folder", "replace_folder"]

MARKER = ".medattn_demo"
_MARKER_TEXT = "written by medattn_monai.data.demo; `medattn demo-data` may replace this folder\n"


def _is_demo(folder: Path) -> bool:
    if (folder / MARKER).is_file():
        return True
    # a demo written before the marker existed: its datalist, beside it, says so
    datalist = folder.parent / f"{folder.name}_datalist.json"
    try:
        return json.loads(datalist.read_text()).get("demo") is True
    except (OSError, ValueError, AttributeError):
        return False


def check_folder(folder: Path) -> None:
    """Refuse, naming it, a ``folder`` the demo may not write into: a file, or a folder that holds something and
    is not a demo folder."""
    if folder.exists() and not folder.is_dir():
        raise DataError(f"demo folder {folder} is a file")
    if folder.is_dir() and any(folder.iterdir()) and not _is_demo(folder):
        raise DataError(f"{folder} exists and was not written by the demo generator (no {MARKER} file): the demo "
                        "replaces its image folders, so it writes only into a new, empty or demo folder; choose "
                        "another --out_dir")


def check_datalist_file(path: Path) -> None:
    """Refuse, naming it, an existing datalist the demo would overwrite that is not a demo datalist."""
    if not path.exists():
        return
    try:
        demo = json.loads(path.read_text()).get("demo") is True
    except (OSError, ValueError, AttributeError):
        demo = False
    if not demo:
        raise DataError(f"{path} exists and is not a demo datalist (no \"demo\": true): the demo would overwrite "
                        "it; choose another --out_dir")


def claim_folder(folder: str | Path) -> Path:
    """Make ``folder`` a demo folder: create it, or accept it if it is empty or a demo folder already; any other
    folder is refused, naming it, before anything is written or deleted."""
    folder = Path(folder)
    check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text(_MARKER_TEXT)
    return folder


def replace_folder(folder: Path) -> Path:
    """An empty ``folder`` inside a claimed demo folder (what a previous demo wrote there is deleted)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder
