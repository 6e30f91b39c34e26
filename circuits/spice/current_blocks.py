"""Binas et al. 2016 current-mode blocks for validation: one neuron with its fan-in, and a bare soma.

Built from the cells in `current_cells` (11-transistor synapse, 5-transistor soma). Signals in
model units are currents of ``amps_per_unit`` amperes (default 100 nA, Binas' reference peak);
bench inputs are injected with `block.indexed_inputs(..., current=True)` and outputs read as the
current of a next-layer NMOS branch draining into a held soma-level node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from circuits import ideal as ideal_fn

from circuits.base import as_finite_array
from circuits.current import NEURON_TRANSISTORS, SYNAPSE_TRANSISTORS, CurrentNeuron, SynapseArray
from circuits.errors import ParameterError, UnsupportedError
from circuits.spice.block import BlockCircuit, index_sweep, indexed_inputs
from circuits.spice.current_cells import (
    DEFAULT_AMPS_PER_UNIT, MAX_LEVEL, SOMA_PORTS, V_SOMA_V, CellSizing, ChipDraw, Mos, NeuronCircuit,
    SynapseCircuit, bit_nodes, quantize, supplies,
)
from circuits.spice.netlist import Deck, Element, Subckt, instance, isource, vsource

__all__ = ["NeuronBlock", "NeuronCircuit", "SynapseArrayBlock", "SynapseCircuit", "block_for"]
MAX_AMPS_PER_UNIT = 1e-6  # the unit devices leave weak inversion above ~100 nA each


def check_amps_per_unit(value: float) -> None:
    """One model unit must be a current in the cells' range: 0 < amps_per_unit <= 1 µA."""
    if not 0 < value <= MAX_AMPS_PER_UNIT:
        raise ParameterError(f"amps_per_unit: {value!r} A is outside (0, {MAX_AMPS_PER_UNIT}] A; these "
                             "subthreshold cells want nA per model unit (Binas: ~100 nA peak, e.g. scale 1e-7)")


def readout(name: str, gate: str, sizing: CellSizing, draw: ChipDraw) -> list[Element]:
    """A next-layer NMOS branch of m_diode units (I = I_soma) draining into a held node; read -vread<name>#branch."""
    dev = Mos(f"read{name}", f"rd{name}", gate, "vss", "vss", "n", sizing.w_unit_m, sizing.l_unit_m, sizing.m_diode)
    mm = draw.params([dev])
    el = sizing.card.mosfet(dev.name, dev.d, dev.g, dev.s, dev.b, dev.polarity, dev.w_m, dev.l_m, dev.m,
                            delvto=mm.get(f"dvt_{dev.name}"), beta=mm.get(f"bf_{dev.name}"))
    return [el]


