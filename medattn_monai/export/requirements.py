"""The third-party packages a bundle's ``scripts`` import, with the versions installed here.

The zoo's CI installs MONAI, PyTorch and NumPy from ``monai_version``/``pytorch_version``/``numpy_version`` and
every entry of ``required_packages_version``; anything else a script imports would be missing there. Module names
are mapped to their distributions (``PIL`` → ``pillow``, ``ignite`` → ``pytorch-ignite``).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from collections.abc import Iterable, Mapping

__all__ = ["BASE_PACKAGES", "CHECK_PACKAGES", "RUNNER_PACKAGES", "distribution_versions", "imported_modules",
           "install_lines"]

# what the zoo installs for every bundle from its own metadata fields
BASE_PACKAGES = ("torch", "monai", "numpy")
# what `python -m monai.bundle` needs besides MONAI's own requirements and the bundle's: its __main__ parses the
# command line with fire (an optional import of MONAI's, "OptionalImportError: import fire" without it)
RUNNER_PACKAGES = ("fire",)
# what MONAI's `verify_metadata` needs (the Model Zoo's checks): jsonschema validates the metadata
CHECK_PACKAGES = ("jsonschema",)


def imported_modules(sources: Iterable[str]) -> set[str]:
    """Top-level names of the absolute imports in Python ``sources`` (relative imports are the package's own)."""
    names = set()
    for text in sources:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.partition(".")[0])
    return names


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution_versions(modules: Iterable[str], exclude: Iterable[str] = BASE_PACKAGES) -> dict[str, str]:
    """``{distribution: installed version}`` of the third-party ``modules`` (standard library and ``exclude`` left out).

    Raises:
        ValueError: a module that belongs to no installed distribution.
    """
    owners: Mapping[str, list[str]] = importlib.metadata.packages_distributions()
    skip = {_normalise(e) for e in exclude}
    found: dict[str, str] = {}
    for module in sorted(set(modules)):
        if module in sys.stdlib_module_names or module == "__future__" or _normalise(module) in skip:
            continue
        dists = owners.get(module)
        if not dists:
            raise ValueError(f"module {module!r} belongs to no installed distribution: cannot list it as a requirement")
        name = _normalise(importlib.metadata.distribution(dists[0]).metadata["Name"])
        if name not in skip:
            found[name] = importlib.metadata.version(name)
    return dict(sorted(found.items()))


def _pinned(name: str) -> str:
    try:
        return f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return name


def install_lines(metadata: Mapping[str, object]) -> tuple[str, str, str]:
    """The ``pip install`` lines of an exported bundle's README: PyTorch first (alone, so that no other requirement
    pulls a default CUDA build of it), then MONAI, NumPy, the runner's and the bundle's packages, then what the
    Model Zoo's checks add; all pinned to the versions of ``metadata`` and of this environment."""
    required = dict(metadata["required_packages_version"])  # type: ignore[arg-type]
    rest = [f"monai=={metadata['monai_version']}", f"numpy=={metadata['numpy_version']}"]
    rest += [_pinned(n) for n in RUNNER_PACKAGES if n not in required]
    rest += [f"{k}=={v}" for k, v in required.items()]
    return (f"pip install torch=={metadata['pytorch_version']}", "pip install " + " ".join(rest),
            "pip install " + " ".join(_pinned(n) for n in CHECK_PACKAGES))
