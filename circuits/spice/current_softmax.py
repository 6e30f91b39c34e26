"""Current-mode softmax: a subthreshold differential-pair array normalizing its drain currents.

N NMOS share a common source pulled down by a tail current I_b; in weak inversion each carries
(BSIM3, bulk at ground, equal V_S and V_th for all of them; Mead, *Analog VLSI and Neural
Systems*, 1989, ch. 5; the soft winner-take-all of Indiveri, "A current-mode hysteretic
winner-take-all network", 2001, and Elfadel & Wyatt, "The softmax nonlinearity", NIPS 1993)

    I_i = I_b · exp(V_i/(n·U_T)) / Σ_j exp(V_j/(n·U_T))

so with gate voltages V_i = V_ref + R·I_unit·x_i and R = n·U_T/I_unit the drain currents are
softmax(x)·I_b: one model unit at I_b = 1 unit. The gate voltage is made from the input signal
(a Binas soma pair, value = I_pos − I_neg, `emit_current`): a PMOS copy on the positive soma's
``vp`` sources I_pos into the gate node, an NMOS copy on the negative soma's ``vn`` sinks I_neg,
and R returns the difference to V_ref. Each drain feeds a PMOS diode whose copy drives an output
soma (5 T), so each output is an ordinary rectified signal.

n, the subthreshold slope factor, is calibrated in ngspice (`slope_bench`, `slope_n`) at the pair's
operating point (drains at VDD − 0.4 V, gates at V_ref, the source ~0.48 V above the bulk at
10 nA): n = 1.36 at a 10 nA tail, rising to 1.48 at 100 nA as the pair leaves weak inversion.
`PAIR_SLOPE_N` tabulates that measurement (`pair_slope_n` interpolates it in ln I), and a test
re-measures it. Copies are Early-trimmed for their drain voltages at
the design current (`emit_current.OperatingPoint`), as in `current_select`.

Bias sources (I_b, V_ref) are the chip's bias generator, like the winner-take-all's I_b: ideal
sources, not counted in the device bill.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from circuits.current import SoftmaxNormalizer
from circuits.errors import ParameterError
from circuits.spice.block import index_sweep, indexed_inputs
from circuits.spice.current_blocks import check_amps_per_unit, readout
from circuits.spice.current_cells import (
    DEFAULT_AMPS_PER_UNIT, U_T_V, V_SOMA_V, CellSizing, ChipDraw, Mos, NeuronCircuit, supplies,
)
from circuits.spice.current_select import _operating_point, _SomaBlock
from circuits.spice.netlist import Deck, Element, instance, isource, resistor, vsource

# n against the tail current (A), measured with `slope_bench` (ngspice 39, bsim3_180nm, default sizing,
# V_ref 0.9 V): it rises as the pair leaves weak inversion.
PAIR_SLOPE_N = {1e-9: 1.3069, 3e-9: 1.3202, 10e-9: 1.3563, 30e-9: 1.4078, 100e-9: 1.4812, 300e-9: 1.5702,
                1e-6: 1.7727}
SOFTMAX_V_REF_V = 0.9  # gate reference: sources near 0.55 V, drains near VDD − V_p, all saturated
SLOPE_STEPS_V = (-0.02, -0.01, 0.01, 0.02)  # gate differences δ of the slope calibration
SOFTMAX_INPUT_LIMIT = 4.0  # |x| in units: R·I_unit·4 = ±0.13 V of gate swing


def pair_slope_n(tail_a: float) -> float:
    """The pair's slope factor at tail current ``tail_a``: `PAIR_SLOPE_N` interpolated in ln I (clamped)."""
    i = np.log(np.fromiter(PAIR_SLOPE_N, dtype=np.float64))
    return float(np.interp(np.log(tail_a), i, np.fromiter(PAIR_SLOPE_N.values(), dtype=np.float64)))


