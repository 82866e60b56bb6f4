"""docs/team.md's commands that the session's servers (``team_servers``) and tests/test_team.py do not run: the
install line (as a dry run), the study config, and the shared server with MLflow's basic-auth app: a user created
by the admin reaches it with the password in the URI or in MLflow's variables, nobody without one."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request

import mlflow
import pytest
import yaml

from conftest import REPO
from medattn_monai.study.config import StudyConfig
from team_setup import MlflowProcess, doc_blocks, free_port, run_block, setting_names

# every block of the page and who runs it
RUN_BY = {
    "settings": "team_setup.team_settings (its variables, with the tests' values)",
    "auth-settings": "test_a_shared_server_with_logins (its variables, with the test's values)",
    "install": "test_the_install_line_resolves_with_the_team_extra",
    "postgres-own": "team_setup.start_team_servers", "postgres-stop": "team_setup.TeamServers.stop",
    "databases": "team_setup.start_team_servers", "mlflow-server": "team_setup.start_team_servers",
    "mlflow-auth-config": "test_a_shared_server_with_logins", "mlflow-auth-server": "test_a_shared_server_with_logins",
    "mlflow-user": "test_a_shared_server_with_logins", "config": "test_the_config_is_a_valid_study_config",
    "worker": "test_team.team_study", "any-machine": "test_team.test_any_machine_evaluates_and_exports_a_run_by_its_id",
}


def test_every_block_of_the_page_is_run_by_a_test():
    blocks = doc_blocks()
    unrun, gone = set(blocks) - set(RUN_BY), set(RUN_BY) - set(blocks)
    assert not unrun and not gone, f"blocks nobody runs: {unrun}; runners of blocks that are gone: {gone}"
    assert "PGPASSWORD" in setting_names(blocks["settings"])


def test_the_config_is_a_valid_study_config():
    config = StudyConfig.from_dict(yaml.safe_load(doc_blocks()["config"]), source="docs/team.md")
    assert config.output_root == "runs" and config.grace_period > config.heartbeat_interval


def test_the_install_line_resolves_with_the_team_extra():
    """The page's install line, as a dry run in this checkout: psycopg 3 and MLflow's basic-auth app come with it."""
    pip = f'pip() {{ "{sys.executable}" -m pip "$@" --dry-run --no-build-isolation; }}\n'
    script = pip + doc_blocks()["install"]
    done = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for package in ("psycopg", "flask-wtf"):
        assert package in done.stdout.lower().replace("_", "-"), done.stdout[-3000:]


def _refused(url: str) -> int:
    try:
        urllib.request.urlopen(url, timeout=30)
    except urllib.error.HTTPError as e:
        return e.code
    return 200


def test_a_shared_server_with_logins(team_servers, tmp_path):
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs Flask-WTF (the [team] extra)")
    port = free_port()
    auth = {"MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "mlflow-auth.ini"),
            "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-Password-2", "MLFLOW_FLASK_SERVER_SECRET_KEY": "key-" + "0" * 32}
    assert setting_names(doc_blocks()["auth-settings"]) == set(auth)
    settings = {**team_servers.settings, "MLFLOW_PORT": str(port), "MLFLOW_ARTIFACTS": str(tmp_path / "artifacts"),
                "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}", **auth}
    run_block("mlflow-auth-config", settings)
    assert oct(os.stat(settings["MLFLOW_AUTH_CONFIG_PATH"]).st_mode & 0o777) == "0o600"
    server = MlflowProcess("mlflow-auth-server", settings, tmp_path / "server.log")
    server.start()
    try:
        run_block("mlflow-user", settings, ALICE_PASSWORD="alice-Password-1")
        assert _refused(f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1") == 401
        client = mlflow.MlflowClient(f"http://alice:alice-Password-1@127.0.0.1:{port}")
        experiment = client.create_experiment("team-logins")
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "x", 1.0)
        client.set_terminated(run.info.run_id)
        from medattn_monai.tracking.mlflow_runs import open_client

        os.environ.update(MLFLOW_TRACKING_USERNAME="alice", MLFLOW_TRACKING_PASSWORD="alice-Password-1")
        try:
            runs = open_client(f"http://127.0.0.1:{port}").search_runs([experiment])
        finally:
            for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                os.environ.pop(name)
        assert [r.info.status for r in runs] == ["FINISHED"]
        wrong = mlflow.MlflowClient(f"http://alice:wrong@127.0.0.1:{port}")
        with pytest.raises(mlflow.exceptions.MlflowException, match="401|[Uu]nauthori[sz]ed|credentials"):
            wrong.search_experiments()
    finally:
        server.stop()
