"""Emitting primitive banks into a network netlist: the context emitters write into, and their registry.

An emitter turns one primitive bank into cell instances: for each output element it places
an ``X`` instance of a per-kind parameterized ``.subckt`` (one definition per kind and
arity, shared by every instance), wired to the nets of its input elements. Signals are in
model units times ``scale`` (volts or amperes per unit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from circuits.base import Primitive
from circuits.errors import UnsupportedError
from circuits.spice.netlist import Element, NameTable, Subckt, spice_name

GROUND = "0"


@dataclass(slots=True)
class Supplies:
    """The supply and reference nets every cell may use, in the top-level port order."""

    nets: tuple[str, ...] = ("vpos", "vneg", "vref")
    volts: tuple[float, ...] = (12.0, -12.0, 1.0)


@dataclass(slots=True)
class EmitContext:
    """What emitters add to: subcircuit definitions (by name), element cards, fresh nets."""

    scale: float = 1.0
    supplies: Supplies = field(default_factory=Supplies)
    signal: str = "voltage"  # "current": nets between banks carry currents (see compiler.netlist)
    subckts: dict[str, Subckt] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    elements: list[Element] = field(default_factory=list)
    devices: int = 0
    _nets: NameTable = field(default_factory=lambda: NameTable("n"))
    _count: int = 0
    mismatch: dict[str, np.ndarray] = field(default_factory=dict)
    mismatch_seed: int | None = None  # per-transistor delvto/β drawn from this seed (one chip); None: nominal
    state: dict[str, Any] = field(default_factory=dict)  # per-technology emitter state, keyed by module
    sizing: str = "default"  # transistor-level cells' sizing preset (current mode: `CellSizing.preset`)
    node_index: int = -1  # the bank being emitted: its position among the graph's primitive nodes (topo order)
    node_name: str = ""
    layout: list[Any] = field(default_factory=list)  # what emitters placed, as records (`Netlist.layout`)

    def net(self, hint: str) -> str:
        """A new net name, unique in the network."""
        self._count += 1
        return self._nets(f"{hint}_{self._count}")

    def instance_name(self, hint: str) -> str:
        self._count += 1
        return spice_name(f"{hint}_{self._count}", "x")

    def define(self, sub: Subckt) -> str:
        """Add a subcircuit definition once (by name); returns its name."""
        self.subckts.setdefault(sub.name, sub)
        return sub.name

    def model(self, key: str, text: str) -> None:
        """Add model-card text (trusted, from models/) once."""
        self.models.setdefault(key, text)


Adapter = Callable[[EmitContext, str], str]
"""adapt(ctx, net) -> net: connects a port to the network's signal convention (see ADAPTERS)."""

ADAPTERS: dict[str, tuple[Adapter, Adapter]] = {}
"""signal kind -> (input adapter, output adapter). The compiler passes every input port net
through the input adapter before the first bank sees it, and every graph-output net through
the output adapter before it is aliased to its port. Voltage mode needs none (identity)."""

Emitter = Callable[[Primitive, EmitContext, list[np.ndarray]], np.ndarray]
"""emit(primitive, ctx, input_nets) -> output_nets; nets are object arrays of one sample's shape."""

EMITTERS: dict[str, Emitter] = {}


def register(kind: str) -> Callable[[Emitter], Emitter]:
    def deco(fn: Emitter) -> Emitter:
        EMITTERS[kind] = fn
        return fn

    return deco


def emitter_for(kind: str, node: str) -> Emitter:
    """The emitter of ``kind``; UnsupportedError listing the kinds that can be netlisted."""
    _load()
    fn = EMITTERS.get(kind)
    if fn is None:
        raise UnsupportedError(
            f"node {node!r}: no SPICE netlist for primitive {kind} yet "
            f"(netlistable: {', '.join(sorted(EMITTERS)) or 'none'})")
    return fn


def per_row(x: np.ndarray, weights: np.ndarray, place_row: Callable[[list[str], int], str]) -> np.ndarray:
    """Place one cell per output row of a linear bank and return the output nets.

    ``x`` holds one sample's input nets, (..., in) or (..., groups, in) for grouped weights
    (groups, out, in); ``place_row(input_nets, row)`` places row ``g·out + o`` and returns its net.
    """
    grouped = weights.ndim == 3
    lead = x.shape[:-2] if grouped else x.shape[:-1]
    groups, outs = (weights.shape[0], weights.shape[1]) if grouped else (1, weights.shape[0])
    y = np.empty((*lead, groups, outs) if grouped else (*lead, outs), dtype=object)
    for pos in np.ndindex(*lead):
        for g in range(groups):
            nets = [str(n) for n in (x[pos + (g,)] if grouped else x[pos])]
            for o in range(outs):
                y[(*pos, g, o) if grouped else (*pos, o)] = place_row(nets, g * outs + o)
    return y


def axes_last(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Nets with ``axes`` moved last and flattened (one group per leading position), and the map that puts
    a result of that flat shape back in ``x``'s layout (softmax-like emitters: one block per group)."""
    ax = tuple(a % x.ndim for a in axes)
    kept = [a for a in range(x.ndim) if a not in ax]
    order = (*kept, *ax)
    moved = np.transpose(x, order)
    flat = moved.reshape(*moved.shape[: len(kept)], -1)
    return flat, lambda y: np.transpose(y.reshape(moved.shape), np.argsort(order))


def adapters(signal: str) -> tuple[Adapter, Adapter]:
    """The port adapters of a signal kind (identity for voltage mode)."""
    _load()
    if signal == "voltage":
        return (lambda ctx, net: net), (lambda ctx, net: net)
    if signal not in ADAPTERS:
        raise UnsupportedError(f"no port adapters for {signal}-mode netlists yet")
    return ADAPTERS[signal]


def _load() -> None:
    """Import the modules that register emitters (kept lazy so circuits imports stay light)."""
    import importlib

    for mod in ("circuits.spice.emit_opamp", "circuits.spice.emit_current", "circuits.spice.emit_crossbar"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
