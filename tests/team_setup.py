"""The team set-up of docs/team.md, run from the page itself: its labelled ``bash`` blocks, with the tests' values of
its settings (a temporary folder, free ports on 127.0.0.1), so that the page and what the tests run cannot drift.

:func:`start_team_servers` runs the blocks that make a PostgreSQL of its own (as the ``postgres`` user when the
tests run as root: PostgreSQL refuses root, and pytest's temporary folders are private to root) and the MLflow
tracking server with the PostgreSQL backend and a proxied artifact folder, for the whole test session
(``team_servers`` in tests/conftest.py). Both are stopped by their process ids.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "team.md"
_BLOCK = re.compile(r"<!-- team: (?P<name>[\w-]+) -->\n```(?P<lang>\w+)\n(?P<body>.*?)```", re.S)
# how a test runs `medattn`: this checkout's code (an installed `medattn` script may import another copy)
MEDATTN = f'medattn() {{ "{sys.executable}" -m medattn_monai.cli "$@"; }}\n'


def free_port() -> int:
    """A TCP port nobody listens on right now (also usable as a closed port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_missing() -> str | None:
    """Why no PostgreSQL of the tests' own can run here, or None."""
    for tool in ("initdb", "pg_ctl", "psql", "createdb"):
        if shutil.which(tool) is None:
            return f"PostgreSQL's {tool} is not on the PATH"
    if os.geteuid() == 0:
        import pwd

        if shutil.which("runuser") is None:
            return "running as root, but runuser (to run PostgreSQL as the postgres user) is missing"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, but there is no postgres user to run PostgreSQL as"
    return None


def doc_blocks() -> dict[str, str]:
    """The labelled code blocks of docs/team.md (``<!-- team: NAME -->`` before each); every ``bash`` block must
    carry a label, so that no command of the page escapes the tests."""
    text = DOC.read_text()
    blocks = {m["name"]: m["body"] for m in _BLOCK.finditer(text)}
    labelled = len(_BLOCK.findall(text))
    if text.count("```bash") != sum(1 for m in _BLOCK.finditer(text) if m["lang"] == "bash") or labelled != len(blocks):
        raise AssertionError(f"{DOC}: every bash block needs its own '<!-- team: NAME -->' label on the line before")
    return blocks


def setting_names(block: str) -> set[str]:
    """The variables the settings block exports."""
    names = set()
    for line in block.splitlines():
        if line.startswith("export "):
            names |= set(re.findall(r"(?:^export |\s)([A-Z_][A-Z0-9_]*)=", line.split("#")[0]))
    return names


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _env(settings: dict[str, str], **more: str) -> dict[str, str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # this venv's mlflow first
    return {**os.environ, "PYTHONPATH": str(REPO), "PATH": path, **settings, **more}


def run_block(name: str, settings: dict[str, str], as_postgres: bool = False, cwd: Path | None = None,
              timeout: float = 120, **more: str) -> subprocess.CompletedProcess:
    """Run block ``name`` of docs/team.md with bash (``set -euo pipefail``); fails with its output if it fails."""
    script = "set -euo pipefail\n" + MEDATTN + doc_blocks()[name]
    cmd = (_as_postgres() if as_postgres else []) + ["bash", "-c", script]
    done = subprocess.run(cmd, env=_env(settings, **more), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"docs/team.md block {name!r} failed ({done.returncode}): {done.stderr[-3000:]}")
    return done


@dataclass
class MlflowProcess:
    """An ``mlflow server`` started from a block of docs/team.md in its own process group."""

    block: str
    settings: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings['MLFLOW_PORT']}"

    def start(self, timeout: float = 240) -> None:
        script = "set -euo pipefail\nexec " + doc_blocks()[self.block]
        with open(self.log, "a") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(["bash", "-c", script], env=_env(self.settings), stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer within {timeout} s: {self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server and the workers it started (its process group), by its process id."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for _ in range(100):  # its uvicorn worker, in the same group, may outlive it for a moment
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)


@dataclass
class TeamServers:
    """PostgreSQL and an MLflow tracking server set up as docs/team.md says (see the module docstring)."""

    folder: Path
    settings: dict[str, str]
    mlflow: MlflowProcess
    _roles: set = field(default_factory=set)

    @property
    def artifacts(self) -> Path:
        return Path(self.settings["MLFLOW_ARTIFACTS"])

    def storage_url(self, database: str = "optuna") -> str:
        s = self.settings
        return f"postgresql://{s['PGUSER']}:{s['PGPASSWORD']}@{s['PGHOST']}:{s['PGPORT']}/{database}"

    def tracking_url(self, credentials: str = "") -> str:
        """The server's URI, with ``user:password@`` (which this server, without logins, ignores)."""
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.settings['MLFLOW_PORT']}"

    def new_database(self, name: str, password: str = "PASSWORD") -> str:
        """A new database ``name`` owned by a new user ``name`` with ``password``; returns its URL (the server
        checks the password)."""
        quoted = password.replace("'", "''")
        sql = f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{quoted}'; CREATE DATABASE \"{name}\" OWNER \"{name}\";"
        for statement in sql.split("; "):
            subprocess.run(["psql", "-d", "postgres", "-qc", statement], env=_env(self.settings), check=True,
                           capture_output=True)
        return f"postgresql://{name}:{password}@{self.settings['PGHOST']}:{self.settings['PGPORT']}/{name}"

    def restart_mlflow(self, down_s: float) -> None:
        """Kill the tracking server (SIGKILL), leave it down for ``down_s`` seconds, start it again (same port)."""
        self.mlflow.stop(signal.SIGKILL)
        time.sleep(down_s)
        self.mlflow.start()

    def stop(self) -> None:
        self.mlflow.stop()
        _stop_postgres(self.settings)
        shutil.rmtree(self.folder, ignore_errors=True)


def _stop_postgres(settings: dict[str, str]) -> None:
    pid_file = Path(settings["PGDATA"]) / "postmaster.pid"
    pid = int(pid_file.read_text().split()[0]) if pid_file.is_file() else None
    try:
        run_block("postgres-stop", settings, as_postgres=True, timeout=60)
    except (AssertionError, subprocess.TimeoutExpired):
        pass
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)  # only if the doc's stop did not stop it
        except ProcessLookupError:
            pass


