"""The import contracts: dependencies point one way.

``cli -> metalearn -> {trainers, profilers, experiment_store} -> kernel``: profilers and
trainers never import each other (nor metalearn or cli), the experiment store imports
only the kernel, and the kernel imports no mlsel package. Every import counts: at module
level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kernel", "experiment_store", "profilers", "trainers", "metalearn", "cli")
# What each package may import, besides itself.
ALLOWED: dict[str, set[str]] = {
    "kernel": set(),
    "experiment_store": {"kernel"},
    "profilers": {"kernel", "experiment_store"},
    "trainers": {"kernel", "experiment_store"},
    "metalearn": {"kernel", "experiment_store", "profilers", "trainers"},
    "cli": {"kernel", "experiment_store", "profilers", "trainers", "metalearn"},
}


def _imported_packages(path: Path) -> set[tuple[str, int]]:
    """``(mlsel package, line)`` of every import of ``mlsel.<package>`` in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "mlsel":  # from mlsel import trainers
                names = [f"mlsel.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "mlsel" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def _violations(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for imported, line in sorted(_imported_packages(path)):
            if imported != package and imported not in ALLOWED[package]:
                out.append(f"{path.relative_to(ROOT)}:{line} imports mlsel.{imported}")
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_the_layers_below_it(package: str) -> None:
    assert _violations(package) == []


def test_the_contract_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from mlsel.trainers.zoo import Network\n"
        "def f():\n    from mlsel import metalearn\n    import mlsel.cli.app\n"
    )
    assert _imported_packages(module) == {("trainers", 3), ("metalearn", 5), ("cli", 6)}


def test_every_package_folder_is_under_contract() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapped = config["tool"]["setuptools"]["package-dir"]
    top = {folder.split("/")[0] for folder in mapped.values()} - {"data_cards"}
    assert top == set(PACKAGES)
