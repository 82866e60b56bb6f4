"""Faults around the data package: a process that exits while the RAM cache fills, unwritable converter outputs."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

# builds a RAM-cached dataset (its decoding threads start at once) in 8 forked children, each of which exits with
# status 2 while the threads decode, as `medattn train --image_size 50` does when the network refuses the size
_EXIT_WHILE_FILLING = """
import os, sys, time
from medattn_monai.data import ImageClassificationDataset, LoadResizeImaged, load_datalist, split_items
items = split_items(load_datalist(sys.argv[1]), "training", sys.argv[2]) * 4
codes = []
for _ in range(8):
    pid = os.fork()
    if pid == 0:
        ImageClassificationDataset(items, LoadResizeImaged("image", 32), (3, 32, 32), cache="ram", progress=False,
                                   num_threads=4, check_files=False)
        time.sleep(0.05)
        sys.exit(2)
    codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print(codes)
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
