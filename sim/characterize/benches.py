"""Characterization benches: one representative design per primitive kind, its sweep and its chips.

A bench fixes the circuit being characterized (from the circuit library at the compiler's default
signal scale), the sweep points (rows, model units) with the held-out half, and builds the deck
of one chip instance: the nominal circuit (``instance_seed=None``) or one Monte Carlo draw.
Op-amp and crossbar blocks get device errors from `mismatch.perturb_deck`; current-mode blocks
draw Pelgrom mismatch per transistor from their own ``mismatch_seed``.

Held-out points alternate with the held-in ones (every odd row), so fidelity is measured
between the points the fit saw. Sweeps per kind:

| kind | design | points |
|---|---|---|
| opamp.summer | w = (0.5, −1, 2, −0.25), b = 0.3 | uniform in the input box |
| opamp.rectifier, opamp.exp | the library block | evenly spaced over the input range |
| opamp.log | the library block | log-spaced over [x_min, x_max] |
| opamp.multiplier | offset 1.1, signed operands | uniform in the input square |
| opamp.clipper | bounds ±1 (hardtanh) | evenly spaced over half a span beyond the bounds |
| opamp.diffpair | tanh | evenly spaced over ±3 |
| opamp.divider | the library block (four-quadrant) | a uniform in ±1, abs(b) log-uniform in [0.1, 4], random sign |
| opamp.integrator | τ = 1 ms, y0 = 0.5, window τ | evenly spaced inputs × samples at t/window = ¼, ½, ¾, 1 (transient) |
| crossbar.tiles | 8 rows and a bias row | uniform in the input box |
| current.neuron | the library soma | evenly spaced over ±1 (negative inputs rectify) |
| current.synapse_array | input soma → one synapse, output held at soma level | levels k = −7..7 in turn, x uniform in [−0.05, 1] |
| opamp.max, opamp.softmax, opamp.matmul, current.junction, current.average, current.wta, current.softmax | see `benches_select` | |
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from circuits.crossbar import CrossbarArray
from circuits.current import CurrentNeuron
from circuits.opamp import (
    AntilogAmp, Clipper, DiffPairActivation, Integrator, InvertingSummerArray, LogAmp, LogExpDivider, LogExpMultiplier,
    PrecisionRectifier,
)
from circuits.spice.block import INDEX_NODE, index_sweep, indexed_inputs
from circuits.spice.current_cells import (
    DEFAULT_AMPS_PER_UNIT, V_SOMA_V, CellSizing, ChipDraw, NeuronCircuit, SynapseCircuit, level_bits, supplies,
)
from circuits.spice.library import CIRCUITS
from circuits.spice.netlist import Deck, bsource, fmt, instance, vsource
from circuits.spice.opamp_macro import KNEE_V
from circuits.targets import TARGETS
from sim.characterize.families import Family, family_class
from sim.characterize.mismatch import OpampMismatch, perturb_deck

# The targets' default signal scales (`Target.default_scale`): volts per model unit for op-amp and
# crossbar blocks, amperes per unit in current mode.
SCALES = {name: t.default_scale for name, t in TARGETS.items()}
SUMMER_WEIGHTS = (0.5, -1.0, 2.0, -0.25)
SUMMER_BIAS = 0.3
CLIPPER_BOUNDS = (-1.0, 1.0)  # hardtanh
CROSSBAR_WEIGHTS = (0.9, -0.6, 0.3, -0.15, 0.75, -1.0, 0.45, 0.05)
CROSSBAR_BIAS = 0.2
INTEGRATOR_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
SYNAPSE_LEVELS = tuple(range(-7, 8))  # an odd count, so alternate hold-out sees every level on both sides
SYNAPSE_X_RANGE = (-0.05, 1.0)


def alternate(n: int) -> np.ndarray:
    """Held-out mask: every odd row."""
    return np.arange(n) % 2 == 1


class Bench(ABC):
    """A characterized design, its sweep (``points``, ``held_out``) and its family."""

    kind: str
    points: np.ndarray
    held_out: np.ndarray

    @abstractmethod
    def family(self) -> Family: ...

    @abstractmethod
    def design(self) -> dict[str, Any]:
        """JSON-ready description of the characterized circuit (recorded with data and fits)."""

    @abstractmethod
    def full_scale(self) -> float: ...

    @abstractmethod
    def deck(self, instance_seed: int | None) -> Deck:
        """The deck of one chip: nominal devices for None, else the draw of that seed."""

    @abstractmethod
    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        """Outputs (rows,) in model units from the simulator's vectors."""


