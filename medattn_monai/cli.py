"""The ``medattn`` command: a thin layer over library functions of the same arguments.

Each subcommand is ``module:function`` below; only the module of the command being run is imported, so
``medattn --help`` answers at once, and ``medattn COMMAND --help`` reads the function's signature and docstring
from its source without importing it (:mod:`medattn_monai.cli_help`). The same functions are usable from a notebook.

``--verbose`` (any command) shows every log line of the engines (:mod:`medattn_monai.console`).
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

__all__ = ["COMMANDS", "main"]

# name -> (target, one-line summary). A target is "module:function" or a dict of such targets (a command group).
COMMANDS: dict[str, tuple[Any, str]] = {
    "demo-data": ("medattn_monai.data.demo:make_demo_data", "write the synthetic demo datasets and their datalists"),
    "prepare": (
        {
            "isic2019": "medattn_monai.data.isic2019:prepare_isic2019",
            "camelyon17": "medattn_monai.data.camelyon17:prepare_camelyon17",
            "derm7pt": "medattn_monai.data.derm7pt:prepare_derm7pt",
        },
        "convert a downloaded dataset folder into a datalist JSON",
    ),
    "train": ("medattn_monai.engine.workflow:train", "train a bundle (same as python -m monai.bundle run training)"),
    "resume": ("medattn_monai.engine.workflow:resume", "continue an interrupted training run into the same MLflow run"),
    "evaluate": ("medattn_monai.engine.workflow:evaluate", "evaluate a trained run on its test splits"),
    "models": ("medattn_monai.networks.summary:print_model_table", "parameters and overhead of every network"),
    "compare": ("medattn_monai.stats.compare:compare", "statistics over seeds: does a variant beat its baselines?"),
    "explain": ("medattn_monai.explain.maps_command:explain",
                "Grad-CAM and attention maps of a trained run, mask shares and their agreement"),
    "feature-usage": ("medattn_monai.explain.feature_usage_command:feature_usage",
                      "does a trained run's output depend on annotated features given the label?"),
    "export-bundle": (
        "medattn_monai.export.bundle:export_bundle",
        "a trained run as a Model Zoo bundle (folder + zip) that runs with MONAI alone",
    ),
    "search": ("medattn_monai.search.search:search", "Optuna hyper-parameter search; trials are MLflow child runs"),
    "study": ("medattn_monai.study.runner:study", "search, seeds, evaluation and comparison of every cell (resumable)"),
}


def _load(target: Any) -> Any:
    if isinstance(target, dict):
        return {name: _load(t) for name, t in target.items()}
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _serialize(result: Any) -> Any:
    # print plain results (a path, a number); None and rich objects (data frames) print nothing
    return result if isinstance(result, (str, int, float)) else None


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: medattn COMMAND [ARGS] [--help]", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "`medattn COMMAND --help` shows a command's arguments; `--verbose` shows every engine log line."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``medattn`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name = argv[0].replace("_", "-")
    if name not in COMMANDS:
        print(f"medattn: error: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2

    import fire

    from .console import set_verbose
    from .errors import error_message, find_medattn_error
    from .tracking.store import mask_log_records, mask_secrets

    mask_log_records()

    args = argv[1:]
    if "--verbose" in args:
        set_verbose(True)
        args = [a for a in args if a != "--verbose"]
    if "--help" in args or "-h" in args:
        from .cli_help import help_component

        component = help_component(COMMANDS[name][0])
        # fire reads flags after "--" as its own; without it, functions taking **overrides would swallow --help
        args = [a for a in args if a not in ("--help", "-h")] + ["--", "--help"]
    else:
        component = _load(COMMANDS[name][0])
    try:
        fire.Fire(component, command=args, name=f"medattn {name}", serialize=_serialize)
    except fire.core.FireExit as e:
        return int(e.code or 0)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - project errors: one line; others: a traceback
        err = find_medattn_error(e)
        if err is None and isinstance(e, KeyboardInterrupt):
            raise
        if err is None:  # a library's error or a bug: its traceback, without the password of any URI in it
            print(mask_secrets("".join(traceback.format_exception(e))).rstrip(), file=sys.stderr)
            return 1
        print(f"medattn: error: {mask_secrets(error_message(err))}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