def team_settings(folder: Path) -> dict[str, str]:
    """The tests' values of docs/team.md's settings (every variable of its settings block, no other)."""
    settings = {
        "PGHOST": "127.0.0.1", "PGPORT": str(free_port()), "PGUSER": "team",
        "PGPASSWORD": "pg-" + secrets.token_hex(8), "PGDATA": str(folder / "postgres"),
        "MLFLOW_BIND": "127.0.0.1", "MLFLOW_PORT": str(free_port()), "MLFLOW_ARTIFACTS": str(folder / "artifacts"),
    }
    settings["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{settings['MLFLOW_PORT']}"
    documented = setting_names(doc_blocks()["settings"])
    if documented != set(settings):
        raise AssertionError(f"docs/team.md's settings {sorted(documented)} differ from the tests' {sorted(settings)}")
    return settings


def start_team_servers() -> TeamServers:
    """PostgreSQL (section 3 of docs/team.md, a database of its own) and the MLflow server (section 4)."""
    folder = Path(tempfile.mkdtemp(prefix="medattn-team-", dir="/tmp"))
    settings = team_settings(folder)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")  # PGDATA is created inside it by the postgres user
    servers = TeamServers(folder, settings, MlflowProcess("mlflow-server", settings, folder / "mlflow-server.log"))
    try:
        run_block("postgres-own", settings, as_postgres=True)
        run_block("databases", settings)
        servers.mlflow.start()
    except BaseException:
        servers.stop()
        raise
    return servers
