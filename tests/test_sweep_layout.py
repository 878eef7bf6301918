"""Imports point down: the sweep package uses train, protocol, recording and core; nothing
below it imports it; its modules import each other in one direction (grammar <- execute); the sweep store
is recording's (neurosim.recording.sweep_store)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "neurosim"


def _imports(path: Path) -> set:
    """The neurosim modules ``path`` imports (relative imports resolved), at any depth."""
    mod = ["neurosim", *path.relative_to(PKG).with_suffix("").parts]
    if mod[-1] == "__init__":
        mod = mod[:-1]
    else:
        mod = mod[:-1]  # the package a module's relative imports start from
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "neurosim"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod[: len(mod) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.split(".")[0] == "neurosim":
                out.add(name)
                out |= {f"{name}.{a.name}" for a in node.names}  # ``from . import x``
    return out


def _top(name: str) -> str:
    return ".".join(name.split(".")[:2])


def test_nothing_below_imports_the_sweep_package():
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).parts
        if rel[0] in ("sweep", "commands"):
            continue
        bad = {m for m in _imports(path) if _top(m) == "neurosim.sweep"}
        assert not bad, f"{path.relative_to(PKG)} imports {bad}"


def test_the_sweep_package_imports_only_what_it_builds_on():
    allowed = {"neurosim.sweep", "neurosim.train", "neurosim.protocol", "neurosim.recording",
               "neurosim.core"}
    order = ["grammar", "execute"]
    files = sorted((PKG / "sweep").glob("*.py"))
    assert {p.stem for p in files} == {"__init__", *order}
    for path in files:
        imported = _imports(path)
        outside = {m for m in imported if _top(m) not in allowed}
        assert not outside, f"sweep/{path.name} imports {outside}"
        if path.stem in order:
            later = {f"neurosim.sweep.{m}" for m in order[order.index(path.stem) + 1:]}
            assert not imported & later, f"sweep/{path.name} imports {imported & later}"
