"""Where ``medattn export-bundle`` may write: a new folder, or an earlier export of its own, never anything else.

An export is recognised by its ``configs/metadata.json``, whose ``generated_by`` field is :data:`EXPORT_STAMP`, and
by holding only files an export writes (:data:`BUNDLE_FILES`; Python's ``__pycache__`` folders are tolerated).
``--overwrite`` replaces such a folder, and a ``<folder>.zip`` whose every entry lies under the folder's name and
whose metadata carries the same stamp. Any other existing target (the current folder, ``runs``, a folder with a
user's files, a zip of someone else's) is refused before anything is computed or written.

The new bundle is staged elsewhere and swapped in by renames inside the target's own folder, so a failure half-way
leaves the previous export as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from fnmatch import fnmatchcase
from pathlib import Path

from ..errors import ConfigError

__all__ = ["BUNDLE_FILES", "EXPORT_STAMP", "check_targets", "install", "is_export", "write_zip"]

# the metadata field that marks a folder (and a zip) as written by this command
EXPORT_STAMP = "medattn export-bundle"
# every file an export may write (patterns relative to the bundle folder)
BUNDLE_FILES = (
    "configs/inference.json", "configs/evaluate.json", "configs/metadata.json", "configs/logging.conf",
    "scripts/*.py", "models/model.pt", "models/model.ts", "models/model.pt2", "docs/README.md",
    "docs/data_license.txt", "LICENSE", "large_files.yml",
)
_METADATA = "configs/metadata.json"
_LISTED = 3  # foreign files named in a refusal


def _stamped(text: bytes | str) -> bool:
    try:
        meta = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(meta, dict) and meta.get("generated_by") == EXPORT_STAMP


def _foreign_files(folder: Path) -> list[str]:
    """Entries of ``folder`` that no export writes (links count as foreign: nothing is followed)."""
    foreign = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if "__pycache__" in path.relative_to(folder).parts:
            continue
        if path.is_symlink() or (path.is_file() and not any(fnmatchcase(relative, p) for p in BUNDLE_FILES)):
            foreign.append(relative)
        elif not path.is_file() and not path.is_dir():
            foreign.append(relative)
    return foreign


def is_export(folder: str | Path) -> bool:
    """Whether ``folder`` is a real folder (no link) whose ``configs/metadata.json`` carries :data:`EXPORT_STAMP`."""
    folder = Path(folder)
    metadata = folder / _METADATA
    if folder.is_symlink() or not folder.is_dir() or metadata.is_symlink() or not metadata.is_file():
        return False
    return _stamped(metadata.read_bytes())


def _zip_is_export(path: Path, name: str) -> bool:
    """Whether the zip at ``path`` holds only ``<name>/…`` entries and a stamped ``<name>/configs/metadata.json``."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not names or any(not n.startswith(f"{name}/") for n in names) or f"{name}/{_METADATA}" not in names:
                return False
            return _stamped(archive.read(f"{name}/{_METADATA}"))
    except (OSError, zipfile.BadZipFile):
        return False


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _check_folder(target: Path, overwrite: bool) -> None:
    here = Path.cwd().resolve()
    resolved = target.resolve()
    if resolved == here or resolved in here.parents:
        raise ConfigError(f"--out {target} is the current folder or contains it: choose a new folder for the bundle")
    if not (target.exists() or target.is_symlink()):
        blocking = next((p for p in target.parents if p.exists() or p.is_symlink()), None)
        if blocking is not None and not blocking.is_dir():
            raise ConfigError(f"--out {target} cannot be made: {blocking} is a file, not a folder")
        return
    if not is_export(target):
        kind = "a file" if target.is_file() else "a link" if target.is_symlink() else "a folder"
        raise ConfigError(f"--out {target} is {kind} that medattn export-bundle did not make (no {_METADATA} with "
                          f"its stamp): choose a new folder; --overwrite only replaces an earlier export")
    if not overwrite:
        raise ConfigError(f"--out {target} holds an earlier export: pass --overwrite to replace it, or choose "
                          "another --out")
    foreign = _foreign_files(target)
    if foreign:
        raise ConfigError(f"--out {target} holds an earlier export and files export-bundle did not write "
                          f"({_listing(foreign)}): move them away, or choose another --out")


