"""The settings of a comparison, defined once: their defaults and their checks serve ``medattn compare`` and
:func:`medattn_monai.stats.compare_runs` alike.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .two_sample import ALTERNATIVES, CI_METHODS

__all__ = ["ComparisonSettings", "DEFAULT_SETTINGS", "MIN_BOOT"]

# fewer resamples leave the 2.5 % and 97.5 % points to a handful of draws
MIN_BOOT = 100


@dataclass(frozen=True)
class ComparisonSettings:
    """How the groups of a comparison are tested; each field is a flag of ``medattn compare``.

    Attributes:
        alternative: ``two-sided`` (default), ``greater`` ("the attention variant scores higher") or ``less``.
        alpha: significance level of the warnings, the power analysis and the Nemenyi critical difference.
        power: the power at which ``detectable_diff`` is computed.
        ci_method: the 95 % confidence interval of the mean difference: ``welch`` (Welch's t interval, the
            default: it covers at its nominal rate with 5 or 10 seeds) or ``bootstrap`` (percentile bootstrap,
            too narrow with few seeds; see ``docs/statistics.md``).
        n_boot: bootstrap resamples (``ci_method=bootstrap`` only).
        seed: the bootstrap's seed (each comparison restarts from it, so a row does not depend on the others);
            also seeds the jitter of the figure's points.
        higher_is_better: how Friedman ranks (1 = best): True for accuracies, False for losses.
        split_cells: report a variant whose runs span several configurations (``cell`` tags) as one group per
            configuration, and a family trained with several settings once per setting, instead of refusing.

    Raises:
        ValueError: a value out of range, naming the field.
    """

    alternative: str = "two-sided"
    alpha: float = 0.05
    power: float = 0.8
    ci_method: str = "welch"
    n_boot: int = 10_000
    seed: int = 0
    higher_is_better: bool = True
    split_cells: bool = False

    def __post_init__(self) -> None:
        choices = {"alternative": ALTERNATIVES, "ci_method": CI_METHODS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("alpha", "power"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
        # bool is an int: True would pass as n_boot = 1 or seed = 1
        if isinstance(self.n_boot, bool) or not isinstance(self.n_boot, int) or self.n_boot < MIN_BOOT:
            raise ValueError(f"n_boot must be an integer of at least {MIN_BOOT}, got {self.n_boot!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        for name in ("higher_is_better", "split_cells"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def with_options(self, **options: Any) -> ComparisonSettings:
        """A copy with ``options`` (field names) changed; an unknown name raises ``TypeError`` naming it."""
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"unknown comparison setting(s) {unknown}; known: {self.names()}")
        return dataclasses.replace(self, **options)

    @classmethod
    def names(cls) -> list[str]:
        """The field names, in order."""
        return [f.name for f in dataclasses.fields(cls)]

    def as_dict(self) -> dict[str, Any]:
        """The settings as a plain mapping (for the report's settings line and the comparison run's params)."""
        return dataclasses.asdict(self)


DEFAULT_SETTINGS = ComparisonSettings()
