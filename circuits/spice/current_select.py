"""Current-mode selection and summing blocks: mirror junction/average and Lazzaro's winner-take-all.

Signals are Binas somas (`current_cells`): a value is a soma current, carried to readers by the
soma's gate lines ``vn`` (NMOS) and ``vp`` (PMOS). Every block here reads its inputs' lines,
computes with transistors and ends in output soma(s), so it slots between layers like a neuron.

Junction and average (Kirchhoff's current law with mirror ratios; Mead, *Analog VLSI and Neural
Systems*, 1989, ch. 5): input k's PMOS line drives a copy of ratio |gₖ| (multiplier m = |gₖ|·m_diode
over the m_diode-unit diode) sourcing |gₖ|·xₖ into the output soma node, or its NMOS line a copy
sinking it, by the sign of gₖ; a bias is a copy of ratio |b| from a one-unit reference soma.
A sum that can go negative gets a soma pair (the second takes every term negated), read as
I_pos − I_neg, exactly as a signed Binas layer:

    y = Σₖ gₖ·xₖ + b            (average: gₖ = gain for every window input, b = 0)

PMOS copies drain at a soma node, far below their diode (VDD − V_p): they are narrowed by
1/(1 + ΔV/V_A) at the design current (`emit_current.OperatingPoint`); NMOS copies drain at a
soma node like their diode and need no trim.

Winner-take-all (Lazzaro, Ryckebusch, Mahowald & Mead, "Winner-take-all networks of O(N)
complexity", NIPS 1988): per input a PMOS copy feeds Iₖ into the drain of M1ₖ (NMOS, gate on the
common node V_c, source at ground) and M2ₖ (NMOS, gate on that drain, source on V_c, drain at VDD)
follows it; a bias current I_b pulls V_c down. The largest input's M1 is the only one saturated,
so V_c settles where M1 carries exactly I_max (M2's gate draws nothing):

    I_M1(V_c) = max_k Iₖ,   every loser's M1 in triode (drain near ground, M2 off)

V_c is therefore the gate voltage of a diode carrying I_max: an NMOS copy on V_c (m_diode units,
like M1) draws I_max from a PMOS diode, whose PMOS copy feeds the output soma. The winner's
drain sits at V_c + V_GS2(I_b), the copy's at VDD − V_p; the copy is trimmed for that ΔV.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from circuits.current import CurrentJunction, MirrorAverage, WinnerTakeAll
from circuits.errors import ParameterError
from circuits.spice.block import BlockCircuit, index_sweep, indexed_inputs
from circuits.spice.current_blocks import check_amps_per_unit, readout
from circuits.spice.current_cells import (
    DEFAULT_AMPS_PER_UNIT, V_SOMA_V, CellSizing, ChipDraw, Mos, NeuronCircuit, supplies,
)
from circuits.spice.netlist import Deck, Element, Subckt, instance, isource, vsource

WTA_BIAS_UNITS = 1.0  # I_b in model units: M2 of the winner carries it
WTA_V_GS2_V = 0.45  # the winner's M2 gate-source voltage near I_b (trim estimate, BSIM3 card, with body effect)


def _operating_point(sizing: CellSizing, amps_per_unit: float):
    from circuits.spice.emit_current import OperatingPoint  # the network emitter's design point

    return OperatingPoint.at(sizing, amps_per_unit)


def _embed(devices: Sequence[Mos], prefix: str, nodes: Mapping[str, str]) -> list[Mos]:
    """A cell's devices renamed ``prefix``+name with their terminals mapped through ``nodes``."""
    def m(n: str) -> str:
        return nodes.get(n, n if n in ("vdd", "vss") else f"{prefix}{n}")

    return [replace(t, name=f"{prefix}{t.name}", d=m(t.d), g=m(t.g), s=m(t.s), b=m(t.b)) for t in devices]


