"""The ``medattn`` command: a thin layer over library functions of the same arguments.

Each subcommand is ``module:function`` below; only the module of the command being run is imported, so
``medattn --help`` answers at once, and ``medattn COMMAND --help`` reads the function's signature and docstring
from its source without importing it (:mod:`medattn_monai.cli_help`). The same functions are usable from a notebook.

``--verbose`` (any command) shows every log line of the engines (:mod:`medattn_monai.console`).
"""

from __future__ import annotations

import importlib
import os
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
    "models": ("medattn_monai.models_command:print_models", "parameters and overhead of every network"),
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


def _unknown_flags(component: Any, args: list[str]) -> list[str]:
    """The ``--flags`` of ``args`` that the command's function does not take (none if it takes ``**overrides``).

    Fire calls the function with the flags it knows and only then complains about the rest, so a misspelt flag
    would first run the command with that argument's default (``demo-data --root x`` writing ``demo_data/``).
    """
    import inspect

    if isinstance(component, dict):  # a command group: the first argument names the command
        if not args or args[0] not in component:
            return []
        component, args = component[args[0]], args[1:]
    params = inspect.signature(component).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    unknown = []
    for arg in args:
        if arg == "--":
            break
        name = arg[2:].split("=", 1)[0].replace("-", "_") if arg.startswith("--") else None
        if name and name not in params and not (name.startswith("no") and name[2:] in params):
            unknown.append(arg.split("=", 1)[0])
    return unknown


def _fault(error: BaseException, args: list[str]) -> Any:
    """A one-line error for a fault of the machine rather than of the code: a file that cannot be used, or a store
    that cannot be written (named when ``--tracking_uri`` names it); None for anything else."""
    from .errors import file_system_error
    from .tracking.mlflow_runs import store_fault

    uri = next((a.split("=", 1)[1] if "=" in a else (args[i + 1] if i + 1 < len(args) else None)
                for i, a in enumerate(args) if a.split("=", 1)[0] in ("--tracking_uri", "--tracking-uri")), None)
    return file_system_error(error) or store_fault(uri, error)


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

    from .console import is_verbose, set_verbose
    from .errors import error_message, find_medattn_error
    from .tracking.store import mask_log_records, mask_secrets

    mask_log_records()

    args = argv[1:]
    if "--verbose" in args:  # for this command only (and the processes it starts), also when main is called in-process
        was_verbose = is_verbose()
        set_verbose(True)
        try:
            return main([name, *(a for a in args if a != "--verbose")])
        finally:
            set_verbose(was_verbose)
    if "--help" in args or "-h" in args:
        from .cli_help import help_component

        component = help_component(COMMANDS[name][0])
        # fire reads flags after "--" as its own; without it, functions taking **overrides would swallow --help
        args = [a for a in args if a not in ("--help", "-h")] + ["--", "--help"]
    else:
        component = _load(COMMANDS[name][0])
        unknown = _unknown_flags(component, args)
        if unknown:
            print(f"medattn: error: medattn {name} has no flag {', '.join(unknown)} (nothing was done); "
                  f"`medattn {name} --help` lists its flags", file=sys.stderr)
            return 2
    try:
        fire.Fire(component, command=args, name=f"medattn {name}", serialize=_serialize)
    except fire.core.FireExit as e:
        return int(e.code or 0)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - project errors: one line; others: a traceback
        err = find_medattn_error(e) or (None if os.environ.get("MEDATTN_TRACEBACK") else _fault(e, args))
        if err is None and isinstance(e, KeyboardInterrupt):  # Ctrl-C: the user knows why; a run it ended is KILLED
            hint = ("; the training run it was recording is marked KILLED: `medattn resume <run folder>` continues it"
                    if name in ("train", "resume", "search", "study") else "")
            print(f"medattn: interrupted: medattn {name} stopped{hint}", file=sys.stderr)
            return 130
        if err is None:  # a library's error or a bug: its traceback, without the password of any URI in it
            print(mask_secrets("".join(traceback.format_exception(e))).rstrip(), file=sys.stderr)
            return 1
        print(f"medattn: error: {mask_secrets(error_message(err))}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
