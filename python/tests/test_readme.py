"""The README's Python blocks run, as its Rust blocks run as doctests (src/lib.rs).

Each ```python block of the repository's README.md is executed on its own, in a fresh
namespace, with a temporary working directory, so the run folders it writes
(``runs/...``) land in pytest's tmp_path and nothing is written to the repository. A
block is skipped, with the reason, only when it imports a package the test environment
lacks or names a preset whose data files are not fetched.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

import l2t

README = Path(__file__).resolve().parents[2] / "README.md"

# A fenced block opened by ```python (nothing else on the line) up to the closing ```.
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)

# Presets (as Gymnasium ids or preset names) whose data the set-up fetches into the data
# folder; a block naming one is skipped where that folder is missing.
DATA_OF_PRESET: dict[str, str] = {
    "FashionMnist": "fashion-mnist",
    "fashion-mnist": "fashion-mnist",
    "RottenTomatoes": "rotten-tomatoes",
    "rotten-tomatoes": "rotten-tomatoes",
}


def python_blocks() -> list[tuple[int, str]]:
    """The README's Python blocks, each with the line its code starts on."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in PYTHON_BLOCK.finditer(text)]


def imported_packages(tree: ast.AST) -> set[str]:
    """The top-level packages a block imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def missing_data(tree: ast.AST) -> str | None:
    """The data folder a block's string constants need and the set-up has not fetched."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for marker, folder in DATA_OF_PRESET.items():
                if marker in node.value and not (l2t._l2t.data_dir() / folder).exists():
                    return folder
    return None


BLOCKS = python_blocks()


def test_readme_has_python_blocks() -> None:
    # The quick start and the Python teacher in the report, at least.
    assert len(BLOCKS) >= 2, f"expected Python blocks in {README}"


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_python_block_runs(
    line: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = ast.parse(code, filename=f"README.md:{line}")
    for package in sorted(imported_packages(tree)):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"the block at README.md:{line} imports {package}, which is not installed")
    folder = missing_data(tree)
    if folder is not None:
        pytest.skip(
            f"the block at README.md:{line} needs the {folder} data "
            "(bash scripts/setup.sh fetches it)"
        )
    monkeypatch.chdir(tmp_path)
    # Line numbers of a failure point into README.md.
    compiled = compile(ast.increment_lineno(tree, line - 1), str(README), "exec")
    exec(compiled, {"__name__": f"readme_block_{line}"})