@dataclass(frozen=True, slots=True, eq=False)
class DiffPairSoftmaxBlock(_SomaBlock):
    """y = softmax(x) over ``size`` signed inputs: a differential-pair array with a one-unit tail (module doc).

    Inputs: per input a soma pair (the bench feeds max(0, x) and max(0, −x)), |x| ≤ ``input_limit``.
    Full scale 1. Tolerance 3 % FS, the current blocks': the slope n moves with the common
    source (≈ ±1 % over the input range), the input copies drift ±1.5 % off the design current
    (Early effect, scaling x), and the output chain is two uncascoded copies.
    """

    kind: ClassVar[str] = "current.softmax"
    tolerance_pct_fs: ClassVar[float] = 3.0

    size: int = 2
    amps_per_unit: float = DEFAULT_AMPS_PER_UNIT
    input_limit: float = SOFTMAX_INPUT_LIMIT
    slope_n: float | None = None  # None: `pair_slope_n` at the tail current
    v_ref_v: float = SOFTMAX_V_REF_V
    bias_units: float = 1.0
    sizing: CellSizing = field(default_factory=CellSizing)
    mismatch_seed: int | None = None
    v_read_v: float = V_SOMA_V
    name: str = "cm_softmax"

    def __post_init__(self) -> None:
        if not (isinstance(self.size, int) and self.size >= 1):
            raise ParameterError(f"DiffPairSoftmaxBlock.size: need an integer >= 1, got {self.size!r}")
        if self.slope_n is None:
            object.__setattr__(self, "slope_n", pair_slope_n(self.bias_units * self.amps_per_unit))
        for name in ("input_limit", "slope_n", "v_ref_v", "bias_units"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"DiffPairSoftmaxBlock.{name}: must be > 0, got {getattr(self, name)!r}")
        check_amps_per_unit(self.amps_per_unit)
        ChipDraw(self.sizing.card, self.mismatch_seed)

    @classmethod
    def from_primitive(cls, prim: SoftmaxNormalizer, size: int, amps_per_unit: float = DEFAULT_AMPS_PER_UNIT,
                       **kw: object) -> DiffPairSoftmaxBlock:
        """``size``: how many elements one softmax group holds (the primitive is shape-free)."""
        return cls(size, amps_per_unit, **kw)  # type: ignore[arg-type]

    @property
    def r_ohm(self) -> float:
        """R = n·U_T/I_unit: one model unit of input moves the gate by n·U_T (one e-fold of current)."""
        return float(self.slope_n) * U_T_V / self.amps_per_unit

    def n_inputs(self) -> int:
        return self.size

    def n_outputs(self) -> int:
        return self.size

    def somas(self) -> tuple[int, ...]:
        return (1,) * self.size

    def input_ports(self) -> list[str]:
        """Per input the positive soma's ``vp`` and the negative soma's ``vn`` (ground: no negative part)."""
        return [p for j in range(self.size) for p in (f"vp{j}", f"vn{j}")]

    def input_range(self) -> tuple[float, float]:
        return (-self.input_limit, self.input_limit)

    def full_scale(self) -> float:
        return 1.0

    def ideal(self, points: np.ndarray) -> np.ndarray:
        return SoftmaxNormalizer(axes=(-1,)).ideal(np.atleast_2d(np.asarray(points, dtype=np.float64)))

    def devices(self) -> list[Mos]:
        op = _operating_point(self.sizing, self.amps_per_unit)
        s, vdd = self.sizing, self.sizing.card.vdd_v
        w, ln, md = s.w_unit_m, s.l_unit_m, s.m_diode
        out = []
        for j in range(self.size):
            out += [Mos(f"cp{j}", f"g{j}", f"vp{j}", "vdd", "vdd", "p", op.copy_w_m("p", vdd - self.v_ref_v - op.v_p_v),
                        ln, md),
                    Mos(f"cn{j}", f"g{j}", f"vn{j}", "vss", "vss", "n", op.copy_w_m("n", self.v_ref_v - op.v_n_v),
                        ln, md),
                    Mos(f"mq{j}", f"d{j}", f"g{j}", "cs", "vss", "n", w, ln, md),  # the pair
                    Mos(f"md{j}", f"d{j}", f"d{j}", "vdd", "vdd", "p", w, ln, md),
                    Mos(f"me{j}", f"sum{j}", f"d{j}", "vdd", "vdd", "p", op.copy_w_m("p", op.dv_soma_v), ln, md)]
        return out

    def extra(self) -> list[Element]:
        els = [vsource("ref", "vref", "vss", self.v_ref_v),
               isource("tail", "cs", "vss", self.bias_units * self.amps_per_unit)]
        return els + [resistor(f"g{j}", f"g{j}", "vref", self.r_ohm) for j in range(self.size)]

    def dc_bench(self, points: np.ndarray) -> Deck:
        """Input j's positive part into soma p{j}, its negative part into soma n{j}; one read-out per output."""
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        mm = self.mismatch_seed is not None
        soma = NeuronCircuit(self.sizing)
        draw = ChipDraw(self.sizing.card, self.mismatch_seed, stream=1)
        own = self.subckt(mm)
        deck = Deck(f"{self.name} dc bench", models=self.sizing.card.models(), subckts=[soma.subckt(mm), own])
        split = np.concatenate([np.maximum(pts, 0.0), np.maximum(-pts, 0.0)], axis=1)
        xs = [f"xp{j}" for j in range(self.size)] + [f"xn{j}" for j in range(self.size)]
        deck.elements += [*supplies(self.sizing.card), *indexed_inputs(split, xs, self.amps_per_unit, current=True)]
        for j in range(self.size):
            for side in ("p", "n"):
                deck.elements.append(instance(f"in{side}{j}", soma.subckt(mm).name,
                                              (f"x{side}{j}", f"vn_{side}{j}", f"vp_{side}{j}", "vdd", "vss"),
                                              draw.params(soma.devices())))
        lines = [p for j in range(self.size) for p in (f"vp_p{j}", f"vn_n{j}")]
        outs = [p for s in range(self.size) for p in (f"vn_out{s}", f"vp_out{s}")]
        devs = [*self.devices(), *self.output_somas()]
        deck.elements.append(instance("dut", own.name, (*lines, *outs, "vdd", "vss"), draw.params(devs)))
        for s in range(self.size):
            deck.elements += [*readout(str(s), f"vn_out{s}", self.sizing, draw),
                              vsource(f"read{s}", f"rd{s}", "0", self.v_read_v)]
        return index_sweep(deck, len(pts))

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        amps = [-np.asarray(vectors[f"vread{s}#branch"], dtype=np.float64).real for s in range(self.size)]
        return np.stack(amps, axis=-1) / self.amps_per_unit


