"""``retain_host_memory``: memory a step frees is reused by the next one instead of being page-faulted again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch

from medattn_monai.engine.device import retain_host_memory
from medattn_monai.errors import ConfigError

# a fresh interpreter (the setting is process-wide): the page faults of allocating, touching and freeing a 64 MiB
# tensor 20 times (after a warm-up), with the allocator left alone and then with the setting applied
_PROBE = """
import resource, torch
from medattn_monai.engine.device import retain_host_memory

def faults():
    for _ in range(3):
        torch.empty(16 * 2**20).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        torch.empty(16 * 2**20).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

print(faults(), retain_host_memory("auto", "cpu"), faults())
"""


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc allocator only")
def test_freed_activations_are_reused_without_page_faults():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    before, applied, after = out.stdout.split()
    pages = 20 * 64 * 2**20 // 4096
    assert int(before) > pages // 2  # left alone, glibc maps every 64 MiB block afresh
    assert applied == "True" and int(after) < pages // 10


def test_settings():
    assert retain_host_memory(False, "cpu") is False
    assert retain_host_memory("auto", torch.device("cuda")) is False
    with pytest.raises(ConfigError, match="retain_host_memory must be auto, true or false"):
        retain_host_memory("on", "cpu")
