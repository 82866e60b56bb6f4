"""The docs and docstrings name only files that exist, the README lists every package and guide, and the layer
diagrams of ``docs/architecture.md`` and ``medattn_monai/__init__.py`` are the contract ``lint-imports`` checks."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as the package tomli (import-linter depends on it)
    import tomli as tomllib

# files that a command writes into its output folder, named in docs as outputs, not as files of this repository;
# each must appear in the package's code as a written name (checked below), so the list cannot go stale unseen
OUTPUT_FILES = {
    "comparison.md": "medattn compare's report",
    "study_summary.md": "medattn study's summary",
}

# a path of the repository (docs/…, benchmarks/…, bundles/…, medattn_monai/…, tests/…, data_scripts/…, after ../ or
# not), or any name ending in .md
PATH = re.compile(r"(?<![\w./<>{}*-])("
                  r"(?:\.\./)*(?:docs|benchmarks|bundles|medattn_monai|tests|data_scripts)/[\w./<>{}*-]*"
                  r"|[\w./<>{}*-]+\.md\b)")
# a Markdown link's target (in Markdown files)
LINK = re.compile(r"\]\(([^)\s]+)\)")
# <name>, {name} and * stand for any one path part
PLACEHOLDER = re.compile(r"<[^>/]*>|\{[^}/]*\}")


def _sources() -> list[Path]:
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(REPO.glob("bundles/*/docs/*.md"))]
    package = REPO / "medattn_monai"
    return files + sorted(package.rglob("*.py")) + sorted(package.rglob("*.md"))


def _exists(ref: str, source: Path) -> bool:
    """Whether ``ref`` names a file or folder of the repository: from the repository root, from the naming file's
    folder (a Markdown link), or inside a bundle folder (the Model Zoo layout every bundle, exported ones too, has:
    ``docs/README.md``, ``configs/…``)."""
    pattern = PLACEHOLDER.sub("*", ref.strip("/"))  # /docs/README.md: a line of a folder tree
    bases = [REPO, source.parent, *sorted(p for p in (REPO / "bundles").iterdir() if p.is_dir())]
    if "/" not in pattern:  # a bare name: a sibling, or a guide in docs/
        bases.append(REPO / "docs")
    return any(any(base.glob(pattern)) if "*" in pattern else (base / pattern).exists() for base in bases)


def _references(text: str, markdown: bool = True) -> set[str]:
    refs = {m.group(1) for m in PATH.finditer(text)}
    if markdown:
        refs |= {m.group(1).split("#")[0] for m in LINK.finditer(text)
                 if not m.group(1).startswith(("http://", "https://", "mailto:", "#"))}
    return {r.rstrip(".,:;") for r in refs if r and r.rstrip(".,:;") not in OUTPUT_FILES}


def test_every_named_path_exists():
    missing = [f"{source.relative_to(REPO)}: {ref}" for source in _sources()
               for ref in sorted(_references(source.read_text(encoding="utf-8"), source.suffix == ".md"))
               if not _exists(ref, source)]
    assert not missing, "named in a doc or docstring but not in the repository:\n" + "\n".join(missing)


def test_output_file_names_are_written_by_the_package():
    code = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "medattn_monai").rglob("*.py"))
    assert [name for name in OUTPUT_FILES if f'"{name}"' not in code] == []


def test_the_path_check_finds_a_missing_file():
    source = REPO / "docs" / "architecture.md"
    assert _references("see `docs/nowhere.md` and [x](../benchmarks/RESULTS.md)") == {
        "docs/nowhere.md", "../benchmarks/RESULTS.md"}
    assert not _exists("docs/nowhere.md", source)
    assert _exists("../benchmarks/RESULTS.md", source) and _exists("bundles/<name>/configs/train.json", source)


def test_no_file_cites_notes_outside_the_repository():
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True)
    outside = re.compile("design" + r"\.md|\.\./shared")
    hits = []
    for name in tracked.stdout.split():
        path = REPO / name
        if path.suffix in {".py", ".md", ".json", ".cfg", ".toml", ".txt", ".yaml", ".conf", ".sh"} and path.is_file():
            hits += [f"{name}:{i}" for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                     if outside.search(line)]
    assert not hits, "the project's docs are its own: write what is needed into docs/, then cite that"


def _contract_layers() -> list[set[str]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [{part.strip() for part in layer.split("|")} for layer in contract["layers"]]


def _diagram(text: str) -> list[set[str]]:
    """The layers of an indented or fenced diagram: lines of package names separated by ``|``, then a description."""
    layers = []
    for line in text.splitlines():
        names = re.split(r"\s{2,}", line.strip())[0]
        parts = [p.strip().removeprefix("medattn_monai").lstrip(".") for p in names.split("|")]
        if parts and all(re.fullmatch(r"[a-z_]+", p) for p in parts):
            layers.append(set(parts))
    return layers


def _block(text: str, start: str, end: str) -> str:
    return text[text.index(start) + len(start):][: text[text.index(start) + len(start):].index(end)]


@pytest.mark.parametrize("where", ["docs/architecture.md", "medattn_monai/__init__.py"])
def test_layer_diagram_is_the_import_contract(where):
    text = (REPO / where).read_text(encoding="utf-8")
    block = _block(text, "```text\n", "```") if where.endswith(".md") else _block(text, "::\n\n", "\n\n")
    assert _diagram(block) == _contract_layers()


def test_readme_lists_every_package_and_guide():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in readme.splitlines() if line.startswith("| `medattn_monai/` |")]
    packages = {p.parent.name for p in (REPO / "medattn_monai").glob("*/__init__.py")} | {"cli", "errors"}
    assert sorted(p for p in packages if f"`{p}`" not in row) == []
    guides = sorted(p.name for p in (REPO / "docs").glob("*.md") if f"](docs/{p.name})" not in readme)
    assert guides == [], "a guide in docs/ that the README's 'What is where' does not link"
