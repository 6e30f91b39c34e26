"""Every module of ``sim`` imports on its own, and ``sim``'s intra-package imports form no circle.

Oracle: the ``import`` statements themselves (an AST scan, function-level imports included, since a
lazy import that closes a circle is still a circle). ``from pkg import name`` counts as importing
``pkg.name`` when that is a module, else ``pkg``; a parent package's ``__init__`` running first is
Python's doing, not an edge.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "sim"
OPTIONAL = {"sim.spice.dask_backend": "distributed"}  # modules whose optional dependency may be absent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The ``sim`` modules that ``name`` (at ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    deps: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            deps.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            deps.update(subs)
            if len(subs) < len(node.names):
                deps.add(base)
    return {d for d in deps if d in modules and d != name}


def import_graph() -> nx.DiGraph:
    modules = _modules()
    g = nx.DiGraph()
    for name, path in modules.items():
        g.add_node(name)
        g.add_edges_from((name, dep) for dep in _imports(name, path, modules))
    return g


def test_sim_import_graph_is_acyclic():
    g = import_graph()
    cycles = list(nx.simple_cycles(g))
    assert not cycles, "import circles in sim/: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles)


def test_the_scan_sees_imports():
    g = import_graph()
    assert g.has_edge("sim.characterize.store", "sim.characterize.sweeps")
    assert g.has_edge("sim.characterize.fit", "sim.characterize.families")


@pytest.mark.parametrize("name", sorted(_modules()))
def test_every_sim_module_imports(name):
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name])
    importlib.import_module(name)
