"""Which runs may be pooled and compared: one configuration per group, one training setting per comparison.

A run's ``cell`` tag hashes its configuration without the seed (dataset, data split and every hyper-parameter), so
the runs of one cell differ only by seed. Pooling the runs of several cells would report, say, a 3-epoch and a
2-epoch plain CNN as "plain, n = 2". And a variant is compared with its references only when both were trained with
the same :data:`SHARED_SETTINGS` (split, epochs, image size, …); the hyper-parameters a search tunes for each cell
(learning rate, weight decay, batch size, label smoothing, heads, window) and the network's own keys may differ.

By default both are refused with a :class:`~medattn_monai.errors.ConfigError` naming the keys that differ (read from
the runs' MLflow params, columns ``params.<key>`` and ``tags.split_hash`` of the frame). With ``split_cells``, each
training setting of a dataset × family is compared on its own (the family is labelled, e.g.
``resnet18 [epochs=2]``) and each configuration of a variant is its own group (e.g. ``plain [learning_rate=0.001]``).
A frame without ``cell`` and config columns (numbers typed in by hand) is taken as it is.
"""

from __future__ import annotations

import pandas as pd

from ..errors import ConfigError
from .variants import labelled, variant_order

__all__ = ["SHARED_SETTINGS", "CONFIG_PREFIXES", "NOT_LOGGED", "config_columns", "group_runs"]

# what a variant and each of its references must share: the data (split, size, subsample), the training budget,
# the selection metric, the loss weighting and the starting weights
SHARED_SETTINGS = (
    "split_hash", "epochs", "image_size", "max_samples_per_split", "key_metric", "class_weights", "pretrained_path",
)
CONFIG_PREFIXES = ("params.", "tags.")
NOT_LOGGED = "(not logged)"
# differs between the runs of one cell by design
_IGNORED = frozenset({"seed"})
_SPLIT_HINT = "or pass --split_cells (split_cells=True) to"


def config_columns(runs: pd.DataFrame) -> dict[str, str]:
    """The configuration keys of a frame of runs and their columns (``epochs`` -> ``params.epochs``), seed left out."""
    found: dict[str, str] = {}
    for column in runs.columns:
        for prefix in CONFIG_PREFIXES:
            if isinstance(column, str) and column.startswith(prefix) and column[len(prefix):] not in _IGNORED:
                found.setdefault(column[len(prefix):], column)
    return found


def _text(value: object) -> str:
    try:
        missing = value is None or bool(pd.isna(value))
    except (TypeError, ValueError):  # a list-like value is not missing
        missing = False
    return NOT_LOGGED if missing else str(value)


