"""The bundles: where a bundle's folder is, its config files, and its configuration with checked overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError

__all__ = ["DEFAULT_BUNDLE", "bundle_configs", "load_config", "locate_bundle", "apply_overrides"]

DEFAULT_BUNDLE = "isic_attention_classification"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def locate_bundle(name: str) -> str:
    """Folder of bundle ``name``: ``bundles/<name>`` under the current directory or beside this package's source."""
    for base in (Path.cwd(), _REPO_ROOT):
        candidate = base / "bundles" / name
        if (candidate / "configs").is_dir():
            return str(candidate)
    raise ConfigError(f"bundle {name!r} not found under ./bundles or {_REPO_ROOT / 'bundles'}: pass --bundle_root")


def bundle_configs(bundle: str, *names: str) -> list[str]:
    """Paths of config files ``names`` of a bundle given by name (under ``bundles/``) or by folder."""
    root = Path(bundle) if Path(bundle, "configs").is_dir() else Path(locate_bundle(bundle))
    paths = [root / "configs" / n for n in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"bundle {bundle!r} lacks config file(s) {missing}")
    return [str(p) for p in paths]


def apply_overrides(parser: Any, config_files: Sequence[str], overrides: dict[str, Any]) -> None:
    """Set ``overrides`` in a MONAI ``ConfigParser``; unknown keys are refused (a typo would otherwise do nothing)."""
    unknown = [k for k in overrides if k.split("#")[0] not in parser.get()]
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown} for {list(config_files)}")
    for key, value in overrides.items():
        parser[key] = value


def load_config(config_files: Sequence[str], **overrides: Any) -> Any:
    """The bundle configuration with ``overrides`` applied, as a MONAI ``ConfigParser``, without running anything.

    Parse only what is needed (``parser.get_parsed_content("hyper_parameters")``): e.g. a study reads a cell's
    hyper-parameters and experiment before deciding whether to train it.
    """
    from monai.bundle import ConfigParser

    parser = ConfigParser(ConfigParser.load_config_files(list(config_files)))
    apply_overrides(parser, config_files, overrides)
    return parser