@dataclass(frozen=True, eq=False)
class OpampBench(Bench):
    """An op-amp or crossbar block from the library, mismatched by `perturb_deck`."""

    kind: str
    block: Any  # an OpampBlock or CrossbarColumnBlock: has volts_per_unit and opamp
    points: np.ndarray
    held_out: np.ndarray
    fam: Family
    primitive: dict[str, Any]
    spread: OpampMismatch = field(default_factory=OpampMismatch)

    def family(self) -> Family:
        return self.fam

    def design(self) -> dict[str, Any]:
        lo, hi = self.block.input_range()
        return {"block": type(self.block).__name__, "primitive": self.primitive, "design": block_values(self.block),
                "scale": float(self.block.volts_per_unit), "scale_unit": "V per model unit",
                "input_range": [float(lo), float(hi)], "mismatch": self.spread.describe()}

    def full_scale(self) -> float:
        return float(self.block.full_scale())

    def sweep_inputs(self) -> np.ndarray:
        return self.points

    def deck(self, instance_seed: int | None) -> Deck:
        deck = self.block.dc_bench(self.sweep_inputs())
        if instance_seed is None:
            return deck
        return perturb_deck(deck, self.block.opamp, np.random.default_rng(instance_seed), self.spread)

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.block.read(vectors), dtype=np.float64).reshape(-1)


@dataclass(frozen=True, eq=False)
class IntegratorBench(OpampBench):
    """Reset-integrate transient per input; each input is sampled at several fractions of the window."""

    def sweep_inputs(self) -> np.ndarray:
        return np.unique(self.points[:, 0])[:, None]

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        blk = self.block
        t = np.asarray(vectors["time"], dtype=np.float64).real
        y = np.asarray(vectors["out"], dtype=np.float64).real / blk.volts_per_unit
        xs = self.sweep_inputs()[:, 0]
        period = blk.t_reset_s + blk.window_s
        which = np.searchsorted(xs, self.points[:, 0])
        when = which * period + blk.t_reset_s + self.points[:, 1] * blk.window_s
        return np.interp(when, t, y)


@dataclass(frozen=True, eq=False)
class NeuronBench(Bench):
    """The library's stand-alone Binas soma; mismatch from its own Pelgrom draw."""

    kind: str
    block: Any  # NeuronBlock
    points: np.ndarray
    held_out: np.ndarray

    def family(self) -> Family:
        return family_class(self.kind)()

    def design(self) -> dict[str, Any]:
        card = self.block.sizing.card
        return {"block": type(self.block).__name__, "primitive": {}, "design": block_values(self.block),
                "sizing": block_values(self.block.sizing), "scale": self.block.amps_per_unit,
                "scale_unit": "A per model unit", "input_range": [-1.0, 1.0],
                "mismatch": {"a_vt_v_m": card.a_vt_v_m, "a_beta_m": card.a_beta_m, "device_card": card.name}}

    def full_scale(self) -> float:
        return float(self.block.full_scale())

    def deck(self, instance_seed: int | None) -> Deck:
        return replace(self.block, mismatch_seed=instance_seed).dc_bench(self.points)

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.block.read(vectors), dtype=np.float64).reshape(-1)


