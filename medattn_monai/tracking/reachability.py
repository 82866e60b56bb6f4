"""Is the MLflow tracking server there? Asked once per process, before a command records anything.

MLflow's client retries a request to an unreachable server for minutes (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, with
a growing pause), which is right once a run trains (a server restarted during a training is survived) but turns a
wrong URL or a server that is down at the start into minutes of silence. So the first time a process opens a
client on an ``http(s)://`` tracking URI, :func:`check_tracking_server` asks the server's ``/health`` page with a
short timeout, again every second, for at most ``MEDATTN_TRACKING_TIMEOUT`` seconds (default 30), and then stops
the command with one line naming the URL (password masked). Once the server answered, the process never asks
again: MLflow's own retries apply to everything after.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError
from .store import mask_secrets

__all__ = ["TRACKING_TIMEOUT_ENV", "TRACKING_TIMEOUT_S", "check_tracking_server", "tracking_timeout"]

TRACKING_TIMEOUT_ENV = "MEDATTN_TRACKING_TIMEOUT"
TRACKING_TIMEOUT_S = 30.0
_REACHED: set[str] = set()
logger = logging.getLogger("medattn")


def tracking_timeout() -> float:
    """Seconds to wait for the tracking server at start: ``MEDATTN_TRACKING_TIMEOUT``, else 30."""
    raw = os.environ.get(TRACKING_TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return TRACKING_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{TRACKING_TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    return value


def _health_url(uri: str) -> str:
    # credentials are not needed to see that the server answers (and urllib does not take them in the URL)
    parts = urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/") + "/health", "", ""))


def _answers(url: str, seconds: float) -> str | None:
    """None when the server answers at all (any HTTP status, even a TLS complaint), else why not."""
    try:
        with urllib.request.urlopen(url, timeout=seconds):  # http(s) only: checked by the caller
            return None
    except urllib.error.HTTPError:
        return None  # it answered (401 without credentials, 404 behind a proxy path, …)
    except urllib.error.URLError as e:
        reason = e.reason
        if "ssl" in type(reason).__module__.lower() or "certificate" in str(reason).lower():
            return None  # it answered; TLS settings are MLflow's business (MLFLOW_TRACKING_SERVER_CERT_PATH, …)
        return str(reason)
    except OSError as e:  # a timeout, a reset connection
        return str(e) or type(e).__name__


def check_tracking_server(uri: str, timeout: float | None = None) -> None:
    """Return once the tracking server of ``uri`` answers; a :class:`ConfigError` naming it (password masked) when
    it does not within ``timeout`` seconds (default :func:`tracking_timeout`). Other stores are not asked."""
    if not uri.startswith(("http://", "https://")) or uri in _REACHED:
        return
    seconds = tracking_timeout() if timeout is None else timeout
    url, deadline, told = _health_url(uri), time.monotonic() + seconds, False
    while True:
        left = deadline - time.monotonic()
        why = _answers(url, max(1.0, min(5.0, left)))
        if why is None:
            _REACHED.add(uri)
            return
        if time.monotonic() + 1 >= deadline:
            raise ConfigError(f"cannot reach the MLflow tracking server {mask_secrets(uri)} within {seconds:g} s: "
                              f"{mask_secrets(why)} (is it running, and is the URL right? {TRACKING_TIMEOUT_ENV} "
                              "sets how long to wait)")
        if not told:
            logger.info("MLflow tracking server %s not reachable yet, retrying for %g s: %s", mask_secrets(uri),
                        seconds, mask_secrets(why))
            told = True
        time.sleep(1.0)
