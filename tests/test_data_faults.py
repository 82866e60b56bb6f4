"""Faults around the data package: a process that exits while the RAM cache fills, unwritable converter outputs."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import REPO
from medattn_monai.cli import main
from medattn_monai.data import load_datalist
from medattn_monai.data.demo import make_demo_data
from medattn_monai.data.demo.folders import MARKER
from medattn_monai.errors import DataError

# builds a RAM-cached dataset (its decoding threads start at once) in 8 forked children, each of which exits with
# status 2 while the threads decode, as `medattn train --image_size 50` does when the network refuses the size
_EXIT_WHILE_FILLING = """
import os, sys, time
from medattn_monai.data import ImageClassificationDataset, LoadResizeImaged, load_datalist, split_items
items = split_items(load_datalist(sys.argv[1]), "training", sys.argv[2])
children = []
for _ in range(8):
    pid = os.fork()
    if pid == 0:
        ImageClassificationDataset(items, LoadResizeImaged("image", 32), (3, 32, 32), cache="ram", progress=False,
                                   num_threads=4, check_files=False)
        time.sleep(0.05)
        sys.exit(2)
    children.append(pid)
print([os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children])
"""


def test_exit_while_the_cache_fills_keeps_the_exit_status(demo_data):
    # before the exit hook stopped the decoding threads, 6 of 8 such exits aborted (status 134, "terminate called
    # without an active exception")
    proc = subprocess.run([sys.executable, "-c", _EXIT_WHILE_FILLING, str(demo_data.datalist),
                           str(demo_data.dataset_dir)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == str([2] * 8), proc.stderr[-2000:]
    assert "terminate called" not in proc.stderr


@pytest.fixture
def isic_copy(demo_data, tmp_path) -> Path:
    dst = tmp_path / "isic"
    shutil.copytree(demo_data.dataset_dir, dst)
    return dst


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_converter_output_under_a_file_is_one_line_and_leaves_nothing(isic_copy, tmp_path, capsys):
    (tmp_path / "a_file").write_text("mine")
    before = _files(tmp_path)
    for out in (tmp_path / "a_file" / "datalist.json", tmp_path / "a_file" / "sub" / "datalist.json"):
        code = main(["prepare", "isic2019", str(isic_copy), str(out)])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert err.strip() == f"medattn: error: cannot write {out}: {tmp_path / 'a_file'} is a file, not a folder"
    assert _files(tmp_path) == before and (tmp_path / "a_file").read_text() == "mine"
    code = main(["prepare", "isic2019", str(isic_copy), str(tmp_path)])
    assert code == 2 and f"cannot write {tmp_path}: it is a folder" in capsys.readouterr().err


def test_read_only_output_folder_is_one_line_and_leaves_nothing(isic_copy, tmp_path, capsys, monkeypatch):
    out_dir = tmp_path / "read_only"
    out_dir.mkdir()
    out = out_dir / "new" / "datalist.json"
    if os.geteuid() == 0:  # root writes into read-only folders: refuse the temporary file as the kernel would
        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        out_dir.chmod(0o555)
        out = out_dir / "datalist.json"
    try:
        code = main(["prepare", "isic2019", str(isic_copy), str(out)])
    finally:
        out_dir.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 2 and err.strip().startswith(f"medattn: error: cannot write {out}: Permission denied")
    assert list(out_dir.iterdir()) == [], "no temporary file and no folder left behind"


def _tiny_demo(out: Path) -> str:
    return make_demo_data(str(out), n_lesions=16, image_size=16, datasets="isic2019,camelyon17",
                          camelyon_patients_per_center=2, camelyon_patches_per_patient=2)


def test_the_demo_never_replaces_a_folder_or_datalist_it_did_not_write(tmp_path):
    real = tmp_path / "data" / "isic2019" / "ISIC_2019_Training_Input"
    real.mkdir(parents=True)
    (real / "ISIC_0000000.jpg").write_bytes(b"a real image")
    with pytest.raises(DataError, match=rf"^{tmp_path / 'data' / 'isic2019'} exists and was not written by the demo"):
        _tiny_demo(tmp_path / "data")
    assert _files(tmp_path / "data") == {"isic2019", "isic2019/ISIC_2019_Training_Input",
                                         "isic2019/ISIC_2019_Training_Input/ISIC_0000000.jpg"}, "nothing written"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "camelyon17_datalist.json").write_text('{"classes": ["mine"]}')
    with pytest.raises(DataError, match=r"camelyon17_datalist\.json exists and is not a demo datalist"):
        _tiny_demo(tmp_path / "other")
    assert _files(tmp_path / "other") == {"camelyon17_datalist.json"}


def test_the_demo_rewrites_its_own_folders_also_those_written_before_the_marker(tmp_path):
    _tiny_demo(tmp_path / "demo")
    (tmp_path / "demo" / "isic2019" / MARKER).unlink()  # as an older version left it: its datalist says demo
    _tiny_demo(tmp_path / "demo")
    assert load_datalist(tmp_path / "demo" / "isic2019_datalist.json")["demo"] is True
    assert (tmp_path / "demo" / "isic2019" / MARKER).is_file()