@dataclass(frozen=True, eq=False)
class SynapseBench(Bench):
    """Input soma fed x·I_unit driving one 11-transistor synapse whose bits step through level k.

    The synapse output is held at a soma node's voltage by ``Vout``; its current (``vout#branch``,
    positive = excitatory) over I_unit is the output, ideally w_unit·k·max(0, x).
    """

    kind: str
    points: np.ndarray
    held_out: np.ndarray
    amps_per_unit: float = DEFAULT_AMPS_PER_UNIT
    sizing: CellSizing = field(default_factory=CellSizing)

    def family(self) -> Family:
        return family_class(self.kind).from_design({"w_unit": self.sizing.w_unit})

    def design(self) -> dict[str, Any]:
        card = self.sizing.card
        return {"block": "SynapseCircuit", "primitive": {"levels": list(SYNAPSE_LEVELS)},
                "scale": self.amps_per_unit, "scale_unit": "A per model unit",
                "input_range": list(SYNAPSE_X_RANGE), "sizing": block_values(self.sizing), "v_out_v": V_SOMA_V,
                "mismatch": {"a_vt_v_m": card.a_vt_v_m, "a_beta_m": card.a_beta_m, "device_card": card.name}}

    def full_scale(self) -> float:
        return max(SYNAPSE_LEVELS) * self.sizing.w_unit * SYNAPSE_X_RANGE[1]

    def deck(self, instance_seed: int | None) -> Deck:
        soma, syn = NeuronCircuit(self.sizing), SynapseCircuit(self.sizing)
        draw = ChipDraw(self.sizing.card, instance_seed)
        mm = draw.enabled
        bits = np.array([level_bits(int(k)) for k in self.points[:, 1]], dtype=np.float64)
        table = ", ".join(f"{fmt(i)}, {fmt(v * self.amps_per_unit)}" for i, v in enumerate(self.points[:, 0]))
        deck = Deck("Binas synapse characterization", models=self.sizing.card.models(),
                    subckts=[soma.subckt(mm), syn.subckt(mm)])
        deck.elements += [
            *supplies(self.sizing.card),
            *indexed_inputs(bits, ["b0", "b1", "b2", "sgn"], self.sizing.card.vdd_v),
            bsource("iin", "0", "pre", f"pwl(V({INDEX_NODE}), {table})", current=True),
            instance("pre", soma.subckt(mm).name, ("pre", "vn", "vp", "vdd", "vss"), draw.params(soma.devices())),
            instance("syn", syn.subckt(mm).name, ("vn", "vp", "out", "b0", "b1", "b2", "sgn", "vdd", "vss"),
                     draw.params(syn.devices())),
            vsource("out", "out", "0", V_SOMA_V),
        ]
        return index_sweep(deck, len(self.points))

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(vectors["vout#branch"], dtype=np.float64).real / self.amps_per_unit


def block_values(block: Any) -> dict[str, Any]:
    """The block's scalar design fields (resistors, currents, ranges): what the library designed."""
    out: dict[str, Any] = {}
    for f in fields(block):
        v = getattr(block, f.name)
        if isinstance(v, (bool, int, str)) or (isinstance(v, float) and math.isfinite(v)):
            out[f.name] = v
    return out


# --- the designs ---------------------------------------------------------------------------

def _grid(block: Any, n: int, log: bool = False) -> np.ndarray:
    lo, hi = block.input_range()
    if log:
        return np.exp(np.linspace(np.log(lo), np.log(hi), n))[:, None]
    return np.linspace(lo, hi, n)[:, None]


