"""Nonlinear op-amp blocks: precision rectifier, precision clipper, BJT differential-pair tanh/sigmoid.

The log-domain blocks (log, antilog, multiplier, divider) live in `circuits.spice.blocks_logdomain`
and are re-exported here. Diodes and NPNs use Kelvin's generic cards in ``models/devices/``;
a block's ``models()`` gives the card text its deck must carry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from circuits import ideal as ideal_fn
from circuits.errors import ParameterError
from circuits.opamp import Clipper, DiffPairActivation, PrecisionRectifier
from circuits.spice.blocks_logdomain import AntilogBlock, DividerBlock, LogBlock, MultiplierBlock
from circuits.spice.netlist import Element, bjt, isource, resistor
from circuits.spice.opamp_macro import OpampMacro
from circuits.spice.opamp_stages import (
    NOMINAL_TEMP_C, OpampBlock, check_finite, check_positive, diode_card, half_wave, inverting_sum, npn_card,
    opamp, reference, thermal_voltage_v,
)

__all__ = ["AntilogBlock", "ClipperBlock", "DiffPairBlock", "DividerBlock", "LogBlock", "MultiplierBlock",
           "RectifierBlock"]


@dataclass(frozen=True, slots=True)
class RectifierBlock(OpampBlock):
    """Precision half-wave rectifier and output summer: y = max(0, x) + s·min(0, x), s ≥ 0.

    Stage 1 (inverting superdiode rectifier, Tietze & Schenk §25.5) steers the input current
    I = V/R through one of two diode branches: h₊ = −V for V > 0, h₋ = −s·V for V < 0 (R_s = s·R);
    the loop gain divides the diode drops. Stage 2 sums y = −(h₊ + h₋). Without leak (s = 0)
    the negative branch is a bare clamp diode. Full scale: max(1, s)·input_limit.
    """

    kind: ClassVar[str] = "opamp.rectifier"
    tolerance_pct_fs: ClassVar[float] = 0.1

    negative_slope: float = 0.0
    volts_per_unit: float = 1.0
    r_ohm: float = 10e3
    input_limit: float = 1.0
    opamp: OpampMacro = field(default_factory=OpampMacro.default)
    name: str = "rectifier"

    def __post_init__(self) -> None:
        check_finite("RectifierBlock", negative_slope=self.negative_slope)
        if self.negative_slope < 0:
            raise ParameterError(f"RectifierBlock.negative_slope: the diode-steered circuit needs a slope >= 0, "
                                 f"got {self.negative_slope}")
        check_positive("RectifierBlock", volts_per_unit=self.volts_per_unit, r_ohm=self.r_ohm,
                       input_limit=self.input_limit)
        self.warn_swing()

    @classmethod
    def from_primitive(cls, prim: PrecisionRectifier, volts_per_unit: float = 1.0, **kw: object) -> RectifierBlock:
        return cls(float(prim.negative_slope), volts_per_unit, **kw)  # type: ignore[arg-type]

    def models(self) -> list[str]:
        return [diode_card().text]

    def n_inputs(self) -> int:
        return 1

    def input_range(self) -> tuple[float, float]:
        return (-self.input_limit, self.input_limit)

    def full_scale(self) -> float:
        return max(1.0, self.negative_slope) * self.input_limit

    def ideal(self, points: np.ndarray) -> np.ndarray:
        return ideal_fn.rectify(np.atleast_2d(points)[:, 0], self.negative_slope)

    def elements(self) -> list[Element]:
        s, r = self.negative_slope, self.r_ohm
        neg = ("hn", s * r) if s > 0 else None
        els = half_wave("rect", [("x0", r)], ("hp", r), neg, diode_card().name, self.opamp)
        terms = [("hp", 1.0)] + ([("hn", 1.0)] if s > 0 else [])
        return els + inverting_sum("sum", "y", terms, r, self.opamp)


@dataclass(frozen=True, slots=True)
class ClipperBlock(OpampBlock):
    """Precision clipper y = min(max(x, low), high) from two half-wave stages (4 op-amps).

    clip(x) = x − relu(x − high) + relu(low − x): an inverter gives a = −V; each stage sums a
    and a reference (R_ref = R·V_ref/|bound·V_unit|) and passes one polarity, giving
    relu(x − high)·V_unit and −relu(low − x)·V_unit; the output summer returns −(a + both).
    Precise to the op-amp's gain (the diodes sit inside the loops), unlike a bare diode limiter.
    An infinite bound drops its stage.
    """

    kind: ClassVar[str] = "opamp.clipper"
    tolerance_pct_fs: ClassVar[float] = 0.1

    low: float = -math.inf
    high: float = math.inf
    volts_per_unit: float = 1.0
    r_ohm: float = 10e3
    v_ref_v: float = 10.0
    opamp: OpampMacro = field(default_factory=OpampMacro.default)
    name: str = "clipper"

    def __post_init__(self) -> None:
        for key in ("low", "high"):
            v = getattr(self, key)
            if not isinstance(v, (int, float)) or math.isnan(v):
                raise ParameterError(f"ClipperBlock.{key}: expected a number, got {v!r}")
        if not self.low <= self.high:
            raise ParameterError(f"ClipperBlock.low ({self.low}) must not exceed high ({self.high})")
        check_positive("ClipperBlock", volts_per_unit=self.volts_per_unit, r_ohm=self.r_ohm, v_ref_v=self.v_ref_v)
        self.warn_swing()

    @classmethod
    def from_primitive(cls, prim: Clipper, volts_per_unit: float = 1.0, **kw: object) -> ClipperBlock:
        return cls(float(prim.low), float(prim.high), volts_per_unit, **kw)  # type: ignore[arg-type]

    def models(self) -> list[str]:
        return [diode_card().text]

    def n_inputs(self) -> int:
        return 1

    def input_range(self) -> tuple[float, float]:
        """Half a clipping span beyond each bound (one unit, or the bound's size, if a side is open)."""
        lo, hi = self.low, self.high
        if math.isfinite(lo) and math.isfinite(hi):
            half = max((hi - lo) / 2, 0.5)
            return (lo - half, hi + half)
        if math.isfinite(hi):
            w = max(1.0, abs(hi))
            return (hi - 2 * w, hi + w)
        if math.isfinite(lo):
            w = max(1.0, abs(lo))
            return (lo - w, lo + 2 * w)
        return (-1.0, 1.0)

    def full_scale(self) -> float:
        return float(np.max(np.abs(self.ideal(np.array([self.input_range()]).T)))) or 1.0

    def ideal(self, points: np.ndarray) -> np.ndarray:
        return ideal_fn.clip(np.atleast_2d(points)[:, 0], self.low, self.high)

    def _stage_inputs(self, bound: float, ref_node: str) -> tuple[list[tuple[str, float]], list[Element]]:
        """Summing-node inputs a (R) and the bound's reference (R_ref), plus the reference source."""
        if bound == 0:
            return [("a", self.r_ohm)], []
        r_ref = self.r_ohm * self.v_ref_v / abs(bound * self.volts_per_unit)
        return [("a", self.r_ohm), (ref_node, r_ref)], [reference(ref_node, ref_node, math.copysign(self.v_ref_v, bound))]

    def elements(self) -> list[Element]:
        d, r = diode_card().name, self.r_ohm
        els = inverting_sum("inv", "a", [("x0", 1.0)], r, self.opamp)
        terms = [("a", 1.0)]
        if math.isfinite(self.high):  # I = (high − x)·V_unit/R; passes I < 0: hh = relu(x − high)·V_unit
            ins, refs = self._stage_inputs(self.high, "vh")
            els += refs + half_wave("hi", ins, None, ("hh", r), d, self.opamp)
            terms.append(("hh", 1.0))
        if math.isfinite(self.low):  # I = (low − x)·V_unit/R; passes I > 0: hl = −relu(low − x)·V_unit
            ins, refs = self._stage_inputs(self.low, "vl")
            els += refs + half_wave("lo", ins, ("hl", r), None, d, self.opamp)
            terms.append(("hl", 1.0))
        return els + inverting_sum("sum", "y", terms, r, self.opamp)


@dataclass(frozen=True, slots=True)
class DiffPairBlock(OpampBlock):
    """BJT differential pair and difference transimpedance stage: y = tanh(x) or sigmoid(x).

    I_C1 − I_C2 = α·I_EE·tanh(ΔV_BE/(2·n·V_T))  (Gray, Hurst, Lewis & Meyer §3.5.1)

    Input: two matched dividers (R_a, R_b) from V_in and from ground to the common-mode
    reference give ΔV_BE = k·V_in with k = R_b/(R_a + R_b) = c·n·V_T/V_unit (c = 2 for tanh,
    1 for sigmoid = (1 + tanh(x/2))/2). Output: one op-amp with R_f from each collector
    node (feedback, and to ground) gives y = R_f·(I_C1 − I_C2) with R_f = c_o·V_unit/(α·I_EE),
    c_o = 1 (tanh) or ½ (sigmoid, plus V_unit/2 from −V_ref through R_o = 2·R_f·V_ref/V_unit,
    balanced by R_o to ground on the other side). The collectors sit at the op-amp's virtual
    short, so both see the same V_CE (Early effects cancel). α = BF/(1 + BF) from the card.
    Residual error: base currents through the dividers, emitter resistance, β(I_C): <0.5 % FS.
    """

    kind: ClassVar[str] = "opamp.diffpair"
    tolerance_pct_fs: ClassVar[float] = 0.5

    function: Literal["tanh", "sigmoid"] = "tanh"
    volts_per_unit: float = 1.0
    i_tail_a: float = 100e-6
    r_div_ohm: float = 100.0
    v_ref_v: float = 10.0
    temp_c: float = NOMINAL_TEMP_C
    opamp: OpampMacro = field(default_factory=OpampMacro.default)
    name: str = "diffpair"

    def __post_init__(self) -> None:
        if self.function not in ("tanh", "sigmoid"):
            raise ParameterError(f"DiffPairBlock.function: expected 'tanh' or 'sigmoid', got {self.function!r}")
        check_positive("DiffPairBlock", volts_per_unit=self.volts_per_unit, i_tail_a=self.i_tail_a,
                       r_div_ohm=self.r_div_ohm, v_ref_v=self.v_ref_v)
        check_finite("DiffPairBlock", temp_c=self.temp_c)
        if not self.k_in < 1:
            raise ParameterError(f"DiffPairBlock.volts_per_unit: {self.volts_per_unit} V is below the pair's "
                                 f"input scale (need > {self.k_in * self.volts_per_unit:.3g} V per unit)")

    @classmethod
    def from_primitive(cls, prim: DiffPairActivation, volts_per_unit: float = 1.0, **kw: object) -> DiffPairBlock:
        return cls(prim.function, volts_per_unit, **kw)  # type: ignore[arg-type]

    @property
    def n_vt_v(self) -> float:
        return npn_card().get("nf", 1.0) * thermal_voltage_v(self.temp_c)

    @property
    def k_in(self) -> float:
        """ΔV_BE per volt of input: c·n·V_T/V_unit."""
        return (2.0 if self.function == "tanh" else 1.0) * self.n_vt_v / self.volts_per_unit

    @property
    def r_f_ohm(self) -> float:
        bf = npn_card().get("bf", 100.0)
        return (1.0 if self.function == "tanh" else 0.5) * self.volts_per_unit * (1 + bf) / (bf * self.i_tail_a)

    def models(self) -> list[str]:
        return [npn_card().text]

    def temperature_c(self) -> float:
        return self.temp_c

    def n_inputs(self) -> int:
        return 1

    def input_range(self) -> tuple[float, float]:
        return (-3.0, 3.0) if self.function == "tanh" else (-6.0, 6.0)

    def full_scale(self) -> float:
        return 1.0

    def ideal(self, points: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(points)[:, 0]
        return ideal_fn.tanh(x) if self.function == "tanh" else ideal_fn.sigmoid(x)

    def elements(self) -> list[Element]:
        k, rb = self.k_in, self.r_div_ohm
        ra = rb * (1 - k) / k
        v_cm = -(1.5 + self.volts_per_unit)  # keeps V_CB > 0.5 V over the whole output swing
        q = npn_card().name
        els = [reference("cm", "vcm", v_cm), reference("ee", "vee", self.opamp.v_rail_neg_v - 1.0),
               resistor("a1", "x0", "b1", ra), resistor("b1", "b1", "vcm", rb),
               resistor("a2", "0", "b2", ra), resistor("b2", "b2", "vcm", rb),
               bjt("1", "on", "b1", "e", q), bjt("2", "op", "b2", "e", q), isource("tail", "e", "vee", self.i_tail_a),
               opamp("out", "op", "on", "y", self.opamp),
               resistor("f1", "y", "on", self.r_f_ohm), resistor("f2", "op", "0", self.r_f_ohm)]
        if self.function == "sigmoid":
            r_o = 2 * self.r_f_ohm * self.v_ref_v / self.volts_per_unit
            els += [reference("rn", "vrn", -self.v_ref_v), resistor("o1", "vrn", "on", r_o), resistor("o2", "op", "0", r_o)]
        return els
