"""Copy the package modules a bundle's configs name into the bundle's own ``scripts`` package.

A Model Zoo bundle must run with MONAI alone: the zoo installs only what ``metadata.json`` lists, and this package
is not on PyPI. :func:`vendor_modules` copies the modules that define the configs' ``_target_``s, and every project
module they import in turn, flattened into one package (``scripts/<module>.py``). Each import of the project package
is rewritten to a relative import of the copy that *defines* the name (a package ``__init__`` that re-exports it is
followed to the defining module), so a plain network does not drag in every other network. The copies depend only
on the sources: the same package gives byte-identical files.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PACKAGE", "ScriptsPackage", "vendor_modules"]

PACKAGE = "medattn_monai"
_MENTION = re.compile(rf"\b{PACKAGE}(?:\.\w+)+")


@dataclass(frozen=True)
class ScriptsPackage:
    """The copied modules: ``files`` maps a file name (``__init__.py`` included) to its text, ``modules`` a project
    module to the name of its copy in the package called ``name``."""

    name: str
    files: dict[str, str]
    modules: dict[str, str]

    def target(self, obj: Any) -> str:
        """The ``_target_`` of a class or function defined in a copied module (``scripts.resnet.AttentionResNet18``)."""
        return f"{self.name}.{self.modules[obj.__module__]}.{obj.__qualname__}"

    def write(self, folder: str | Path) -> Path:
        """Write the package into ``folder/<name>/``; returns that folder."""
        root = Path(folder) / self.name
        root.mkdir(parents=True, exist_ok=True)
        for file_name, text in self.files.items():
            (root / file_name).write_text(text, encoding="utf-8")
        return root


def _spec(module: str) -> importlib.machinery.ModuleSpec:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"cannot find the source of module {module}")
    return spec


def _is_package(module: str) -> bool:
    return _spec(module).submodule_search_locations is not None


def _parse(module: str) -> tuple[str, ast.Module]:
    text = Path(_spec(module).origin).read_text(encoding="utf-8")
    return text, ast.parse(text)


def _base(node: ast.ImportFrom, module: str) -> str:
    """The absolute module an ``ImportFrom`` statement in ``module`` imports from."""
    if node.level == 0:
        return node.module or ""
    current = module if _is_package(module) else module.rpartition(".")[0]
    return importlib.util.resolve_name("." * node.level + (node.module or ""), current)


def _in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _defining_module(module: str, name: str, package: str) -> tuple[str, bool]:
    """``(module defining name, is it a submodule)`` for ``from module import name``, following package re-exports."""
    if not _is_package(module):
        return module, False
    if importlib.util.find_spec(f"{module}.{name}") is not None:
        return f"{module}.{name}", True
    _, tree = _parse(module)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    base = _base(node, module)
                    if not _in_package(base, package):
                        raise ValueError(f"{module} re-exports {name} from {base}: import it from there instead")
                    return _defining_module(base, alias.name, package)
    raise ValueError(f"{name} is defined in the package {module}'s __init__: move it to a module to copy it")


def _import_targets(node: ast.ImportFrom, module: str, package: str) -> list[tuple[str, bool, str, str | None]]:
    """``(defining module, is submodule, name, alias)`` of each name a project import statement imports."""
    base = _base(node, module)
    out = []
    for alias in node.names:
        if alias.name == "*":
            raise ValueError(f"{module}: 'from {base} import *' cannot be copied")
        target, submodule = _defining_module(base, alias.name, package)
        out.append((target, submodule, alias.name, alias.asname))
    return out


def _project_imports(tree: ast.Module, module: str, package: str) -> list[ast.ImportFrom]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(_in_package(a.name, package) for a in node.names):
            raise ValueError(f"{module} line {node.lineno}: 'import {package}…' cannot be copied; "
                             "use 'from … import'")
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or _in_package(node.module or "", package)):
            found.append(node)
    return sorted(found, key=lambda n: n.lineno)


def _rewritten_import(targets: list[tuple[str, bool, str, str | None]], flat: dict[str, str], indent: str) -> str:
    groups: dict[str, list[str]] = {}
    lines = []
    for target, submodule, name, alias in targets:
        if submodule:
            bound = alias or name
            lines.append(f"{indent}from . import {flat[target]}" + (f" as {bound}" if bound != flat[target] else ""))
        else:
            groups.setdefault(target, []).append(name + (f" as {alias}" if alias else ""))
    for target, names in groups.items():
        line = f"{indent}from .{flat[target]} import {', '.join(names)}"
        if len(line) > 100:
            listed = "".join(f"{indent}    {n},\n" for n in names)
            line = f"{indent}from .{flat[target]} import (\n{listed}{indent})"
        lines.append(line)
    return "\n".join(lines)


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent is a module, not a package
        return False


def _mention(dotted: str, flat: dict[str, str], name: str, package: str) -> str:
    """A docstring's ``medattn_monai.x.Name`` as the copy's ``scripts.module.Name``, else the distribution's name."""
    parts = dotted.split(".")
    module = next(".".join(parts[:cut]) for cut in range(len(parts), 0, -1) if _module_exists(".".join(parts[:cut])))
    rest = parts[len(module.split(".")):]
    target, submodule = module, False
    if rest:
        try:
            target, submodule = _defining_module(module, rest[0], package)
        except ValueError:
            target = None
    if target in flat:
        return ".".join([name, flat[target], *(rest[1:] if submodule else rest)])
    return "medattn-monai" + dotted[len(package):]


