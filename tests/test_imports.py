"""No import circle among tvm_deepchip's modules: the graph of who imports whom, read from the
source with `ast` (imports inside functions count: a lazy import still ties the two modules'
ideas together, and a circle of them is one refactor away from an ImportError)."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import tvm_deepchip

ROOT = Path(tvm_deepchip.__file__).resolve().parent
PKG = ROOT.name


def _tree(folder: Path, prefix: str) -> dict[str, Path]:
    out = {}
    for d, _, files in os.walk(folder, followlinks=True):
        rel = Path(d).relative_to(folder).parts
        for f in files:
            if f.endswith(".py"):
                parts = (prefix,) + rel + (() if f == "__init__.py" else (f[:-3],))
                out[".".join(parts)] = Path(d) / f
    return out


def modules() -> dict[str, Path]:
    """Every module of the package (a package is its __init__), by dotted name. schedules/ lives
    at the repository's top level and is the package's `schedules` (see tvm_deepchip/__init__)."""
    found = _tree(ROOT, PKG)
    if f"{PKG}.schedules" not in found and (ROOT.parent / "schedules" / "__init__.py").is_file():
        found.update(_tree(ROOT.parent / "schedules", f"{PKG}.schedules"))
    return dict(sorted(found.items()))


def _imported(node: ast.AST, name: str, is_package: bool, known: dict) -> list[str]:
    """The package modules one import statement names (`from pkg import mod` names pkg.mod)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:  # relative: resolve against this module's package
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[:len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its source (top level or in functions)."""
    known = modules()
    graph = {}
    for name, path in known.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets.update(_imported(node, name, path.name == "__init__.py", known))
        graph[name] = {t for t in targets if t in known and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_graph_sees_the_package():
    g = import_graph()
    assert f"{PKG}.sweep" in g and f"{PKG}.primitives.sparse_rows" in g and f"{PKG}.schedules.x86.vnni" in g
    # relative, function-level and `from . import x` imports all resolve to modules
    assert f"{PKG}.sweep_auto" in g[f"{PKG}.sweep"]
    assert f"{PKG}.onnx_io" in g[f"{PKG}.sweep"]


def test_cycles_found_when_present():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    assert cycles(import_graph()) == []
