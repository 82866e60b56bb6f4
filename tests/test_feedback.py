"""What a training shows: where it is recorded when it starts, one line per epoch, no engine log lines unless
``--verbose``, and a word on why a ViT at a small image size is slow."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import train_overrides
from medattn_monai.cli import main
from medattn_monai.console import VERBOSE_ENV

ENGINE_LINES = ("Engine run resuming", "Epoch[", "Got new best metric", "Engine run finished")


def _train(overrides: dict, capsys, *flags: str) -> tuple[int, list[str]]:
    code = main(["train", *flags] + [f"--{k}={v}" for k, v in overrides.items()])
    out, err = capsys.readouterr()
    return code, (out + err).splitlines()


def test_a_training_says_where_it_is_recorded_when_it_starts(demo_data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    code, lines = _train(train_overrides(demo_data, tmp_path, epochs=1), capsys)
    assert code == 0, lines
    run_dir = lines[-1]  # the command prints the run folder it returns
    info = json.loads(Path(run_dir, "run.json").read_text())
    first_epoch = next(i for i, line in enumerate(lines) if "epoch 1/1" in line)
    start = [line for line in lines[:first_epoch] if info["run_id"] in line]
    assert any(f"folder {run_dir}" in line for line in start), lines
    assert any("MLflow UI: start it with `mlflow ui --backend-store-uri sqlite:///" in line for line in start), lines
    assert not [line for line in lines if any(noise in line for noise in ENGINE_LINES)], lines


def test_verbose_shows_the_engine_lines_and_an_untracked_run_names_its_folder(demo_data, tmp_path, capsys,
                                                                              monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    code, lines = _train(train_overrides(demo_data, tmp_path, epochs=1, log_mlflow=False), capsys, "--verbose")
    assert code == 0, lines
    assert any("Engine run resuming" in line for line in lines) and any("Epoch[1] Complete" in line for line in lines)
    assert any(line.endswith(f"run folder {lines[-1]}") for line in lines), lines
    assert VERBOSE_ENV not in os.environ, "--verbose lasts for its command only (later commands are quiet again)"


def test_a_vit_at_a_small_image_size_says_why_it_is_slow():
    from medattn_monai.networks.summary import network_cost_note

    note = network_cost_note(backbone="vit", family="resnet18", image_size=64, num_classes=8)
    assert "8×8 patches of 8 px = 64 tokens" in note and "12 transformer blocks" in note
    ratio = float(note.split("GMACs per image: ")[1].split("×")[0])
    assert ratio > 4, note  # the ViT sized to ResNet18 by parameters, against ResNet18 at 64 px
    assert network_cost_note(backbone="resnet18", attention="ga", image_size=64, num_classes=8) is None


def test_the_ui_line_of_a_tracking_server_is_its_address_without_the_password():
    from medattn_monai.tracking.ui import where_to_watch

    line = where_to_watch("http://alice:s3cret@mlflow.example:5000", "3", "abc")
    assert line == "MLflow UI: http://mlflow.example:5000/#/experiments/3/runs/abc"