def _natural(value: str) -> tuple[int, float, str]:
    """Sort numbers by value (2 before 10), then text."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _values(column: pd.Series) -> str:
    return "/".join(sorted(set(column), key=_natural))


def _differing(values: pd.DataFrame, by: pd.Series) -> list[str]:
    """The keys that tell the groups of ``by`` apart: preferably those constant within each group."""
    groups = list(by.groupby(by).groups.values())
    sets = {k: [frozenset(values.loc[index, k]) for index in groups] for k in values.columns}
    differ = [k for k, found in sets.items() if len(set(found)) > 1]
    # a run setting such as num_workers may vary inside a cell; the keys that define the cells come first
    strict = [k for k in differ if all(len(s) == 1 for s in sets[k])]
    return strict or differ


def _labels(values: pd.DataFrame, by: pd.Series, cells: pd.Series) -> dict[str, str]:
    """A label per group of ``by``: the differing keys with their values, else its cell tag; always distinct."""
    keys = _differing(values, by)
    labels = {}
    for name, index in by.groupby(by).groups.items():
        parts = [f"{k}={_values(values.loc[index, k])}" for k in keys]
        labels[name] = ", ".join(parts) or _cell_names(cells[index])
    if len(set(labels.values())) < len(labels):
        labels = {name: f"{label}, {_cell_names(cells[by == name])}" for name, label in labels.items()}
    return labels


def _cell_names(cells: pd.Series) -> str:
    return "/".join(f"cell {c}" if c else "no cell tag" for c in sorted(set(cells)))


def _count(cells: pd.Series) -> str:
    counts = cells.value_counts()
    return ", ".join(f"{'cell ' + c if c else 'no cell tag'}: {n} run{'' if n == 1 else 's'}"
                     for c, n in sorted(counts.items()))


def _span_error(where: str, variant: str, values: pd.DataFrame, conf: pd.Series, cells: pd.Series) -> ConfigError:
    keys = _differing(values, conf)
    differ = "; ".join(f"{k} ({' / '.join(sorted(set(values[k]), key=_natural))})" for k in keys)
    what = f"they differ in {differ}" if keys else "no logged param tells them apart"
    return ConfigError(
        f"{where}: the runs of {variant} come from {conf.nunique()} configurations ({_count(cells)}); {what}. "
        f"Compare one configuration per variant, {_SPLIT_HINT} report each configuration as its own group"
    )


def _setting_error(where: str, part: pd.DataFrame, values: pd.DataFrame, setting: pd.Series,
                   cells: pd.Series) -> ConfigError:
    labels = _labels(values, setting, cells)
    blocks = "; ".join(
        f"{labels[s]}: {', '.join(sorted(set(part.loc[setting == s, 'variant']), key=variant_order))}"
        for s in sorted(labels, key=lambda s: _natural(labels[s]))
    )
    return ConfigError(
        f"{where}: its variants were trained with different settings ({blocks}), and a variant is compared only with "
        f"references trained like it. Compare runs of one setting, {_SPLIT_HINT} compare each setting on its own"
    )


def _no_cell_note(runs: pd.DataFrame, cells: pd.Series, shared: list[str]) -> list[str]:
    missing = int((cells == "").sum())
    if "cell" not in runs.columns or not missing:
        return []
    how = (f"told apart only by the logged settings ({', '.join(shared)})" if shared
           else "not checked: they log none of the settings either")
    return [f"{missing} of {len(runs)} runs have no cell tag: whether each variant's runs share one configuration was "
            f"{how}"]


def group_runs(runs: pd.DataFrame, split_cells: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """The runs as they are compared: one configuration per group, one training setting per dataset × family.

    Args:
        runs: columns ``dataset, family, variant`` and, when read from MLflow, ``cell`` (the tag; empty when
            absent) and config columns (:func:`config_columns`).
        split_cells: label and separate instead of refusing (see the module docstring).

    Returns:
        ``(runs, notes)``: a copy of ``runs`` in which split families and variants carry their label (unchanged
        without ``split_cells``), and notes on runs whose configuration could not be checked.

    Raises:
        ConfigError: without ``split_cells``, a variant's runs span several configurations, or the variants of a
            dataset × family were trained with different :data:`SHARED_SETTINGS`; the message names the keys.
    """
    columns = config_columns(runs)
    if runs.empty or ("cell" not in runs.columns and not columns):
        return runs.copy(), []
    # positions, not labels: a frame glued together from several may repeat index labels
    runs = runs.reset_index(drop=True)
    cells = (runs["cell"].map(lambda c: "" if _text(c) == NOT_LOGGED else str(c).strip()) if "cell" in runs.columns
             else pd.Series("", index=runs.index, dtype=object))
    values = pd.DataFrame({key: runs[column].map(_text) for key, column in columns.items()}, index=runs.index)
    shared = [k for k in SHARED_SETTINGS if k in values.columns]
    setting = (values[shared].apply("|".join, axis=1) if shared else pd.Series("", index=runs.index, dtype=object))
    conf = cells + "#" + setting
    out = runs.copy()
    for (dataset, family), part in runs.groupby(["dataset", "family"], sort=True):
        where = f"{dataset}/{family}"
        for variant, group in part.groupby("variant", sort=False):
            if conf[group.index].nunique() > 1 and not split_cells:
                raise _span_error(where, variant, values.loc[group.index], conf[group.index], cells[group.index])
        if setting[part.index].nunique() > 1:
            if not split_cells:
                raise _setting_error(where, part, values.loc[part.index, shared], setting[part.index],
                                     cells[part.index])
            labels = _labels(values.loc[part.index, shared], setting[part.index], cells[part.index])
            out.loc[part.index, "family"] = [labelled(family, labels[s]) for s in setting[part.index]]
        for _, group in out.loc[part.index].groupby(["family", "variant"], sort=False):
            if conf[group.index].nunique() > 1:
                labels = _labels(values.loc[group.index], conf[group.index], cells[group.index])
                out.loc[group.index, "variant"] = [labelled(v, labels[c])
                                                   for v, c in zip(group["variant"], conf[group.index], strict=True)]
    return out, _no_cell_note(runs, cells, shared)
