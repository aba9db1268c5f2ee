"""The layout promised in docs/architecture.md: one-way imports, the map matches the tree,
and nothing derived from Ultralytics ships in the package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "effzoo"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """effzoo modules that ``name`` imports anywhere in its file (lazy imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import name`: the submodule pkg.name if there is one, else pkg
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        else:
            continue
        for t in targets:
            while t and t not in modules:  # `import effzoo.yolo.patches` -> that module
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_inside_the_package():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph["effzoo.factory"] >= {"effzoo.weights", "effzoo.backbone"}  # the parser sees
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


#: the rooms of the package above the core, bottom first: a module imports only from its
#: own room or below (the applications and the command line sit above the adapter)
ROOMS = (
    ("adapter", ("effzoo.yolo",)),
    ("applications", ("effzoo.compare", "effzoo.demo")),
    ("cli", ("effzoo.cli", "effzoo.__main__")),
)


def _layer(name: str) -> int:
    found = [i for i, (_, prefixes) in enumerate(ROOMS, 1) if name.startswith(prefixes)]
    return found[0] if found else 0  # the core


def test_imports_only_go_down_the_rooms():
    """effzoo/yolo is the adapter alone: it imports neither the applications built on it
    (compare, demo) nor the command line; they import it. (The public API's lazy
    ``effzoo.yolo.compare`` is resolved by name at first use, not imported.)"""
    modules = _modules()
    up = [
        f"{name} -> {dep}"
        for name, path in modules.items()
        for dep in _imports(name, path, modules)
        if _layer(dep) > _layer(name)
    ]
    assert up == []


def test_the_cycle_check_finds_a_lazy_cycle(tmp_path):
    """The checker itself: a lazy import inside a function closes a cycle too."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from . import other\n")
    fake = {"effzoo.m": src, "effzoo.other": src}
    assert _imports("effzoo.m", src, fake) == {"effzoo.other"}


def test_docs_architecture_lists_every_file_of_the_package():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`(effzoo/[\w/]+\.py)`", doc))
    actual = {str(p.relative_to(ROOT)) for p in PKG.rglob("*.py")}
    assert actual - listed == set(), "files missing from docs/architecture.md"
    assert listed - actual == set(), "docs/architecture.md names files that do not exist"


def test_no_ultralytics_file_or_tooling_in_the_package():
    assert not list(PKG.rglob("*.yaml")), "model yamls are generated, never shipped"
    for gone in ("bench.py", "bench_yolo.py", "cpu.py", "yolo/tables.py", "yolo/cfg"):
        assert not (PKG / gone).exists(), gone
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data = meta["tool"]["setuptools"]["package-data"]
    assert data["effzoo"] and not [p for ps in data.values() for p in ps if ".yaml" in p]


def test_no_stack_walks_or_source_reading_in_the_package():
    """Seams are explicit (wrapped calls, context variables), never found by reading the
    interpreter's stack or another package's source text."""
    banned = ("sys._getframe", "inspect.stack", "currentframe", "inspect.getsource")
    found = [
        f"{path.relative_to(ROOT)}: {word}"
        for path in sorted(PKG.rglob("*.py"))
        for word in banned
        if word in path.read_text(encoding="utf-8")
    ]
    assert found == []
