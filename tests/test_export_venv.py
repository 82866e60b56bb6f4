"""An exported bundle's README, followed as written in a fresh virtual environment, runs its inference.

The test reads the ``pip install`` lines and the inference command from the bundle's ``docs/README.md`` and runs
them unchanged, in that order, in a new ``python -m venv`` (no system site-packages, this project not installed, no
``PYTHONPATH``), then checks the predictions against the original model's. The wheels the README asks for are
gathered once per session with ``pip download`` (PyTorch from the machine's local wheel where pip's configuration
has one, the rest from pip's cache or index); the README's own commands then install from that folder only
(``PIP_NO_INDEX``, ``PIP_FIND_LINKS``), and without compiling bytecode (``PIP_NO_COMPILE``): what is installed is
the same, it only takes less time.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from medattn_monai.export import export_bundle

pytestmark = pytest.mark.slow


def _run_block(readme: str) -> list[str]:
    """The commands of the first ``bash`` block of the README's "Run" section (comments and continuations joined)."""
    section = readme.split("\n## Run\n", 1)[1]
    block = section.split("```bash\n", 1)[1].split("\n```", 1)[0]
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip() and not line.startswith("#")]


def _shell(line: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def followed_readme(trained_run, tmp_path_factory) -> SimpleNamespace:
    """The plain run's bundle, its README's commands, and a fresh venv in which its install lines have run."""
    work = tmp_path_factory.mktemp("bundle_venv")
    folder = Path(export_bundle(trained_run.info["run_id"], str(work / "dist" / "bundle"),
                                tracking_uri=trained_run.tracking_uri,
                                output_root=trained_run.overrides["output_root"], zip=False))
    commands = _run_block((folder / "docs" / "README.md").read_text())
    installs = [c for c in commands if c.startswith("pip install ")]
    assert len(installs) == 2 and installs[0].startswith("pip install torch=="), commands

    started = time.perf_counter()
    wheels = work / "wheels"
    requirements = [r for line in installs for r in line.split()[2:]]
    download = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels), *requirements],
                              capture_output=True, text=True, timeout=600)
    if download.returncode != 0:
        message = f"cannot gather the README's wheels: {download.stderr[-1500:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

    downloaded = time.perf_counter()
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", OMP_NUM_THREADS="1",
               PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels), PIP_NO_COMPILE="1")
    for line in installs:
        done = _shell(line, folder, env, timeout=600)
        assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-3000:])
    print(f"\nwheels gathered in {downloaded - started:.0f} s, venv made and README installs run in "
          f"{time.perf_counter() - downloaded:.0f} s")
    return SimpleNamespace(folder=folder, commands=commands, env=env, venv=venv, run=trained_run)


def test_readme_install_lines_and_inference_work_in_a_fresh_venv(followed_readme, demo_data, tmp_path):
    venv_python = followed_readme.venv / "bin" / "python"
    assert subprocess.run([venv_python, "-c", "import medattn_monai"], env=followed_readme.env, cwd=tmp_path,
                          capture_output=True).returncode != 0  # only what the README installed is there

    datalist = json.loads(demo_data.datalist.read_text())
    chosen = [item["image"] for item in datalist["test"][:6]]
    images = tmp_path / "images"
    for name in chosen:
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(demo_data.dataset_dir / name, images / name)
    inference = [c for c in followed_readme.commands if c.startswith("python -m monai.bundle run")
                 and "configs/inference.json --dataset_dir /path/to/images" in c]
    assert len(inference) == 1, followed_readme.commands
    bundle = tmp_path / "bundle"  # a copy: inference writes eval/ into the bundle folder
    shutil.copytree(followed_readme.folder, bundle)
    started = time.perf_counter()
    done = _shell(inference[0].replace("/path/to/images", str(images)), bundle, followed_readme.env)
    print(f"inference as the README says: {time.perf_counter() - started:.0f} s")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "OptionalImportError" not in output
    assert not re.search(r"DataLoader will create \d+ worker processes", output), output[-3000:]

    rows = list(csv.reader((bundle / "eval" / "predictions.csv").open()))
    assert sorted(r[0] for r in rows) == sorted(chosen)
    from test_export import _original_probabilities

    exported = torch.tensor([[float(v) for v in r[1:]] for r in rows], dtype=torch.float64)
    original = _original_probabilities(followed_readme.run, [images / r[0] for r in rows]).double()
    torch.testing.assert_close(exported, original, atol=1e-5, rtol=0)
