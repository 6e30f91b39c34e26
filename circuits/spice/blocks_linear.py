"""Linear op-amp blocks: weighted summers (a layer row, an elementwise sum), integrator, differentiator.

Design equations (inverting summer, Horowitz & Hill, *The Art of Electronics* 3rd ed. §4.2.4):

    V_o = −R_f·Σ V_k/R_k                         R_k = R_f/|w_k|
    positive weight: the input goes through a unity inverter (R_f, R_f) first
    bias b:          reference −sign(b)·V_ref through R_b = R_f·V_ref/|b·V_unit|

so V_o = Σ w_k·V_k + b·V_unit with V = V_unit·x (``volts_per_unit``). The seed's analog-computer
example V_o = −0.35·V1 + 5.24·V2 + 2.6 is ``SummerBlock((-0.35, 5.24), 2.6)``: V2 inverted,
one summer with R_1 = R_f/0.35, R_2 = R_f/5.24, and R_b = R_f·10 V/2.6 V from −10 V.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from circuits import ideal as ideal_fn

from circuits.errors import ParameterError
from circuits.opamp import AveragingSummer, ElementwiseSummer, InvertingSummerArray
from circuits.spice.netlist import Deck, Element, bsource, capacitor, fmt, resistor, vsource
from circuits.spice.opamp_macro import OpampMacro
from circuits.spice.opamp_stages import (
    OUT_NODE, OpampBlock, check_finite, check_positive, inverting_sum, opamp, reference,
)


@dataclass(frozen=True, slots=True)
class SummerBlock(OpampBlock):
    """One output of an inverting summer array: V_o = Σ w_k·V_k + b·V_unit (see the module docstring).

    Full scale (model units) is the largest output over the input box |x_k| ≤ ``input_limit``:
    Σ|w_k|·input_limit + |b|. The op-amps' finite gain (noise gain 1 + Σ|w_k| + R_f/R_b)
    gives a relative error of about noise_gain/A_0, well inside the 0.1 % tolerance.
    """

    kind: ClassVar[str] = "opamp.summer"
    tolerance_pct_fs: ClassVar[float] = 0.1

    weights: tuple[float, ...]
    bias: float = 0.0
    volts_per_unit: float = 1.0
    r_f_ohm: float = 100e3
    v_ref_v: float = 10.0
    input_limit: float = 1.0
    opamp: OpampMacro = field(default_factory=OpampMacro.default)
    name: str = "summer"

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64).ravel()
        if w.size == 0 or not np.all(np.isfinite(w)):
            raise ParameterError(f"{type(self).__name__}.weights: need at least one finite weight, got {self.weights!r}")
        object.__setattr__(self, "weights", tuple(float(v) for v in w))
        object.__setattr__(self, "bias", float(self.bias))
        check_finite(type(self).__name__, bias=self.bias)
        check_positive(type(self).__name__, volts_per_unit=self.volts_per_unit, r_f_ohm=self.r_f_ohm,
                       v_ref_v=self.v_ref_v, input_limit=self.input_limit)
        self.warn_swing()

    @classmethod
    def from_primitive(cls, prim: InvertingSummerArray, row: int, volts_per_unit: float = 1.0,
                       **kw: object) -> SummerBlock:
        """Row ``row`` of the (groups·out, in) weight matrix, with its bias."""
        w = np.asarray(prim.weights, dtype=np.float64)
        rows = w.reshape(-1, w.shape[-1])
        if not 0 <= row < len(rows):
            raise ParameterError(f"row: {row} is outside the {len(rows)} outputs of the summer array")
        b = 0.0 if prim.bias is None else float(np.asarray(prim.bias, dtype=np.float64).ravel()[row])
        return cls(tuple(rows[row]), b, volts_per_unit, **kw)  # type: ignore[arg-type]

    def n_inputs(self) -> int:
        return len(self.weights)

    def input_range(self) -> tuple[float, float]:
        return (-self.input_limit, self.input_limit)

    def full_scale(self) -> float:
        return float(np.sum(np.abs(self.weights)) * self.input_limit + abs(self.bias)) or 1.0

    def ideal(self, points: np.ndarray) -> np.ndarray:
        w = np.asarray(self.weights, dtype=np.float64)
        return ideal_fn.dense(np.atleast_2d(points), w[None, :], np.asarray([self.bias], np.float64))[:, 0]

    def resistors(self) -> dict[str, float]:
        """The design: input resistors R_k (inf for a zero weight), and R_b if there is a bias."""
        out = {f"r_{k}_ohm": (self.r_f_ohm / abs(w) if w else math.inf) for k, w in enumerate(self.weights)}
        if self.bias:
            out["r_b_ohm"] = self.r_f_ohm * self.v_ref_v / abs(self.bias * self.volts_per_unit)
        return out

    def elements(self) -> list[Element]:
        els: list[Element] = []
        terms: list[tuple[str, float]] = []
        for k, w in enumerate(self.weights):
            if w == 0:
                continue
            src = f"x{k}"
            if w > 0:  # unity inverter: V = −V_k
                els += inverting_sum(f"inv{k}", f"xn{k}", [(src, 1.0)], self.r_f_ohm, self.opamp)
                src = f"xn{k}"
            terms.append((src, abs(w)))
        if self.bias:
            els.append(reference("ref", "vref", -math.copysign(self.v_ref_v, self.bias)))
            terms.append(("vref", abs(self.bias) * self.volts_per_unit / self.v_ref_v))
        return els + inverting_sum("sum", "y", terms, self.r_f_ohm, self.opamp)


@dataclass(frozen=True, slots=True)
class ElementwiseSummerBlock(SummerBlock):
    """One element of an elementwise weighted sum y = Σ g_k·x_k + b: the same summer circuit."""

    kind: ClassVar[str] = "opamp.elementwise_summer"

    @classmethod
    def from_primitive(cls, prim: ElementwiseSummer, index: int, volts_per_unit: float = 1.0,  # type: ignore[override]
                       **kw: object) -> ElementwiseSummerBlock:
        """Gains and bias at flat position ``index`` of their broadcast shape (cyclic for larger tensors)."""
        arrays = np.broadcast_arrays(*(np.asarray(g, dtype=np.float64) for g in prim.gains),
                                     np.asarray(0.0 if prim.bias is None else prim.bias, dtype=np.float64))
        k = index % arrays[0].size
        return cls(tuple(float(a.ravel()[k]) for a in arrays[:-1]), float(arrays[-1].ravel()[k]),
                   volts_per_unit, **kw)  # type: ignore[arg-type]


def averaging_block(prim: AveragingSummer, index: int, volts_per_unit: float = 1.0, **kw: object) -> SummerBlock:
    """An equal-resistor summer over a window: y = gain·Σ x (gain at flat position ``index``)."""
    gain = np.asarray(prim.gain, dtype=np.float64).ravel()
    return SummerBlock((float(gain[index % gain.size]),) * prim.window, 0.0, volts_per_unit, **kw)  # type: ignore[arg-type]


def _reset_switch(name: str, a: str, b: str, r_ohm: float, closed_when_reset: bool) -> Element:
    """A resistor R between a and b switched by V(rst) (1 V = reset/IC mode, 0 V = operate)."""
    ctl = "V(rst)" if closed_when_reset else "(1-V(rst))"
    return bsource(name, a, b, f"{ctl}*(V({a})-V({b}))/{fmt(r_ohm)}", current=True)


@dataclass(frozen=True, slots=True)
class IntegratorBlock(OpampBlock):
    """Inverting integrator with an initial-condition mode: y = y0 − (1/τ)·∫x dt, τ = R·C.

    V_o = −(1/RC)·∫V_i dt (Horowitz & Hill §4.2.6). Reset (IC) mode, as on an analog computer:
    while V(rst) = 1 V the input is disconnected and R_r from −y0·V_unit with R_r across C
    make an inverter, so C charges to the initial output y0 in a few R_r·C; at V(rst) = 0 V
    integration starts from y0. The switches are conductances driven by V(rst) (B-sources).

    An integrator has no DC transfer, so its ``dc_bench`` is a transient: for each point it
    resets, integrates the constant input for ``window_s`` and samples, giving
    y = y0 − (window_s/τ)·x (the ``ideal``).
    """

    kind: ClassVar[str] = "opamp.integrator"
    tolerance_pct_fs: ClassVar[float] = 1.0
    dynamic: ClassVar[bool] = True

    tau_s: float = 1e-3
    y0: float = 0.0
    volts_per_unit: float = 1.0
    r_ohm: float = 100e3
    r_reset_ohm: float = 1e3
    window_s: float = 1e-3
    input_limit: float = 1.0
    opamp: OpampMacro = field(default_factory=OpampMacro.default)
    name: str = "integrator"

    def __post_init__(self) -> None:
        check_finite(type(self).__name__, y0=self.y0)
        check_positive(type(self).__name__, tau_s=self.tau_s, volts_per_unit=self.volts_per_unit, r_ohm=self.r_ohm,
                       r_reset_ohm=self.r_reset_ohm, window_s=self.window_s, input_limit=self.input_limit)
        self.warn_swing()

    @property
    def c_f(self) -> float:
        return self.tau_s / self.r_ohm

    @property
    def t_reset_s(self) -> float:
        """IC-mode time: 20 time constants R_r·C (settled to e⁻²⁰)."""
        return 20 * self.r_reset_ohm * self.c_f

    def n_inputs(self) -> int:
        return 1

    def ports(self) -> tuple[str, ...]:
        return ("x0", "rst", "y")

    def input_range(self) -> tuple[float, float]:
        return (-self.input_limit, self.input_limit)

    def full_scale(self) -> float:
        return abs(self.y0) + self.window_s / self.tau_s * self.input_limit

    def ideal(self, points: np.ndarray) -> np.ndarray:
        return self.y0 - self.window_s / self.tau_s * np.atleast_2d(points)[:, 0]

    def elements(self) -> list[Element]:
        return [opamp("int", "0", "s", "y", self.opamp), capacitor("int", "s", "y", self.c_f),
                _reset_switch("in", "x0", "s", self.r_ohm, closed_when_reset=False),
                _reset_switch("rfb", "y", "s", self.r_reset_ohm, closed_when_reset=True),
                reference("ic", "vic", -self.y0 * self.volts_per_unit),
                _reset_switch("ric", "vic", "s", self.r_reset_ohm, closed_when_reset=True)]

    def _edge_s(self) -> float:
        return 1e-3 * self.t_reset_s

    def tran_bench(self, x: float, t_stop_s: float | None = None) -> Deck:
        """Reset for t_reset_s, then integrate the constant input x (model units) until t_stop_s."""
        t_r, e = self.t_reset_s, self._edge_s()
        t_stop = t_stop_s if t_stop_s is not None else t_r + self.window_s
        deck = self.bench_deck(f"{self.kind} {self.name} ramp bench", ["in0", "rst", OUT_NODE])
        deck.elements += [vsource("x", "in0", "0", x * self.volts_per_unit),
                          vsource("rst", "rst", "0", 1.0, pwl=[(0.0, 1.0), (t_r - e, 1.0), (t_r, 0.0)])]
        return deck.tran(self.window_s / 200, t_stop)

    def dc_bench(self, points: np.ndarray) -> Deck:
        xs = np.atleast_2d(np.asarray(points, dtype=np.float64))[:, 0] * self.volts_per_unit
        t_r, e, period = self.t_reset_s, self._edge_s(), self.t_reset_s + self.window_s
        rst, inp = [(0.0, 1.0)], [(0.0, float(xs[0]))]
        for i, v in enumerate(xs):
            t0 = i * period
            if i:
                rst += [(t0, 0.0), (t0 + e, 1.0)]
                inp += [(t0 + e, float(xs[i - 1])), (t0 + 2 * e, float(v))]
            rst += [(t0 + t_r - e, 1.0), (t0 + t_r, 0.0)]
        deck = self.bench_deck(f"{self.kind} {self.name} reset-integrate bench, {len(xs)} points",
                               ["in0", "rst", OUT_NODE])
        deck.elements += [vsource("x", "in0", "0", float(xs[0]), pwl=inp),
                          vsource("rst", "rst", "0", 1.0, pwl=rst)]
        return deck.tran(self.window_s / 100, len(xs) * period)

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        """The output at the end of each integration window (model units)."""
        t = np.asarray(vectors["time"]).real
        period = self.t_reset_s + self.window_s
        n = round(t[-1] / period)
        return np.interp(period * np.arange(1, n + 1), t, np.asarray(vectors[OUT_NODE]).real) / self.volts_per_unit


@dataclass(frozen=True, slots=True)
class DifferentiatorBlock(OpampBlock):
    """Inverting differentiator: y = −τ·dx/dt, τ = R_f·C, with a series R_s for stability.

    V_o(s) = −s·R_f·C/(1 + s·R_s·C)·V_i(s) (Tietze & Schenk §12.3): R_s caps the noise gain at
    1 + R_f/R_s (21 here) and places its corner (1/(2π·R_s·C) = 3.2 kHz) well below the loop
    crossover (GBW/21 ≈ 48 kHz), so the loop is well damped; a ramp's output settles in R_s·C.

    Its ``dc_bench`` is a transient: point x is a triangle of slopes ±x/τ (model units per
    second), sampled at the apex, where y = −x (the ``ideal``).
    """

    kind: ClassVar[str] = "opamp.differentiator"
    tolerance_pct_fs: ClassVar[float] = 1.0
    dynamic: ClassVar[bool] = True

    tau_s: float = 1e-3
    volts_per_unit: float = 1.0
    r_f_ohm: float = 100e3
    r_s_ohm: float = 5e3
    window_s: float = 1e-3
    input_limit: float = 1.0
    opamp: OpampMacro = field(default_factory=OpampMacro.default)
    name: str = "differentiator"

    def __post_init__(self) -> None:
        check_positive(type(self).__name__, tau_s=self.tau_s, volts_per_unit=self.volts_per_unit,
                       r_f_ohm=self.r_f_ohm, r_s_ohm=self.r_s_ohm, window_s=self.window_s,
                       input_limit=self.input_limit)
        self.warn_swing()

    @property
    def c_f(self) -> float:
        return self.tau_s / self.r_f_ohm

    def n_inputs(self) -> int:
        return 1

    def input_range(self) -> tuple[float, float]:
        return (-self.input_limit, self.input_limit)

    def full_scale(self) -> float:
        return self.input_limit

    def ideal(self, points: np.ndarray) -> np.ndarray:
        return -np.atleast_2d(points)[:, 0]

    def elements(self) -> list[Element]:
        return [opamp("dif", "0", "s", "y", self.opamp), capacitor("dif", "x0", "m", self.c_f),
                resistor("s", "m", "s", self.r_s_ohm), resistor("f", "y", "s", self.r_f_ohm)]

    def tran_bench(self, slope: float, t_stop_s: float) -> Deck:
        """Input ramp of ``slope`` model units per τ from t = 0 to t_stop_s."""
        v_end = slope * self.volts_per_unit * t_stop_s / self.tau_s
        deck = self.bench_deck(f"{self.kind} {self.name} ramp bench")
        deck.elements.append(vsource("x", "in0", "0", 0.0, pwl=[(0.0, 0.0), (t_stop_s, v_end)]))
        return deck.tran(self.window_s / 200, t_stop_s)

    def dc_bench(self, points: np.ndarray) -> Deck:
        xs = np.atleast_2d(np.asarray(points, dtype=np.float64))[:, 0]
        w = self.window_s
        pwl = [(0.0, 0.0)]
        for i, x in enumerate(xs):
            apex = x * self.volts_per_unit * w / self.tau_s
            pwl += [((2 * i + 1) * w, float(apex)), ((2 * i + 2) * w, 0.0)]
        deck = self.bench_deck(f"{self.kind} {self.name} triangle bench, {len(xs)} points")
        deck.elements.append(vsource("x", "in0", "0", 0.0, pwl=pwl))
        return deck.tran(w / 100, 2 * len(xs) * w)

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        """The output at each triangle's apex (end of its rising ramp), model units."""
        t = np.asarray(vectors["time"]).real
        n = round(t[-1] / (2 * self.window_s))
        apex = (2 * np.arange(n) + 1) * self.window_s
        return np.interp(apex, t, np.asarray(vectors[OUT_NODE]).real) / self.volts_per_unit
