"""What ``torchrun`` starts in every process of a multi-GPU training launched by :mod:`.launch`.

``python -m medattn_monai.engine.torchrun_entry spec.json``: run the spec's training (or resume its run) with the
bundle's ``multi_gpu_train.json`` overlay; rank 0 writes the outcome (finished, pruned, failed with the message) to
the spec's result file for the launching process.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import MedattnError, error_message, find_medattn_error
from ..tracking.mlflow_runs import is_pruned
from ..tracking.store import mask_secrets
from .bundles import bundle_configs
from .launch import PRUNED
from .workflow import resume, run_workflow

__all__ = ["main"]


def _write_result(path: str, status: str, message: str = "") -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        Path(path).write_text(json.dumps({"status": status, "message": message}))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of one ``torchrun`` process: run the spec's training with the multi-GPU overlay."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m medattn_monai.engine.torchrun_entry SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text())
    try:
        if spec.get("resume"):
            resume(spec["resume"], multi_gpu=True, **spec.get("settings", {}))
        else:
            configs = bundle_configs(spec["bundle"], "train.json", "multi_gpu_train.json")
            run_workflow(configs, "train", extra_handlers=spec.get("extra_handlers", ()), **spec["overrides"])
    except BaseException as e:  # every outcome, KeyboardInterrupt included, is reported to the launching process
        if is_pruned(e):  # an outcome, not a failure: exit 0 so torchrun reports no error
            _write_result(spec["result"], PRUNED, str(e))
            return 0
        err = find_medattn_error(e) or e
        _write_result(spec["result"], "failed", mask_secrets(f"{type(err).__name__}: {error_message(err)}"))
        if isinstance(err, MedattnError) or isinstance(e, KeyboardInterrupt):
            return 2
        raise
    _write_result(spec["result"], "finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
