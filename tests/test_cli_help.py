"""``medattn --help`` and ``medattn COMMAND --help`` answer without importing the commands (PyTorch, MONAI), and show
what fire shows for the imported function."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys

import pytest

from conftest import REPO
from medattn_monai import cli, cli_help

HEAVY = ("torch", "monai", "mlflow", "ignite", "optuna", "pandas", "scipy", "matplotlib")


def _commands() -> list[list[str]]:
    paths = []
    for name, (target, _) in cli.COMMANDS.items():
        paths.append([name])
        if isinstance(target, dict):
            paths += [[name, sub] for sub in target]
    return paths


@pytest.mark.parametrize("path", _commands(), ids=" ".join)
def test_help_is_the_imported_functions_help(path, capsys, monkeypatch):
    assert cli.main([*path, "--help"]) == 0
    from_source = "".join(capsys.readouterr())
    monkeypatch.setattr(cli_help, "help_component", cli._load)  # fire's help of the imported function
    assert cli.main([*path, "--help"]) == 0
    imported = "".join(capsys.readouterr())
    assert "FLAGS" in imported or "COMMANDS" in imported or "POSITIONAL ARGUMENTS" in imported
    assert from_source == imported


def test_help_imports_no_heavy_package():
    script = (
        "import contextlib, io, json, sys\n"
        "from medattn_monai.cli import COMMANDS, main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    codes = [main([name, '--help']) for name in COMMANDS] + [main(['--help'])]\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "print(json.dumps({'codes': codes, 'heavy': heavy}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["codes"]) == {0} and result["heavy"] == []


def test_defaults_are_values_where_the_source_gives_them():
    from medattn_monai.engine.bundles import DEFAULT_BUNDLE
    from medattn_monai.stats.comparison_settings import DEFAULT_SETTINGS

    train = inspect.signature(cli_help.help_component("medattn_monai.engine.workflow:train")).parameters
    assert train["bundle"].default == DEFAULT_BUNDLE  # a constant imported from another module
    compare = inspect.signature(cli_help.help_component("medattn_monai.stats.compare:compare")).parameters
    assert compare["n_boot"].default == DEFAULT_SETTINGS.n_boot  # a field of a constant instance
    assert repr(cli_help._default(ast.parse("a + 1", mode="eval").body, "medattn_monai.cli")) == "a + 1"
