"""``medattn COMMAND --help`` without importing the command: its signature and docstring read from the source.

fire builds a command's help from the function's signature and docstring, but importing a command's module imports
PyTorch and MONAI (5-15 s, for a help text). Here the function's definition is read from its module's source with
``ast`` (nothing is executed) and fire gets a stand-in with the same signature and docstring.

A default written as a literal is shown as its value; a name as the value of the constant it names (in the module,
or in the module of this package it is imported from); ``NAME.field``, where ``NAME`` is a constant made by calling
a class of this package, as the field's value (the call's keyword, else the class's default); anything else as
written in the source. ``tests/test_cli_help.py`` checks that each command's help is the one fire gives for the
imported function.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["help_component"]

_PACKAGE = __name__.split(".")[0]
_ROOT = Path(__file__).resolve().parent
_MAX_HOPS = 5  # re-exports followed from one module to the next


class _Source:
    """A default that is not a literal: shown as written in the source."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _source_file(module: str) -> Path:
    parts = module.split(".")
    if parts[0] != _PACKAGE:
        raise LookupError(f"{module} is not a module of {_PACKAGE}")
    path = _ROOT.joinpath(*parts[1:])
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"


@cache
def _tree(module: str) -> ast.Module:
    return ast.parse(_source_file(module).read_text(encoding="utf-8"))


def _imported_from(module: str, name: str) -> str | None:
    """The module of this package that ``module`` imports ``name`` from (``from .x import name``), if it does."""
    package = module if _source_file(module).name == "__init__.py" else module.rpartition(".")[0]
    for node in _tree(module).body:
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            if node.level == 0:
                return node.module if (node.module or "").split(".")[0] == _PACKAGE else None
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            return ".".join(base + ([node.module] if node.module else []))
    return None


def _definition(module: str, name: str, kind: type | tuple[type, ...], hops: int = 0) -> tuple[str, ast.AST]:
    """``(module, node)`` of the top-level statement defining ``name``, following imports within the package."""
    for node in _tree(module).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name and isinstance(node, kind):
            return module, node
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node, kind):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return module, node
    source = _imported_from(module, name)
    if source is None or hops >= _MAX_HOPS:
        raise LookupError(f"{name} is not defined in {module}")
    return _definition(source, name, kind, hops + 1)


def _constant(module: str, name: str) -> tuple[str, ast.expr]:
    """``(module, value expression)`` of the module-level constant ``name``."""
    where, assignment = _definition(module, name, (ast.Assign, ast.AnnAssign))
    value = assignment.value  # type: ignore[attr-defined]
    if value is None:
        raise LookupError(name)
    return where, value


def _field(module: str, call: ast.expr, field: str) -> ast.expr:
    """The expression of ``field`` in an instance made by ``call`` (``Class(field=…)``, else the class's default)."""
    func = call.func if isinstance(call, ast.Call) else None
    if isinstance(func, ast.Name):
        for keyword in call.keywords:  # type: ignore[attr-defined]
            if keyword.arg == field:
                return keyword.value
        _, cls = _definition(module, func.id, ast.ClassDef)
        for node in cls.body:  # type: ignore[attr-defined]
            named = isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == field
            if named and node.value is not None:
                return node.value
    raise LookupError(field)


def _default(node: ast.expr, module: str) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    try:
        if isinstance(node, ast.Name):
            return ast.literal_eval(_constant(module, node.id)[1])
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            where, call = _constant(module, node.value.id)
            return ast.literal_eval(_field(where, call, node.attr))
    except (LookupError, ValueError):
        pass
    return _Source(ast.unparse(node))


def _signature(fn: ast.FunctionDef, module: str) -> inspect.Signature:
    a = fn.args
    P = inspect.Parameter

    def param(arg: ast.arg, kind: Any, default: ast.expr | None = None) -> inspect.Parameter:
        annotation = ast.unparse(arg.annotation) if arg.annotation is not None else P.empty
        value = _default(default, module) if default is not None else P.empty
        return P(arg.arg, kind, default=value, annotation=annotation)

    positional = a.posonlyargs + a.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    params = [param(arg, P.POSITIONAL_ONLY if i < len(a.posonlyargs) else P.POSITIONAL_OR_KEYWORD, d)
              for i, (arg, d) in enumerate(zip(positional, defaults, strict=True))]
    if a.vararg:
        params.append(param(a.vararg, P.VAR_POSITIONAL))
    params += [param(arg, P.KEYWORD_ONLY, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)]
    if a.kwarg:
        params.append(param(a.kwarg, P.VAR_KEYWORD))
    returns = ast.unparse(fn.returns) if fn.returns is not None else inspect.Signature.empty
    return inspect.Signature(params, return_annotation=returns)


def _stand_in(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    where, fn = _definition(module, name, ast.FunctionDef)
    assert isinstance(fn, ast.FunctionDef)

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{target}: a help stand-in is not the command")

    stand_in.__name__ = stand_in.__qualname__ = name
    stand_in.__module__ = where
    stand_in.__doc__ = ast.get_docstring(fn, clean=False)
    stand_in.__signature__ = _signature(fn, where)  # type: ignore[attr-defined]
    return stand_in


def help_component(target: Any) -> Any:
    """What fire needs to show the help of a command ``target`` (``"module:function"``, or a dict of them)."""
    if isinstance(target, dict):
        return {name: help_component(t) for name, t in target.items()}
    return _stand_in(target)