def _uniform(block: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    lo, hi = block.input_range()
    return rng.uniform(lo, hi, size=(n, block.n_inputs()))


def _opamp(kind: str, prim: Any, described: dict[str, Any], family: Callable[[Any], Family],
           points: Callable[[Any], np.ndarray], target: str = "opamp") -> OpampBench:
    """A library block at the target's default scale, its family (from the designed block) and sweep."""
    block = CIRCUITS[kind](prim, 0, SCALES[target])
    pts = points(block)
    spread = OpampMismatch(pcm_g_max_s=block.g_max_s) if target == "crossbar" else OpampMismatch()
    return OpampBench(kind, block, pts, alternate(len(pts)), family(block), described, spread)


def _summer(n: int, rng: np.random.Generator) -> Bench:
    def family(block: Any) -> Family:
        v, macro = block.volts_per_unit, block.opamp
        return family_class("opamp.summer").from_design({
            "weights": SUMMER_WEIGHTS, "bias": SUMMER_BIAS, "rail_pos": macro.v_rail_pos_v / v,
            "rail_neg": macro.v_rail_neg_v / v, "knee": KNEE_V / v})

    prim = InvertingSummerArray(np.array([SUMMER_WEIGHTS]), np.array([SUMMER_BIAS]))
    return _opamp("opamp.summer", prim, {"weights": list(SUMMER_WEIGHTS), "bias": SUMMER_BIAS}, family,
                  lambda b: _uniform(b, n, rng))


def _rectifier(n: int, rng: np.random.Generator) -> Bench:
    return _opamp("opamp.rectifier", PrecisionRectifier(), {"negative_slope": 0.0},
                  lambda b: family_class("opamp.rectifier")(), lambda b: _grid(b, n))


def _log(n: int, rng: np.random.Generator) -> Bench:
    return _opamp("opamp.log", LogAmp(), {},
                  lambda b: family_class("opamp.log").from_design({"x_min": b.input_range()[0]}),
                  lambda b: _grid(b, n, log=True))


def _exp(n: int, rng: np.random.Generator) -> Bench:
    return _opamp("opamp.exp", AntilogAmp(), {}, lambda b: family_class("opamp.exp")(), lambda b: _grid(b, n))


def _multiplier(n: int, rng: np.random.Generator) -> Bench:
    return _opamp("opamp.multiplier", LogExpMultiplier(), {},
                  lambda b: family_class("opamp.multiplier").from_design({"offset": b.offset}),
                  lambda b: _uniform(b, n, rng))


def _clipper(n: int, rng: np.random.Generator) -> Bench:
    return _opamp("opamp.clipper", Clipper(low=CLIPPER_BOUNDS[0], high=CLIPPER_BOUNDS[1]),
                  {"low": CLIPPER_BOUNDS[0], "high": CLIPPER_BOUNDS[1]},
                  lambda b: family_class("opamp.clipper").from_design({"low": b.low, "high": b.high}),
                  lambda b: _grid(b, n))


def _diffpair(n: int, rng: np.random.Generator) -> Bench:
    return _opamp("opamp.diffpair", DiffPairActivation("tanh"), {"function": "tanh"},
                  lambda b: family_class("opamp.diffpair").from_design({"function": b.function}),
                  lambda b: _grid(b, n))


def _divider(n: int, rng: np.random.Generator) -> Bench:
    return _opamp("opamp.divider", LogExpDivider(), {},
                  lambda b: family_class("opamp.divider").from_design({"offset": b.offset, "x_min": b.x_min}),
                  lambda b: b.test_points(n, rng))


def _integrator(n: int, rng: np.random.Generator) -> Bench:
    prim = Integrator(tau_s=1e-3, y0=0.5)
    block = CIRCUITS["opamp.integrator"](prim, 0, SCALES["opamp"])
    n_x = max(2, n // len(INTEGRATOR_FRACTIONS))
    xs = np.linspace(*block.input_range(), n_x)
    pts = np.array([(x, f) for x in xs for f in INTEGRATOR_FRACTIONS])
    held = np.repeat(alternate(n_x), len(INTEGRATOR_FRACTIONS))
    fam = family_class("opamp.integrator").from_design(
        {"y0": prim.y0, "window_over_tau": block.window_s / block.tau_s})
    return IntegratorBench("opamp.integrator", block, pts, held, fam,
                           {"tau_s": prim.tau_s, "y0": prim.y0, "fractions": list(INTEGRATOR_FRACTIONS)})


def _crossbar(n: int, rng: np.random.Generator) -> Bench:
    prim = CrossbarArray(np.array([CROSSBAR_WEIGHTS]), np.array([CROSSBAR_BIAS]))
    return _opamp("crossbar.tiles", prim, {"weights": list(CROSSBAR_WEIGHTS), "bias": CROSSBAR_BIAS},
                  lambda b: family_class("crossbar.tiles").from_design({"weights": CROSSBAR_WEIGHTS,
                                                                        "bias": CROSSBAR_BIAS}),
                  lambda b: _uniform(b, n, rng), target="crossbar")


def _neuron(n: int, rng: np.random.Generator) -> Bench:
    block = CIRCUITS["current.neuron"](CurrentNeuron(), 0, SCALES["current"])
    pts = np.linspace(-1.0, 1.0, n)[:, None]
    return NeuronBench("current.neuron", block, pts, alternate(n))


def _synapse(n: int, rng: np.random.Generator) -> Bench:
    k = np.array(SYNAPSE_LEVELS, dtype=np.float64)[np.arange(n) % len(SYNAPSE_LEVELS)]
    x = rng.uniform(*SYNAPSE_X_RANGE, size=n)
    return SynapseBench("current.synapse_array", np.stack([x, k], axis=1), alternate(n), SCALES["current"])


BENCHES: dict[str, Callable[[int, np.random.Generator], Bench]] = {
    "opamp.summer": _summer,
    "opamp.rectifier": _rectifier,
    "opamp.log": _log,
    "opamp.exp": _exp,
    "opamp.multiplier": _multiplier,
    "opamp.clipper": _clipper,
    "opamp.diffpair": _diffpair,
    "opamp.divider": _divider,
    "opamp.integrator": _integrator,
    "crossbar.tiles": _crossbar,
    "current.neuron": _neuron,
    "current.synapse_array": _synapse,
}
