"""What a pass is: an object with a name and ``run(graph) -> changed``."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from compiler.ir import Graph


@runtime_checkable
class Pass(Protocol):
    """A graph rewrite. ``run`` mutates the graph in place and says whether it changed anything."""

    name: str

    def run(self, graph: Graph) -> bool: ...
