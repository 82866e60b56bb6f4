"""Where runs are recorded: the MLflow tracking URI and artifact location, and the one rule for the secrets a URI
may hold.

A tracking URI (``http://alice:PASSWORD@host:5000``) or an Optuna storage URL (``postgresql://team:PASSWORD@db/optuna``)
may carry a password. The real URI is used to connect and kept in memory only; everything printed, logged, tagged,
written to a file or uploaded goes through :func:`mask_secrets` (``http://alice:***@host:5000``). A URI recorded
masked (``run.json``'s ``tracking_uri``) is turned back into the real one by :func:`resolve_tracking_uri` from what
this process was given: the ``--tracking_uri`` argument, ``MLFLOW_TRACKING_URI``, or a URI it used before.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["MASK", "default_artifact_location", "has_masked_password", "mask_log_records", "mask_secrets",
           "mask_uri", "mlflow_ui_command", "remember_uri", "resolve_tracking_uri", "unmask_uri"]

MASK = "***"
# scheme://user:password@ ... the password runs to the last "@" of the authority (unencoded "@" in passwords happen)
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*):(?P<password>[^\s/?#]*)@")
_QUERY_SECRET = re.compile(r"(?i)(?P<head>[?&;](?:password|passwd|pwd|token|access_token|secret|api_key|apikey)=)"
                           r"(?P<value>[^&;#\s'\"]*)")
# masked form -> the real URI, for every URI with a password that this process was given
_REAL: dict[str, str] = {}


def mask_secrets(text: str) -> str:
    """``text`` with the password of every URI in it replaced by ``***`` (``scheme://user:***@host…``), also inside
    longer text such as an exception's message, and ``password=…``/``token=…`` query values."""
    if not isinstance(text, str) or "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['head']}{MASK}", text)


def mask_uri(uri: str | None) -> str | None:
    """A URI as it may be shown or stored (its password masked); None stays None."""
    return None if uri is None else mask_secrets(str(uri))


def has_masked_password(uri: str | None) -> bool:
    """Whether ``uri`` is a masked record (its password replaced by ``***``), unusable for connecting."""
    return bool(uri) and mask_secrets(uri) == uri and f":{MASK}@" in uri


def remember_uri(uri: str | None) -> None:
    """Keep a URI with a password in this process's memory, so that its masked record can be resolved later.

    MLflow's client prints a link to every run it ends on a tracking server, built from the URI with its password;
    with such a URI that printing is switched off (``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT``).
    """
    if uri and mask_secrets(uri) != uri:
        _REAL[mask_secrets(uri)] = uri
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        mask_log_records()


def _masking_factory(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's to report, not ours
            return record
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[0] is not None:  # the traceback a handler would print
            record.exc_text = mask_secrets("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return record

    factory._masks_secrets = True  # type: ignore[attr-defined]
    return factory


def mask_log_records() -> None:
    """Mask the password of every URI in every log record this process creates from now on (whatever logger,
    handler or format: Ignite, for one, logs the message of the exception that ended a run). Idempotent."""
    make = logging.getLogRecordFactory()
    if not getattr(make, "_masks_secrets", False):
        logging.setLogRecordFactory(_masking_factory(make))


def unmask_uri(uri: str, given: str | None = None, what: str = "tracking URI",
               env: str = "MLFLOW_TRACKING_URI", flag: str = "--tracking_uri") -> str:
    """The real URI of a possibly masked record: ``uri`` itself when nothing is masked, else ``given`` or ``$env`` if
    its masked form matches, else one this process used before; otherwise a :class:`ConfigError` saying what to pass.
    """
    if not has_masked_password(uri):
        return uri
    for candidate in (given, os.environ.get(env)):
        if candidate and mask_secrets(candidate) == uri:
            return candidate
    if uri in _REAL:
        return _REAL[uri]
    raise ConfigError(f"the {what} {uri} was recorded with its password masked: pass it with the password "
                      f"({flag} …) or set {env}")


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The tracking URI: the argument, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlruns/mlflow.db``.

    A masked record (see the module docstring) is resolved to the real URI. The old file store (a bare path or
    ``file:``) is refused: MLflow >= 3.13 no longer reads it.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        db = Path.cwd() / "mlruns" / "mlflow.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{db}"
    uri = unmask_uri(uri)
    remember_uri(uri)
    if uri.startswith("file:") or "://" not in uri:
        raise ConfigError(
            f"tracking URI {mask_secrets(uri)!r} is a file store, which MLflow no longer supports: "
            "use sqlite:///path/to/mlflow.db, http(s)://server or postgresql://…"
        )
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    return uri


def default_artifact_location(tracking_uri: str, experiment_name: str) -> str | None:
    """Artifacts of a local sqlite store live beside the database (``<db dir>/artifacts/<experiment>``).

    For a server or database backend the server decides (None).
    """
    if tracking_uri.startswith("sqlite:///"):
        root = Path(tracking_uri[len("sqlite:///") :]).parent / "artifacts" / experiment_name
        return root.resolve().as_uri()
    return None


def mlflow_ui_command(tracking_uri: str | None = None) -> str:
    """The command that opens the MLflow UI on this store (its password masked: the command is shown, not run)."""
    uri = resolve_tracking_uri(tracking_uri)
    return f"mlflow ui --backend-store-uri {mask_secrets(uri)}"