def _check_zip(target: Path, overwrite: bool) -> None:
    archive = target.with_name(f"{target.name}.zip")
    if not (archive.exists() or archive.is_symlink()):
        return
    if not overwrite:
        raise ConfigError(f"{archive} exists: pass --overwrite to replace it (if export-bundle wrote it), choose "
                          "another --out, or pass --nozip")
    if not _zip_is_export(archive, target.name):
        raise ConfigError(f"{archive} exists and was not written by medattn export-bundle: move it away, choose "
                          "another --out, or pass --nozip")


def check_targets(target: str | Path, overwrite: bool, with_zip: bool) -> None:
    """Refuse (one line naming it) a bundle folder or ``<folder>.zip`` that the export must not write.

    Args:
        target: the bundle folder.
        overwrite: whether an earlier export there (and its zip) may be replaced.
        with_zip: whether ``<folder>.zip`` will be written.

    Raises:
        ConfigError: the folder is the current folder or holds it; it exists and is not an export of this command,
            or holds files an export does not write; it or the zip exists and ``overwrite`` is not given; the zip
            exists and is not this command's.
    """
    target = Path(target)
    _check_folder(target, overwrite)
    if with_zip:
        _check_zip(target, overwrite)


def write_zip(folder: Path, path: Path, name: str) -> Path:
    """Write ``folder`` into the zip ``path`` under the top folder ``name``, byte-identical for identical files
    (fixed dates, sorted order); weights are stored, not compressed (saves minutes on a large model)."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in files:
            entry = zipfile.ZipInfo(f"{name}/{relative}", date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_STORED if relative.startswith("models/") else zipfile.ZIP_DEFLATED
            archive.writestr(entry, (folder / relative).read_bytes())
    return path


def _swap(work: Path, target: Path, archive: Path | None) -> Path | None:
    """Rename ``work/bundle`` to ``target`` (an earlier export aside to ``work/previous`` first, back if the rename
    fails), then ``archive`` to ``<target>.zip``; returns the zip's path."""
    if target.exists():
        os.rename(target, work / "previous")
    try:
        os.rename(work / "bundle", target)
    except OSError:
        if (work / "previous").exists():
            os.rename(work / "previous", target)
        raise
    if archive is None:
        return None
    final = target.with_name(f"{target.name}.zip")
    try:
        os.replace(archive, final)
    except OSError as e:
        raise ConfigError(f"the bundle was written to {target}, but {final} could not be replaced "
                          f"({e.strerror or e}): it is still the previous export's") from None
    return final


def install(staged: Path, target: Path, overwrite: bool, with_zip: bool) -> Path | None:
    """Move the bundle folder ``staged`` to ``target`` (and write ``<target>.zip``), replacing an earlier export.

    Both are first written beside the target under a hidden temporary folder (deleted at the end, whatever
    happens); the targets are checked again, then renamed into place. Returns the zip's path, or None.

    Raises:
        ConfigError: a target may not be written (see :func:`check_targets`), or writing failed (disk full, no
            permission); the message says that the previous export is unchanged.
    """
    check_targets(target, overwrite, with_zip)
    work = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.export-", dir=target.parent))
        shutil.move(str(staged), str(work / "bundle"))
        archive = write_zip(work / "bundle", work / "bundle.zip", target.name) if with_zip else None
        check_targets(target, overwrite, with_zip)  # nothing appeared or changed while the bundle was staged
        return _swap(work, target, archive)
    except OSError as e:  # before the swap, or the swap itself, which renames the previous export back
        previous = "the previous export is unchanged" if is_export(target) else "nothing was written there"
        raise ConfigError(f"writing the bundle to {target} failed ({e.strerror or e}): {previous}") from None
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
