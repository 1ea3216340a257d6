"""The floors of the code, checked from its imports: each floor imports only the floors below it.

Top down: the CLI and the web page -> flows -> tasks -> the network layer, the story algorithm, the rules and
the warehouse (side by side, none importing another) -> the ground (the plain modules directly in newsflow/).
An import inside a function counts as much as one at the top: it runs all the same.
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: Where each part of the package sits: a higher number is a higher floor. The package's own __init__
#: (``newsflow.connect()`` for notebooks) is its public face, above everything.
FLOORS = {
    "newsflow.__init__": 6,
    "newsflow.cli": 5,
    "newsflow.web": 4,
    "newsflow.flows": 3,
    "newsflow.tasks": 2,
    "newsflow.net": 1,
    "newsflow.stories": 1,
    "newsflow.rules": 1,
    "newsflow.warehouse": 1,
    "newsflow": 0,  # the ground: records, settings, errors, clock, text, system, progress, feedlist
}


def part_of(module: str) -> str:
    """The part of the package a dotted module name belongs to (the longest key of FLOORS it is in)."""
    if module == "newsflow":
        return "newsflow.__init__"
    return max((p for p in FLOORS if module == p or module.startswith(p + ".")), key=len)


def package_modules() -> dict[str, Path]:
    """Every module of the installed package by dotted name (flows/, tasks/, warehouse/ live at the top of
    the repo and install as newsflow.flows, ...)."""
    out: dict[str, Path] = {}
    for top in ("newsflow", "flows", "tasks", "warehouse"):
        for path in sorted((REPO / top).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if top == "newsflow" and parts[1:2] and parts[1] in ("flows", "tasks", "warehouse"):
                continue  # the symlinks
            name = ".".join(parts if top == "newsflow" else ("newsflow", *parts))
            out[name.removesuffix(".__init__")] = path
    return out


def imported(path: Path, module: str, known: Collection[str]) -> set[str]:
    """The modules of ``known`` that ``path`` (the file of ``module``) imports, anywhere in it: for
    ``from package import name`` the submodule when ``name`` is one, else the package."""
    targets: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return targets & set(known)


def floor_breaks(modules: dict[str, Path]) -> list[str]:
    """Each import of ``modules`` (name -> file) that reaches a floor at or above its own, in another part."""
    breaks = []
    for module, path in modules.items():
        here = part_of(module)
        for target in sorted(imported(path, module, modules)):
            there = part_of(target)
            if there != here and FLOORS[there] >= FLOORS[here]:
                breaks.append(f"{module} (floor {FLOORS[here]}) imports {target} (floor {FLOORS[there]})")
    return breaks


def test_the_package_is_found_whole() -> None:
    """The check below looks at every part (a renamed folder would make it pass vacuously)."""
    parts = {part_of(m) for m in package_modules()}
    assert parts == set(FLOORS)
    assert len(package_modules()) > 50


def test_each_floor_imports_only_floors_below_it() -> None:
    assert floor_breaks(package_modules()) == []


def test_the_ground_imports_nothing_above_it() -> None:
    """records, settings and errors are the contract every floor shares: they import only each other."""
    modules = package_modules()
    for name in (
        "newsflow.records",
        "newsflow.settings",
        "newsflow.errors",
        "newsflow.clock",
        "newsflow.text",
    ):
        above = [t for t in imported(modules[name], name, modules) if part_of(t) != "newsflow"]
        assert above == [], name


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("newsflow.warehouse.articles", "from newsflow.tasks.storing import store"),
        ("newsflow.net.http", "from newsflow import stories"),
        ("newsflow.records", "import newsflow.cli.display"),
        ("newsflow.tasks.polling", "from ..flows import ingest"),
    ],
)
def test_a_break_would_be_seen(module: str, upward: str, tmp_path: Path) -> None:
    """The check reads real import statements: an upward import added to a module, even inside a
    function, is reported."""
    modules = package_modules()
    changed = tmp_path / modules[module].name
    changed.write_text(modules[module].read_text() + f"\n\ndef _late() -> None:\n    {upward}\n")
    breaks = floor_breaks({**modules, module: changed})
    assert len(breaks) == 1 and breaks[0].startswith(f"{module} (floor")
