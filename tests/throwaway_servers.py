"""A throwaway PostgreSQL and ``mlflow server`` on 127.0.0.1, for tests that need real servers.

Tests use the session fixture ``team_servers`` where the suite has one; these helpers start their own otherwise.
PostgreSQL refuses to run as root: as root it runs as the ``postgres`` user, in a folder that user can reach
(pytest's own temporary folders are private to root). Everything started here is stopped by its process id.
"""

from __future__ import annotations

import os
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

PG_USER = "team"


def free_port() -> int:
    """A TCP port nobody listens on right now (also usable as a closed port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_missing() -> str | None:
    """Why no throwaway PostgreSQL can run here, or None."""
    for tool in ("initdb", "pg_ctl", "psql"):
        if shutil.which(tool) is None:
            return f"PostgreSQL's {tool} is not on the PATH"
    return None


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class Postgres:
    """A running throwaway PostgreSQL (trust authentication: any password is accepted, so URLs may carry one)."""

    folder: Path
    port: int
    host: str = "127.0.0.1"
    user: str = PG_USER
    _made: set = field(default_factory=set)

    def new_database(self, name: str, password: str = "PASSWORD") -> str:
        """Create database ``name``; returns its URL (with ``password``, which trust authentication ignores)."""
        subprocess.run(["psql", "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", "postgres", "-qc",
                        f'create database "{name}"'], check=True, capture_output=True)
        return f"postgresql://{self.user}:{password}@{self.host}:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(_as_postgres() + ["pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres() -> Postgres:
    folder = Path(tempfile.mkdtemp(prefix="medattn-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    port = free_port()
    data = folder / "data"
    subprocess.run(_as_postgres() + ["initdb", "-D", str(data), "-A", "trust", "-U", PG_USER], check=True,
                   capture_output=True)
    subprocess.run(_as_postgres() + ["pg_ctl", "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                                     f"-p {port} -h 127.0.0.1 -k {folder}", "start"], check=True, capture_output=True)
    return Postgres(folder, port)


@dataclass
class MlflowServer:
    """A running ``mlflow server`` (sqlite backend, proxied artifacts) started in its own process group."""

    folder: Path
    port: int
    process: subprocess.Popen

    def url(self, credentials: str = "") -> str:
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the server and the uvicorn worker it started
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_mlflow_server(timeout: float = 180) -> MlflowServer:
    folder = Path(tempfile.mkdtemp(prefix="medattn-mlflow-"))
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
           "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]
    with open(folder / "server.log", "w") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    server = MlflowServer(folder, port, process)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(folder / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.url()}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    raise RuntimeError("mlflow server did not answer within its start-up time")