@dataclass(frozen=True, slots=True, eq=False)
class SynapseArrayBlock(BlockCircuit):
    """One neuron with its fan-in: synapses (3 bits + sign) from input somas onto a rectifying soma.

    Units: an input x is a current x·amps_per_unit into the input soma (which rectifies it);
    a weight w is the level k = clip(round(w/weight_unit), −7, 7). The hardware step is
    1/m_diode (0.25): I_syn = k·I_in/m_diode. A ``weight_unit`` larger than that (needed when
    max|w| > 7/m_diode) scales the read-out, y = I_out/amps_per_unit · weight_unit·m_diode,
    standing for the gain the next layer's synapses absorb. The bias is a synapse from a
    reference soma carrying 1 unit. Ideal: y = ReLU(Σ w_q·max(0, x) + b_q); with
    ``rectify=False`` a second soma takes the negated synapses and y = I_pos − I_neg.

    Tolerance 3 % of FS (FS = Σ|w_q| + |b_q|): nominal devices give 0.2–0.6 % on random inputs
    and 2.5 % at the worst corner (every level 7, every input 1: 700 nA in the soma, moderate
    inversion, where the weak-inversion Early trim over-corrects). Mismatch is not in the ideal.
    """

    kind: ClassVar[str] = "current.synapse_array"
    tolerance_pct_fs: ClassVar[float] = 3.0
    dynamic: ClassVar[bool] = False

    weights: np.ndarray
    bias: float | None = None
    amps_per_unit: float = DEFAULT_AMPS_PER_UNIT
    weight_unit: float | None = None
    rectify: bool = True
    sizing: CellSizing = field(default_factory=CellSizing)
    mismatch_seed: int | None = None
    v_read_v: float = V_SOMA_V
    name: str = "cm_neuron"

    def __post_init__(self) -> None:
        w = as_finite_array("weights", self.weights, ndim=(1,)).astype(np.float64)
        if w.size < 1:
            raise ParameterError("weights: a neuron needs at least one synapse")
        object.__setattr__(self, "weights", w)
        if self.bias is not None:
            object.__setattr__(self, "bias", float(as_finite_array("bias", self.bias, ndim=(0,))))
        check_amps_per_unit(self.amps_per_unit)
        if self.weight_unit is not None and not self.weight_unit > 0:
            raise ParameterError(f"weight_unit: must be > 0, got {self.weight_unit}")
        ChipDraw(self.sizing.card, self.mismatch_seed)  # validates the seed against the card

    @classmethod
    def from_primitive(cls, prim: SynapseArray, index: int, amps_per_unit: float = DEFAULT_AMPS_PER_UNIT,
                       **design: object) -> SynapseArrayBlock:
        """Output ``index`` of ``prim`` (grouped weights: index = group·out + o)."""
        w = np.asarray(prim.weights, dtype=np.float64)
        w = w.reshape(-1, w.shape[-1])
        if not 0 <= index < w.shape[0]:
            raise ParameterError(f"index: {index} outside the {w.shape[0]} outputs")
        b = None if prim.bias is None else float(np.asarray(prim.bias, np.float64).reshape(-1)[index])
        return cls(w[index], b, amps_per_unit=amps_per_unit, rectify=prim.rectify,
                   name=f"cm_neuron_{index}", **design)  # type: ignore[arg-type]

    # --- design -----------------------------------------------------------------------
    @property
    def unit(self) -> float:
        """Weight step in model units: the hardware's 1/m_diode, or larger when weights exceed 7 steps."""
        if self.weight_unit is not None:
            return self.weight_unit
        peak = max(float(np.max(np.abs(self.weights))), abs(self.bias or 0.0))
        return max(self.sizing.w_unit, peak / MAX_LEVEL)

    @property
    def levels(self) -> np.ndarray:
        return quantize(self.weights, self.unit)

    @property
    def bias_level(self) -> int:
        return 0 if self.bias is None else int(quantize(np.array([self.bias]), self.unit)[0])

    @property
    def out_gain(self) -> float:
        return self.unit / self.sizing.w_unit

    def somas(self) -> tuple[int, ...]:
        """Sign each output soma applies to the weights: (+1,) or (+1, −1) for a signed output."""
        return (1,) if self.rectify else (1, -1)

    def n_inputs(self) -> int:
        return int(self.weights.size)

    def input_range(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def full_scale(self) -> float:
        return float(np.sum(np.abs(self.levels)) + abs(self.bias_level)) * self.unit or self.unit

    def transistors(self) -> int:
        """Devices of the block's own subckt: 11 per nonzero synapse, 5 per soma."""
        syn = int(np.count_nonzero(self.levels)) + (self.bias_level != 0)
        return len(self.somas()) * (SYNAPSE_TRANSISTORS * syn + NEURON_TRANSISTORS)

    # --- netlist ------------------------------------------------------------------------
    def _sources(self) -> list[tuple[str, str, int]]:
        """(vn, vp, level) of every synapse row, the bias reference last."""
        rows = [(f"vn{j}", f"vp{j}", int(k)) for j, k in enumerate(self.levels)]
        if self.bias_level:
            rows.append(("vn_ref", "vp_ref", self.bias_level))
        return rows

    def ports(self) -> tuple[str, ...]:
        ins = [p for vn, vp, _ in self._sources() for p in (vn, vp)]
        outs = [p for s in range(len(self.somas())) for p in (f"vn_out{s}", f"vp_out{s}")]
        return (*ins, *outs, "vdd", "vss")

    def subckts(self) -> list[Subckt]:
        mm = self.mismatch_seed is not None
        soma, syn = NeuronCircuit(self.sizing), SynapseCircuit(self.sizing)
        draw = ChipDraw(self.sizing.card, self.mismatch_seed, stream=0)
        els: list[Element] = []
        for s, sign in enumerate(self.somas()):
            for j, (vn, vp, k) in enumerate(self._sources()):
                if k:
                    els.append(instance(f"s{s}_{j}", syn.subckt(mm).name, (vn, vp, f"sum{s}", *bit_nodes(sign * k),
                                                                           "vdd", "vss"), draw.params(syn.devices())))
            els.append(instance(f"soma{s}", soma.subckt(mm).name, (f"sum{s}", f"vn_out{s}", f"vp_out{s}", "vdd",
                                                                   "vss"), draw.params(soma.devices())))
        own = Subckt(self.name, self.ports(), els,
                     comment=f"Binas neuron: levels {self.levels.tolist()}, bias level {self.bias_level}")
        return [soma.subckt(mm), syn.subckt(mm), own]

    def dc_bench(self, points: np.ndarray) -> Deck:
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        mm = self.mismatch_seed is not None
        soma = NeuronCircuit(self.sizing)
        draw = ChipDraw(self.sizing.card, self.mismatch_seed, stream=1)
        deck = Deck(f"{self.name} dc bench", models=self.sizing.card.models(), subckts=self.subckts())
        ins = [f"x{j}" for j in range(self.n_inputs())]
        deck.elements += [*supplies(self.sizing.card), *indexed_inputs(pts, ins, self.amps_per_unit, current=True)]
        for j, x in enumerate(ins):
            deck.elements.append(instance(f"in{j}", soma.subckt(mm).name, (x, f"vn{j}", f"vp{j}", "vdd", "vss"),
                                          draw.params(soma.devices())))
        if self.bias_level:
            deck.elements += [isource("ref", "vdd", "xref", self.amps_per_unit),
                              instance("ref", soma.subckt(mm).name, ("xref", "vn_ref", "vp_ref", "vdd", "vss"),
                                       draw.params(soma.devices()))]
        deck.elements.append(instance("dut", self.name, self.ports()))
        for s in range(len(self.somas())):
            deck.elements += [*readout(str(s), f"vn_out{s}", self.sizing, draw),
                              vsource(f"read{s}", f"rd{s}", "0", self.v_read_v)]
        return index_sweep(deck, len(pts))

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        amps = [-np.asarray(vectors[f"vread{s}#branch"], dtype=np.float64) for s in range(len(self.somas()))]
        y = amps[0] - (amps[1] if len(amps) > 1 else 0.0)
        return (y / self.amps_per_unit * self.out_gain).reshape(-1, 1)

    def ideal(self, points: np.ndarray) -> np.ndarray:
        pts = ideal_fn.rectify(np.atleast_2d(np.asarray(points, dtype=np.float64)), 0.0)  # input somas
        y = ideal_fn.dense(pts, (self.levels * self.unit)[None, :], np.asarray([self.bias_level * self.unit]))
        return ideal_fn.rectify(y, 0.0) if self.rectify else y


@dataclass(frozen=True, slots=True, eq=False)
class NeuronBlock(BlockCircuit):
    """A stand-alone soma: y = max(0, x) for an input current x·amps_per_unit, read through one
    next-layer NMOS branch of m_diode units (I_out = I_soma). A negative input is an ideal
    current pulled out of the diode node: the diode turns off and the output falls to leakage."""

    kind: ClassVar[str] = "current.neuron"
    tolerance_pct_fs: ClassVar[float] = 2.0
    dynamic: ClassVar[bool] = False

    amps_per_unit: float = DEFAULT_AMPS_PER_UNIT
    sizing: CellSizing = field(default_factory=CellSizing)
    mismatch_seed: int | None = None
    v_read_v: float = V_SOMA_V

    def __post_init__(self) -> None:
        check_amps_per_unit(self.amps_per_unit)
        ChipDraw(self.sizing.card, self.mismatch_seed)

    @classmethod
    def from_primitive(cls, prim: CurrentNeuron, index: int, amps_per_unit: float = DEFAULT_AMPS_PER_UNIT,
                       **design: object) -> NeuronBlock:
        """Every lane of a neuron bank is the same soma; ``index`` only names the lane."""
        if index < 0:
            raise ParameterError(f"index: must be >= 0, got {index}")
        return cls(amps_per_unit=amps_per_unit, **design)  # type: ignore[arg-type]

    def n_inputs(self) -> int:
        return 1

    def ports(self) -> tuple[str, ...]:
        return SOMA_PORTS

    def full_scale(self) -> float:
        return 1.0

    def subckts(self) -> list[Subckt]:
        return [NeuronCircuit(self.sizing).subckt(self.mismatch_seed is not None)]

    def dc_bench(self, points: np.ndarray) -> Deck:
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        soma = NeuronCircuit(self.sizing)
        draw = ChipDraw(self.sizing.card, self.mismatch_seed)
        sub = soma.subckt(draw.enabled)
        deck = Deck("Binas soma dc bench", models=self.sizing.card.models(), subckts=[sub])
        deck.elements += [*supplies(self.sizing.card), *indexed_inputs(pts, ["x0"], self.amps_per_unit, current=True),
                          instance("dut", sub.name, ("x0", "vn", "vp", "vdd", "vss"), draw.params(soma.devices())),
                          *readout("0", "vn", self.sizing, draw), vsource("read0", "rd0", "0", self.v_read_v)]
        return index_sweep(deck, len(pts))

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        return (-np.asarray(vectors["vread0#branch"], dtype=np.float64) / self.amps_per_unit).reshape(-1, 1)

    def ideal(self, points: np.ndarray) -> np.ndarray:
        return np.maximum(np.atleast_2d(np.asarray(points, dtype=np.float64)), 0.0).reshape(-1, 1)


def block_for(prim: SynapseArray | CurrentNeuron, index: int, amps_per_unit: float) -> BlockCircuit:
    """Library factory: output ``index`` of a current-mode primitive at ``amps_per_unit`` A per model unit."""
    if isinstance(prim, SynapseArray):
        return SynapseArrayBlock.from_primitive(prim, index, amps_per_unit)
    if isinstance(prim, CurrentNeuron):
        return NeuronBlock.from_primitive(prim, index, amps_per_unit)
    raise UnsupportedError(f"no current-mode circuit for {type(prim).__name__}; "
                           "supported: current.synapse_array, current.neuron")
