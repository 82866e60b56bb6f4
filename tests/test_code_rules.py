"""Rules of the code that ruff does not check: short functions and files, a reason on every ``# noqa``, no name of
the package that shadows a built-in, one name for a command's run argument."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import re
import subprocess
import tokenize
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "medattn_monai"
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 400
# a longer function says why in its docstring
REASON = re.compile(rf"Longer than {MAX_FUNCTION_LINES} lines because \S")
# a noqa comment names its codes (CODE[, CODE…]), then says why after a dash
NOQA = re.compile(r"#\s*noqa\b(?P<rest>.*)$", re.IGNORECASE)
NOQA_WITH_REASON = re.compile(r":\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*\s+-\s+\S")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _functions(tree: ast.AST):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = min([d.lineno for d in node.decorator_list] + [node.lineno])
    return node.end_lineno - first + 1


def long_functions(path: Path) -> list[str]:
    """``file:line name (n lines)`` of each function over the limit whose docstring gives no reason."""
    found = []
    for node in _functions(ast.parse(path.read_text(encoding="utf-8"))):
        doc = " ".join((ast.get_docstring(node) or "").split())
        if _length(node) > MAX_FUNCTION_LINES and not REASON.search(doc):
            where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
            found.append(f"{where}:{node.lineno} {node.name} ({_length(node)} lines)")
    return found


def test_no_function_over_60_lines_without_a_reason():
    found = [f for path in _modules() for f in long_functions(path)]
    assert not found, (f"split these, or say in the docstring 'Longer than {MAX_FUNCTION_LINES} lines because …':\n"
                       + "\n".join(found))


def test_no_file_over_400_lines():
    found = [f"{p.relative_to(REPO)} ({n} lines)" for p in _modules()
             if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES]
    assert not found, "split these by job:\n" + "\n".join(found)


def test_the_length_rule_sees_a_long_function_and_accepts_a_reason(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    plain, reasoned = tmp_path / "plain.py", tmp_path / "reasoned.py"
    plain.write_text(f'def f():\n    """Sum."""\n{body}')
    reasoned.write_text(f'def f():\n    """Sum.\n\n    Longer than 60\n    lines because it is a table.\n    """\n'
                        f"{body}")
    assert [f.split()[1] for f in long_functions(plain)] == ["f"] and long_functions(reasoned) == []


def test_every_noqa_says_why():
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "*.py"], capture_output=True, text=True,
                             check=True).stdout.split()
    found = []
    for name in tracked:
        with open(REPO / name, encoding="utf-8") as f:
            comments = [tok for tok in tokenize.generate_tokens(f.readline) if tok.type == tokenize.COMMENT]
        for tok in comments:
            match = NOQA.search(tok.string)
            if match and not NOQA_WITH_REASON.match(match["rest"]):
                found.append(f"{name}:{tok.start[0]}: {tok.line.strip()}")
    assert not found, "write '# noqa: CODE - why':\n" + "\n".join(found)


def test_the_noqa_rule():
    assert NOQA_WITH_REASON.match(": BLE001 - a trial's failure is the search's data")
    assert NOQA_WITH_REASON.match(": E402, F401 - after sys.path is set")
    assert not NOQA_WITH_REASON.match(": BLE001") and not NOQA_WITH_REASON.match("") and not NOQA_WITH_REASON.match(
        ": BLE001 -")


def test_no_module_or_function_shadows_a_builtin():
    names = set(dir(builtins))
    found = [str(p.relative_to(REPO)) for p in _modules() if p.stem in names]
    found += [str(p.relative_to(REPO)) for p in PACKAGE.rglob("*/") if p.name in names]
    for path in _modules():
        for node in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            if node.name in names:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert not found, "rename these (a built-in of the same name is shadowed or confused):\n" + "\n".join(found)


def _command_functions(targets) -> list:
    if isinstance(targets, dict):
        return [f for t in targets.values() for f in _command_functions(t)]
    module, _, name = targets.partition(":")
    return [getattr(importlib.import_module(module), name)]


def test_every_command_calls_its_run_argument_run_id():
    """``medattn resume RUN``, ``--run-id RUN`` and ``--run_id RUN`` work alike for every command that takes a run
    (fire maps both flag spellings onto the parameter ``run_id`` and takes it positionally)."""
    from medattn_monai.cli import COMMANDS

    found = []
    for command, (targets, _) in COMMANDS.items():
        for function in _command_functions(targets):
            names = [n for n in inspect.signature(function).parameters if n in {"run", "run_dir", "run_id"}]
            if names and names != ["run_id"]:
                found.append(f"medattn {command}: {function.__module__}.{function.__name__}({names[0]}, …)")
    assert not found, "name the run argument run_id:\n" + "\n".join(found)