def slope_bench(sizing: CellSizing, amps_per_unit: float, v_ref_v: float = SOFTMAX_V_REF_V,
                steps_v: tuple[float, ...] = SLOPE_STEPS_V) -> Deck:
    """Two pair devices on a one-unit tail, gates at V_ref ± δ/2 (δ swept by index), drains at the
    output diodes' voltage (VDD − 0.4 V): ln(I_a/I_b) = δ/(n·U_T) gives n at the block's operating point."""
    card, md = sizing.card, sizing.m_diode
    w, ln = sizing.w_unit_m, sizing.l_unit_m
    deck = Deck("diff-pair slope factor", models=card.models())
    pts = np.array([[v_ref_v + d / 2, v_ref_v - d / 2] for d in steps_v])
    deck.elements += [*supplies(card), *indexed_inputs(pts, ["ga", "gb"]),
                      vsource("da", "da", "0", card.vdd_v - 0.4), vsource("db", "db", "0", card.vdd_v - 0.4),
                      card.mosfet("qa", "da", "ga", "cs", "0", "n", w, ln, md),
                      card.mosfet("qb", "db", "gb", "cs", "0", "n", w, ln, md),
                      isource("tail", "cs", "0", amps_per_unit)]
    return index_sweep(deck, len(pts))


def slope_n(vectors: Mapping[str, np.ndarray], steps_v: tuple[float, ...] = SLOPE_STEPS_V) -> float:
    """n = δ/(U_T·ln(I_a/I_b)) averaged over the steps of `slope_bench`'s simulated ``vectors``."""
    ia = -np.asarray(vectors["vda#branch"], dtype=np.float64).real
    ib = -np.asarray(vectors["vdb#branch"], dtype=np.float64).real
    return float(np.mean(np.asarray(steps_v) / (U_T_V * np.log(ia / ib))))