def _cell(sizing: CellSizing, name: str, ports: Sequence[str], devices: Sequence[Mos], mismatch: bool,
          comment: str, extra: Sequence[Element] = ()) -> Subckt:
    """The block's own .subckt: every transistor (with dvt_*/bf_* parameters under mismatch) plus ``extra``."""
    params: dict[str, float] = {}
    els: list[Element] = []
    for t in devices:
        mm = {"delvto": f"{{dvt_{t.name}}}", "beta": f"{{bf_{t.name}}}"} if mismatch else {}
        if mismatch:
            params[f"dvt_{t.name}"], params[f"bf_{t.name}"] = 0.0, 1.0
        els.append(sizing.card.mosfet(t.name, t.d, t.g, t.s, t.b, t.polarity, t.w_m, t.l_m, t.m, **mm))
    return Subckt(name + ("_mm" if mismatch else ""), tuple(ports), [*els, *extra], params, comment)


class _SomaBlock(BlockCircuit):
    """Bench shared by the blocks: input somas fed x·I_unit, the block, one read-out per output soma.

    Subclasses define ``inputs_lines()`` (the block's input ports, (vn, vp) per input and the
    reference), ``devices()``, ``extra()`` and ``somas()`` (+1, or +1 and −1 for a pair).
    """

    amps_per_unit: float
    sizing: CellSizing
    mismatch_seed: int | None
    v_read_v: float
    name: str

    def devices(self) -> list[Mos]:
        raise NotImplementedError

    def extra(self) -> list[Element]:
        return []

    def somas(self) -> tuple[int, ...]:
        return (1,)

    def uses_reference(self) -> bool:
        return False

    def input_ports(self) -> list[str]:
        ports = [p for j in range(self.n_inputs()) for p in (f"vn{j}", f"vp{j}")]
        return ports + (["vn_ref", "vp_ref"] if self.uses_reference() else [])

    def ports(self) -> tuple[str, ...]:
        outs = [p for s in range(len(self.somas())) for p in (f"vn_out{s}", f"vp_out{s}")]
        return (*self.input_ports(), *outs, "vdd", "vss")

    def output_somas(self) -> list[Mos]:
        """The output soma(s), soma s on node ``sum{s}`` with lines vn_out{s}, vp_out{s}."""
        soma = _operating_point(self.sizing, self.amps_per_unit)
        from circuits.spice.emit_current import soma_devices

        out = []
        for s in range(len(self.somas())):
            out += _embed(soma_devices(soma), f"o{s}", {"in": f"sum{s}", "vn": f"vn_out{s}", "vp": f"vp_out{s}"})
        return out

    def subckt(self, mismatch: bool) -> Subckt:
        return _cell(self.sizing, self.name, self.ports(), [*self.devices(), *self.output_somas()], mismatch,
                     f"{self.kind} {type(self).__name__}", self.extra())

    def subckts(self) -> list[Subckt]:
        return [NeuronCircuit(self.sizing).subckt(self.mismatch_seed is not None),
                self.subckt(self.mismatch_seed is not None)]

    def input_range(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def dc_bench(self, points: np.ndarray) -> Deck:
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        mm = self.mismatch_seed is not None
        soma = NeuronCircuit(self.sizing)
        draw = ChipDraw(self.sizing.card, self.mismatch_seed, stream=1)
        own = self.subckt(mm)
        deck = Deck(f"{self.name} dc bench", models=self.sizing.card.models(), subckts=[soma.subckt(mm), own])
        xs = [f"x{j}" for j in range(self.n_inputs())]
        deck.elements += [*supplies(self.sizing.card), *indexed_inputs(pts, xs, self.amps_per_unit, current=True)]
        for j, x in enumerate(xs):
            deck.elements.append(instance(f"in{j}", soma.subckt(mm).name, (x, f"vn{j}", f"vp{j}", "vdd", "vss"),
                                          draw.params(soma.devices())))
        if self.uses_reference():
            deck.elements += [isource("ref", "vdd", "xref", self.amps_per_unit),
                              instance("ref", soma.subckt(mm).name, ("xref", "vn_ref", "vp_ref", "vdd", "vss"),
                                       draw.params(soma.devices()))]
        devs = [*self.devices(), *self.output_somas()]
        deck.elements.append(instance("dut", own.name, self.ports(), draw.params(devs)))
        for s in range(len(self.somas())):
            deck.elements += [*readout(str(s), f"vn_out{s}", self.sizing, draw),
                              vsource(f"read{s}", f"rd{s}", "0", self.v_read_v)]
        return index_sweep(deck, len(pts))

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        amps = [-np.asarray(vectors[f"vread{s}#branch"], dtype=np.float64).real for s in range(len(self.somas()))]
        y = amps[0] - (amps[1] if len(amps) > 1 else 0.0)
        return (y / self.amps_per_unit).reshape(-1, 1)


@dataclass(frozen=True, slots=True, eq=False)
class MirrorSumBlock(_SomaBlock):
    """y = Σₖ gₖ·xₖ + b by mirror copies onto output soma(s) (module doc): current.junction and current.average.

    Inputs x ∈ [0, 1] (soma currents). Full scale Σ|gₖ| + |b|. Tolerance 3 % FS, the Binas
    synapse's: unit copies without cascodes (Early effect off the design current, narrow copies
    for small ratios) and the soma chain's leakage (an offset near 0.5 % of a unit); nominal
    devices measure 0.4–1.4 % max in ngspice.
    """

    kind: ClassVar[str] = "current.junction"
    tolerance_pct_fs: ClassVar[float] = 3.0

    gains: tuple[float, ...] = (1.0,)
    bias: float = 0.0
    amps_per_unit: float = DEFAULT_AMPS_PER_UNIT
    sizing: CellSizing = field(default_factory=CellSizing)
    mismatch_seed: int | None = None
    v_read_v: float = V_SOMA_V
    name: str = "cm_junction"

    def __post_init__(self) -> None:
        g = tuple(float(v) for v in np.asarray(self.gains, dtype=np.float64).ravel())
        if not g or not all(np.isfinite(g)) or not np.isfinite(self.bias):
            raise ParameterError(f"MirrorSumBlock.gains: need finite gains (and bias), "
                                 f"got {self.gains!r}, {self.bias!r}")
        object.__setattr__(self, "gains", g)
        object.__setattr__(self, "bias", float(self.bias))
        check_amps_per_unit(self.amps_per_unit)
        ChipDraw(self.sizing.card, self.mismatch_seed)

    @classmethod
    def junction(cls, prim: CurrentJunction, index: int, amps_per_unit: float = DEFAULT_AMPS_PER_UNIT,
                 **kw: object) -> MirrorSumBlock:
        """Gains and bias at flat position ``index`` of their broadcast shape (cyclic)."""
        def at(v: object) -> float:
            arr = np.asarray(0.0 if v is None else v, dtype=np.float64).ravel()
            return float(arr[index % arr.size])

        return cls(tuple(at(g) for g in prim.gains), at(prim.bias), amps_per_unit, name=f"cm_junction_{index}",
                   **kw)  # type: ignore[arg-type]

    def n_inputs(self) -> int:
        return len(self.gains)

    def uses_reference(self) -> bool:
        return self.bias != 0.0

    def somas(self) -> tuple[int, ...]:
        signed = any(g < 0 for g in self.gains) or self.bias < 0
        return (1, -1) if signed else (1,)

    def full_scale(self) -> float:
        return float(sum(abs(g) for g in self.gains) + abs(self.bias)) or 1.0

    def ideal(self, points: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        return np.asarray(CurrentJunction(gains=self.gains, bias=self.bias).ideal(*p.T)).reshape(-1, 1)

    def devices(self) -> list[Mos]:
        op = _operating_point(self.sizing, self.amps_per_unit)
        s = self.sizing
        w_p = op.copy_w_m("p", op.dv_soma_v)
        terms = [(f"{j}", f"vn{j}", f"vp{j}", g) for j, g in enumerate(self.gains)]
        if self.bias:
            terms.append(("ref", "vn_ref", "vp_ref", self.bias))
        out = []
        for soma, sign in enumerate(self.somas()):
            node = f"sum{soma}"
            for tag, vn, vp, g in terms:
                g = sign * g
                if g > 0:
                    out.append(Mos(f"cp{soma}_{tag}", node, vp, "vdd", "vdd", "p", w_p, s.l_unit_m, g * s.m_diode))
                elif g < 0:
                    out.append(Mos(f"cn{soma}_{tag}", node, vn, "vss", "vss", "n", s.w_unit_m, s.l_unit_m,
                                   -g * s.m_diode))
        return out


@dataclass(frozen=True, slots=True, eq=False)
class MirrorAverageBlock(MirrorSumBlock):
    """y = gain·Σ x over a window: `MirrorSumBlock` with one ratio for every input (current.average)."""

    kind: ClassVar[str] = "current.average"
    name: str = "cm_average"

    @classmethod
    def from_primitive(cls, prim: MirrorAverage, index: int, amps_per_unit: float = DEFAULT_AMPS_PER_UNIT,
                       **kw: object) -> MirrorAverageBlock:
        """Gain at flat output position ``index`` (cyclic), one copy per window input."""
        gain = np.asarray(prim.gain, dtype=np.float64).ravel()
        return cls((float(gain[index % gain.size]),) * prim.window, 0.0, amps_per_unit,
                   name=f"cm_average_{index}", **kw)  # type: ignore[arg-type]

    def ideal(self, points: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        y = MirrorAverage(axes=(-1,), gain=self.gains[0], window=len(self.gains)).ideal(p)
        return np.asarray(y).reshape(-1, 1)


@dataclass(frozen=True, slots=True, eq=False)
class WinnerTakeAllBlock(_SomaBlock):
    """y = max_k xₖ over ``window`` soma inputs: Lazzaro's winner-take-all, V_c read by a copy chain (module doc).

    Inputs x ∈ [0, 1]. Full scale 1. Tolerance 3 % FS: the chain is three uncascoded copies, and
    the winner's drain voltage moves with I_max (V_c) while the trim holds at the design current;
    nominal devices measure 1.6 % max in ngspice (mostly an offset of ~1 % of a unit: leakage).
    """

    kind: ClassVar[str] = "current.wta"
    tolerance_pct_fs: ClassVar[float] = 3.0

    window: int = 2
    amps_per_unit: float = DEFAULT_AMPS_PER_UNIT
    bias_units: float = WTA_BIAS_UNITS
    sizing: CellSizing = field(default_factory=CellSizing)
    mismatch_seed: int | None = None
    v_read_v: float = V_SOMA_V
    name: str = "cm_wta"

    def __post_init__(self) -> None:
        if not (isinstance(self.window, int) and self.window >= 1):
            raise ParameterError(f"WinnerTakeAllBlock.window: need an integer >= 1, got {self.window!r}")
        if not self.bias_units > 0:
            raise ParameterError(f"WinnerTakeAllBlock.bias_units: must be > 0, got {self.bias_units!r}")
        check_amps_per_unit(self.amps_per_unit)
        ChipDraw(self.sizing.card, self.mismatch_seed)

    @classmethod
    def from_primitive(cls, prim: WinnerTakeAll, index: int, amps_per_unit: float = DEFAULT_AMPS_PER_UNIT,
                       **kw: object) -> WinnerTakeAllBlock:
        return cls(int(prim.window), amps_per_unit, name=f"cm_wta_{index}", **kw)  # type: ignore[arg-type]

    def n_inputs(self) -> int:
        return self.window

    def full_scale(self) -> float:
        return 1.0

    def ideal(self, points: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        return WinnerTakeAll(axes=(-1,), window=self.window).ideal(p).reshape(-1, 1)

    def devices(self) -> list[Mos]:
        op = _operating_point(self.sizing, self.amps_per_unit)
        s, card = self.sizing, self.sizing.card
        w, ln, md = s.w_unit_m, s.l_unit_m, s.m_diode
        v_win = op.v_n_v + WTA_V_GS2_V  # the winner's drain: V_c + V_GS2
        out = []
        for j in range(self.window):
            out += [Mos(f"mi{j}", f"d{j}", f"vp{j}", "vdd", "vdd", "p", op.copy_w_m("p", card.vdd_v - v_win - op.v_p_v),
                        ln, md),
                    Mos(f"ma{j}", f"d{j}", "vc", "vss", "vss", "n", w, ln, md),
                    Mos(f"mb{j}", "vdd", f"d{j}", "vc", "vss", "n", w, ln, md)]
        out += [Mos("mc", "vpw", "vc", "vss", "vss", "n", op.copy_w_m("n", card.vdd_v - op.v_p_v - v_win), ln, md),
                Mos("md", "vpw", "vpw", "vdd", "vdd", "p", w, ln, md),
                Mos("me", "sum0", "vpw", "vdd", "vdd", "p", op.copy_w_m("p", op.dv_soma_v), ln, md)]
        return out

    def extra(self) -> list[Element]:
        return [isource("bias", "vc", "vss", self.bias_units * self.amps_per_unit)]
