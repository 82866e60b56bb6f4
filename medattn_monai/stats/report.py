"""The comparison as text: Markdown, LaTeX (booktabs) and a terminal table, all from the same formatted cells."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from .frame_comparison import ComparisonResult

__all__ = ["format_cells", "markdown_table", "latex_table", "terminal_table", "markdown_report", "latex_report",
           "terminal_report"]

_INT_COLUMNS = {"n", "n_reference", "n_pairs", "n_seeds", "variants"}
# the terminal is narrow: dataset and family become headings, the means are left to the files, the interval's
# method is in the settings line
_TERMINAL_DROP = ["dataset", "family", "mean", "mean_reference", "ci_method"]


def _cell(column: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if column in _INT_COLUMNS:
        return str(int(value))
    if isinstance(value, float):
        # p-values: 3 significant digits keep 1e-05 readable; other numbers are metric units or effect sizes
        return f"{value:.3g}" if column.endswith("_p") else f"{value:.4g}"
    return str(value)


def format_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as strings: integers as such, p-values to 3 and other numbers to 4 significant digits, NaN as -."""
    return pd.DataFrame({c: [_cell(c, v) for v in frame[c]] for c in frame.columns}, columns=frame.columns)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned)."""
    cells = format_cells(frame)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    lines = ["| " + " | ".join(frame.columns) + " |",
             "|" + "|".join("---:" if num else "---" for num in numeric) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  **{c: "\\" + c for c in "&%$#_{}"}}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


def latex_table(frame: pd.DataFrame, caption: str = "") -> str:
    """A ``table`` with a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``)."""
    cells = format_cells(frame)
    spec = "".join("r" if pd.api.types.is_numeric_dtype(frame[c]) else "l" for c in frame.columns)
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(_latex_escape(c) for c in frame.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(v) for v in row) + r" \\" for row in cells.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{_latex_escape(caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


def terminal_table(frame: pd.DataFrame) -> str:
    """Aligned plain-text columns: numbers right-aligned, text left-aligned."""
    cells = format_cells(frame)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    widths = [max([len(c)] + [len(v) for v in cells[c]]) for c in frame.columns]

    def line(values: list[str]) -> str:
        columns = zip(values, widths, numeric, strict=True)
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in columns).rstrip()

    rows = [line(list(frame.columns)), line(["-" * w for w in widths])]
    return "\n".join(rows + [line(list(r)) for r in cells.itertuples(index=False)])


def _settings_line(settings: Mapping[str, object]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in settings.items())


def markdown_report(result: ComparisonResult, title: str, settings: Mapping[str, object],
                    skipped: pd.DataFrame | None = None) -> str:
    """The whole comparison as a Markdown document: settings, groups, comparisons, Friedman, notes, skipped runs."""
    parts = [f"# {title}", "", _settings_line(settings), "", "## Groups", "", markdown_table(result.groups), "",
             "## Pairwise comparisons", ""]
    parts += [markdown_table(result.comparisons) if len(result.comparisons) else "No comparison could be made.", ""]
    parts += ["## Friedman test with Nemenyi post-hoc (all variants of a dataset × family)", "",
              markdown_table(result.friedman), ""]
    if result.notes:
        parts += ["## Notes", ""] + [f"- {note}" for note in result.notes] + [""]
    if skipped is not None and len(skipped):
        parts += ["## Runs skipped", "", markdown_table(skipped), ""]
    return "\n".join(parts)


def latex_report(result: ComparisonResult, title: str) -> str:
    """The group and comparison tables as LaTeX ``table`` environments."""
    return "\n\n".join([
        latex_table(result.groups, f"{title}: groups"),
        latex_table(result.comparisons, f"{title}: pairwise comparisons"),
    ]) + "\n"


def terminal_report(result: ComparisonResult, title: str, settings: Mapping[str, object]) -> str:
    """What ``medattn compare`` prints: per dataset × family, the groups and the comparisons; then Friedman, notes."""
    out = [title, _settings_line(settings)]
    for (dataset, family), groups in result.groups.groupby(["dataset", "family"], sort=False):
        out += ["", f"== {dataset} / {family} ==", terminal_table(groups.drop(columns=["dataset", "family"]))]
        rows = result.comparisons[(result.comparisons["dataset"] == dataset)
                                  & (result.comparisons["family"] == family)]
        if len(rows):
            out += ["", terminal_table(rows.drop(columns=_TERMINAL_DROP, errors="ignore"))]
    out += ["", "Friedman / Nemenyi:", terminal_table(result.friedman)]
    if result.notes:
        out += ["", "Notes:"] + [f"- {note}" for note in result.notes]
    out += ["", "A p above α is not evidence of no effect: compare the CI and detectable_diff with the difference "
                "that would matter (docs/statistics.md)."]
    return "\n".join(out)