def _rewrite(module: str, text: str, tree: ast.Module, flat: dict[str, str], name: str, package: str) -> str:
    lines = text.splitlines(keepends=True)
    for node in reversed(_project_imports(tree, module, package)):
        first, last = lines[node.lineno - 1], lines[node.end_lineno - 1]
        if first[: node.col_offset].strip() or last[node.end_col_offset :].strip().split("#")[0].strip():
            raise ValueError(f"{module} line {node.lineno}: an import sharing its line with other code cannot be "
                             "copied")
        new = _rewritten_import(_import_targets(node, module, package), flat, first[: node.col_offset])
        lines[node.lineno - 1 : node.end_lineno] = [new + "\n"]
    relative = Path(_spec(module).origin).relative_to(Path(_spec(package).origin).parent).as_posix()
    header = f"# Copied from medattn-monai ({relative}) by `medattn export-bundle`; imports rewritten to this folder.\n"
    body = _MENTION.sub(lambda m: _mention(m.group(0), flat, name, package), "".join(lines))
    body = re.sub(rf"\b{package}\b", package.replace("_", "-"), body)  # what is left names the distribution
    return header + body


def vendor_modules(modules: Sequence[str], name: str = "scripts", package: str = PACKAGE,
                   description: str = "") -> ScriptsPackage:
    """Copy ``modules`` and every ``package`` module they import, transitively, into one flat package.

    Args:
        modules: project modules whose classes the configs name (e.g. ``medattn_monai.networks.nets.resnet``).
        name: the package the copies form (a bundle's ``scripts``).
        package: the project package whose imports are rewritten.
        description: the docstring of the generated ``__init__.py``.

    Returns:
        the copied package (files and the module → copy mapping).

    Raises:
        ValueError: two copied modules share a file name, or an import cannot be rewritten (``import package.x``,
            ``*`` imports, names defined in a package ``__init__``).
    """
    queue, order, seen = deque(modules), [], set(modules)
    parsed: dict[str, tuple[str, ast.Module]] = {}
    while queue:
        module = queue.popleft()
        if _is_package(module):
            raise ValueError(f"{module} is a package: name the module that defines what the configs use")
        order.append(module)
        parsed[module] = _parse(module)
        for node in _project_imports(parsed[module][1], module, package):
            for target, _, _, _ in _import_targets(node, module, package):
                if target not in seen:
                    seen.add(target)
                    queue.append(target)
    flat: dict[str, str] = {}
    for module in sorted(order):
        stem = module.rpartition(".")[2]
        if stem in flat.values() or stem == "__init__":
            raise ValueError(f"two copied modules would both be {name}/{stem}.py: rename one of them")
        flat[module] = stem
    files = {"__init__.py": f'"""{description or "Code of this bundle."}"""\n'}
    for module in sorted(order, key=flat.__getitem__):
        text, tree = parsed[module]
        files[f"{flat[module]}.py"] = _rewrite(module, text, tree, flat, name, package)
    return ScriptsPackage(name, files, flat)
