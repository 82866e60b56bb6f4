"""``medattn models`` answers the default table from ``networks/model_table.json`` only while that file is what the
installed code computes; anything else is computed afresh."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import subprocess
import sys

from medattn_monai import models_command
from medattn_monai.models_command import TABLE_FILE, current_key, print_models
from medattn_monai.networks.summary import print_model_table


def _printed(function, *args, **kwargs) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        function(*args, **kwargs)
    return out.getvalue()


def test_the_stored_table_is_what_the_code_computes():
    stored = json.loads(TABLE_FILE.read_text(encoding="utf-8"))
    hint = "stale: run `python -m medattn_monai.models_command`"
    assert stored["key"] == current_key(models_command._DEFAULTS), hint
    assert stored["text"] == _printed(print_model_table).rstrip("\n"), hint


def test_the_command_takes_the_arguments_and_defaults_of_the_computed_table():
    fast, live = inspect.signature(print_models), inspect.signature(print_model_table)
    assert list(fast.parameters) == list(live.parameters)
    assert {k: p.default for k, p in fast.parameters.items()} == {k: p.default for k, p in live.parameters.items()}
    assert print_models.__doc__ == print_model_table.__doc__


def test_the_default_table_is_printed_without_importing_torch():
    code = ("import sys; from medattn_monai.cli import main; code = main(['models']); "
            "assert 'torch' not in sys.modules and 'monai' not in sys.modules, 'imported'; sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip("\n") == json.loads(TABLE_FILE.read_text(encoding="utf-8"))["text"]


def test_a_stale_table_or_other_arguments_are_computed(monkeypatch, tmp_path):
    stale = tmp_path / "model_table.json"
    stored = json.loads(TABLE_FILE.read_text(encoding="utf-8"))
    stale.write_text(json.dumps({"key": {**stored["key"], "monai": "0.0"}, "text": "WRONG"}), encoding="utf-8")
    monkeypatch.setattr(models_command, "TABLE_FILE", stale)
    assert "WRONG" not in _printed(print_models, backbones="resnet18")
    assert "WRONG" not in _printed(print_models, image_size=64)
    monkeypatch.setattr(models_command, "TABLE_FILE", TABLE_FILE)
    assert _printed(print_models, image_size=64, backbones="resnet18") == _printed(
        print_model_table, image_size=64, backbones="resnet18")
