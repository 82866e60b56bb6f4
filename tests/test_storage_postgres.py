"""Opening a shared PostgreSQL Optuna storage: workers started at the same moment on a new database all come up
(they race to create Optuna's tables), and an unreachable database is one line naming its URL, password masked."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO
from medattn_monai.errors import ConfigError
from medattn_monai.search.storage import open_storage
from team_setup import free_port

PASSWORD = "Pw-race-NotForLogs"


_WORKER = textwrap.dedent("""
    import pathlib, sys, time
    import optuna
    from medattn_monai.search.storage import open_storage
    url, ready, name, n = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    (ready / name).touch()
    while len(list(ready.iterdir())) < n:  # every worker imported: now all open the storage at once
        time.sleep(0.005)
    storage = open_storage(url, heartbeat_interval=1, grace_period=5)
    optuna.create_study(study_name="race", storage=storage, direction="maximize", load_if_exists=True)
    print("up")
""")


def test_workers_started_together_on_a_new_database_all_come_up(team_servers, tmp_path):
    url = team_servers.new_database(f"race_{os.getpid()}_{free_port()}", PASSWORD)
    ready = tmp_path / "ready"
    ready.mkdir()
    n = 4
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, url, str(ready), str(i), str(n)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    results = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0] * n, "\n".join(err[-2000:] for _, err in results)
    assert all(out.strip().endswith("up") for out, _ in results)
    assert not any(PASSWORD in out + err for out, err in results)


def test_an_unreachable_database_is_one_line_with_the_url_masked():
    pytest.importorskip("psycopg", reason="postgresql:// URLs need psycopg 3 (the [team] extra)")
    port = free_port()
    start = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        open_storage(f"postgresql://team:{PASSWORD}@127.0.0.1:{port}/optuna", timeout=2)
    message = str(refused.value)
    assert message.startswith(f"cannot reach the Optuna storage postgresql://team:***@127.0.0.1:{port}/optuna "
                              "within 2 s: ")
    assert PASSWORD not in message and "\n" not in message
    assert time.monotonic() - start < 60, "it gave up instead of waiting for the operating system's TCP timeout"
