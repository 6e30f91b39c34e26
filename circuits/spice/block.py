"""The contract between a primitive and its circuit: design, subcircuit, DC bench, expected values.

A `BlockCircuit` is one designed circuit instance (component values chosen by design
equations from the primitive's parameters and a signal scale). `kelvin validate` and the
tests use only this interface: build `dc_bench(points)`, simulate it, `read` the outputs
back in model units and compare with `ideal(points)` within `tolerance_pct_fs`.

Evaluating arbitrary input points in one ngspice run: the bench sweeps one index source
``Vidx`` from 0 to len(points)-1 in steps of 1 (``.dc``), and each input is a behavioral
source ``B... V = pwl(V(idx), 0, x0, 1, x1, ...)`` (see `indexed_inputs`), so one DC sweep
visits every point.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np

from circuits.errors import ParameterError
from circuits.spice.netlist import Deck, Element, Subckt, fmt, spice_name, vsource

INDEX_SOURCE = "idx"
INDEX_NODE = "idx"


def indexed_inputs(points: np.ndarray, nodes: Sequence[str], volts_per_unit: float | Sequence[float] = 1.0,
                   current: bool = False) -> list[Element]:
    """Sources driving ``nodes[j]`` with ``points[i, j]·scale`` when V(idx) = i (plus the idx source).

    With ``current=True`` the sources are currents injected into the nodes (amperes per unit).
    """
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    if pts.shape[1] != len(nodes):
        raise ParameterError(f"points have {pts.shape[1]} columns for {len(nodes)} input nodes")
    scales = np.broadcast_to(np.asarray(volts_per_unit, dtype=np.float64), (len(nodes),))
    elements = [vsource(INDEX_SOURCE, INDEX_NODE, "0", 0.0)]
    idx = np.arange(len(pts), dtype=np.float64)
    for j, node in enumerate(nodes):
        col = pts[:, j] * scales[j]
        if len(pts) == 1:  # pwl needs two points
            table = f"0, {fmt(col[0])}, 1, {fmt(col[0])}"
        else:
            table = ", ".join(f"{fmt(i)}, {fmt(v)}" for i, v in zip(idx, col))
        kind = "I" if current else "V"
        # current: B-source current flows from its first node to its second through the source,
        # so (0 -> node) injects into node.
        pins = ("0", node) if current else (node, "0")
        elements.append(Element("B", f"in_{j}", pins, f"{kind} = pwl(V({INDEX_NODE}), {table})"))
    return elements


def index_sweep(deck: Deck, n_points: int) -> Deck:
    """Add the ``.dc`` sweep over the index source that visits every point once."""
    return deck.dc(INDEX_SOURCE, 0.0, float(n_points - 1), 1.0)


class BlockCircuit(ABC):
    """One designed circuit realising a primitive kind (e.g. ``opamp.summer``)."""

    kind: str = ""
    tolerance_pct_fs: float = 1.0
    dynamic: bool = False  # True: also has a transient settling bench

    @abstractmethod
    def subckts(self) -> list[Subckt]:
        """Every .subckt definition this block needs, its own last (op-amp models etc. first)."""

    @abstractmethod
    def ports(self) -> tuple[str, ...]:
        """Port order of the block's own .subckt: inputs, then outputs, then supplies."""

    @abstractmethod
    def n_inputs(self) -> int: ...

    @abstractmethod
    def dc_bench(self, points: np.ndarray) -> Deck:
        """A complete deck evaluating the block at ``points`` (rows, model units) in one .dc sweep."""

    @abstractmethod
    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        """Outputs (rows, model units) from the simulator's vectors for the bench above."""

    @abstractmethod
    def ideal(self, points: np.ndarray) -> np.ndarray:
        """The ideal outputs (rows, model units) at ``points``."""

    @abstractmethod
    def full_scale(self) -> float:
        """Output full scale in model units: errors are reported as % of it."""

    def test_points(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Default validation points: uniform over the block's valid input range."""
        lo, hi = self.input_range()
        return rng.uniform(lo, hi, size=(n, self.n_inputs()))

    def input_range(self) -> tuple[float, float]:
        return (-1.0, 1.0)

    def supply_elements(self) -> list[Element]:
        """Supplies the bench needs (override for blocks with rails)."""
        return []


def node(name: str) -> str:
    """A node name derived from arbitrary text (sanitized)."""
    return spice_name(name, "n")
