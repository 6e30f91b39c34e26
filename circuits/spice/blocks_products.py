"""Activation×activation products on op-amps: one output of a matrix product y = Σₖ aₖ·bₖ.

Each term is the offset log/antilog multiplier of `blocks_logdomain.MultiplierBlock` (Sheingold,
*Nonlinear Circuits Handbook*, ch. 3; Tietze & Schenk §11.7): log stages take (aₖ + o)·I_u and
(bₖ + o)·I_u, a summing stage forms V_E(a) + V_E(b) − V_E(ref), and the output NPN draws
Iₖ = (aₖ + o)(bₖ + o)·I_u. The K output collectors share one transimpedance node, so Kirchhoff
sums the products for free; resistors from aₖ, bₖ (R_f/o) and one from the reference
(R_f·V_ref/(K·o²·V_unit)) remove the offset terms:

    V_o = R_f·(Σ Iₖ − Σ o·(aₖ + bₖ)·I_u − K·o²·I_u) = V_unit·Σₖ aₖ·bₖ,   R_f = V_unit/I_u

Offset scheme (not sign steering) because the operands are signals that cross zero all the
time: an offset keeps each log stage's current away from zero, so the product is continuous
through the origin, at the cost of subtracting o·a + o·b + o² exactly (resistor ratios).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from circuits.errors import ParameterError
from circuits.opamp import ActivationMatMul, LogExpDivider
from circuits.spice.blocks_logdomain import _LogDomain, _sum_difference
from circuits.spice.netlist import Element, bjt, resistor
from circuits.spice.opamp_macro import OpampMacro
from circuits.spice.blocks_select import weighted_difference
from circuits.spice.opamp_stages import (
    NOMINAL_TEMP_C, OpampBlock, check_positive, diode_card, half_wave, inverting_sum, npn_card, opamp, transdiode,
    transimpedance,
)


@dataclass(frozen=True, slots=True)
class MatMulBlock(_LogDomain):
    """y = Σₖ aₖ·bₖ over ``inner`` terms, |aₖ|, |bₖ| ≤ o − x_min (module doc).

    Inputs a₀..a_{K−1}, then b₀..b_{K−1}.

    3 op-amps and 3 NPNs per term plus a reference and the shared output stage. Full scale
    K·(o − x_min)². Tolerance 1 % FS, the multiplier's (log-domain errors scale each product).
    """

    kind: ClassVar[str] = "opamp.matmul"
    tolerance_pct_fs: ClassVar[float] = 1.0

    inner: int = 1
    volts_per_unit: float = 0.25
    i_unit_a: float = 1e-6
    v_ref_v: float = 1.0
    r_ohm: float = 10e3
    offset: float = 1.1
    x_min: float = 0.1
    temp_c: float = NOMINAL_TEMP_C
    opamp: OpampMacro = field(default_factory=OpampMacro.default)
    name: str = "matmul"

    def __post_init__(self) -> None:
        if not (isinstance(self.inner, int) and self.inner >= 1):
            raise ParameterError(f"MatMulBlock.inner: need an integer >= 1, got {self.inner!r}")
        check_positive("MatMulBlock", r_ohm=self.r_ohm, x_min=self.x_min, offset=self.offset)
        if not self.offset > self.x_min:
            raise ParameterError(f"MatMulBlock.offset: {self.offset} must exceed x_min {self.x_min}")
        self._check()

    @classmethod
    def from_primitive(cls, prim: ActivationMatMul, volts_per_unit: float = 0.25, **kw: object) -> MatMulBlock:
        return cls(int(prim.inner), volts_per_unit, **kw)  # type: ignore[arg-type]

    def n_inputs(self) -> int:
        return 2 * self.inner

    def input_range(self) -> tuple[float, float]:
        half = self.offset - self.x_min
        return (-half, half)

    def test_points(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return OpampBlock.test_points(self, n, rng)

    def full_scale(self) -> float:
        return self.inner * (self.offset - self.x_min) ** 2

    def ideal(self, points: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        a, b = p[:, None, : self.inner], p[:, self.inner:, None]
        return ActivationMatMul(inner=self.inner).ideal(a, b)[:, 0, 0]

    def elements(self) -> list[Element]:
        q, o, k = npn_card().name, self.offset, self.inner
        r_off = self.v_ref_v / (o * self.i_unit_a)
        r_f = self.r_in_ohm
        els = [*self._reference("er"), *transimpedance("to", "to_s", "y", r_f, self.opamp),
               resistor("oc", "vr", "to_s", r_f * self.v_ref_v / (k * o * o * self.volts_per_unit))]
        for j in range(k):
            a, b = f"x{j}", f"x{k + j}"
            els += [*transdiode(f"la{j}", [(a, self.r_in_ohm), ("vr", r_off)], f"ea{j}", q, self.opamp),
                    *transdiode(f"lb{j}", [(b, self.r_in_ohm), ("vr", r_off)], f"eb{j}", q, self.opamp),
                    *_sum_difference(f"s{j}", (f"ea{j}", f"eb{j}"), "er", f"es{j}", self.r_ohm, self.opamp),
                    bjt(f"o{j}", "to_s", "0", f"es{j}", q),
                    resistor(f"oa{j}", a, "to_s", r_f / o), resistor(f"ob{j}", b, "to_s", r_f / o)]
        return els


@dataclass(frozen=True, slots=True)
class FourQuadrantDividerBlock(_LogDomain):
    """y = a/b for signed a and b, |a| ≤ o − x_min and b_min ≤ |b| ≤ b_max.

    Numerator: offset, as in the multiplier. The log stage takes (a + o)·I_u, so one output
    NPN draws I₁ = (a + o)·I_u/|b| and a second, fed the offset alone, I₂ = o·I_u/|b|; the output
    transimpedance takes I₁ − I₂ (I₂'s own transimpedance output drives its R_f back into the
    first node): q = V_unit·a/|b|. An offset suits the numerator because a crosses zero freely.

    Denominator: sign steering, because no offset can carry a quotient across b = 0 (1/b is
    singular there): a precision full-wave rectifier gives |b| for the log stage, a comparator
    gives S = ±V_s with the sign of b, and the output is

        y = |q + S| − |S| = sgn(S)·q          for |S| > |q|  (two more full-wave rectifiers)

    which is exact whatever |S| is, so the comparator's saturated level needs no precision.
    Valid only outside |b| < b_min (the quotient's full scale there is A/b_min). Tolerance 1 % FS,
    the log-domain blocks'. (Sheingold, *Nonlinear Circuits Handbook*, ch. 3 (log dividers) and
    ch. 2 (absolute-value circuits); Tietze & Schenk §25.5.)
    """

    kind: ClassVar[str] = "opamp.divider"
    tolerance_pct_fs: ClassVar[float] = 1.0

    volts_per_unit: float = 0.25
    i_unit_a: float = 1e-6
    v_ref_v: float = 1.0
    r_ohm: float = 10e3
    offset: float = 1.1
    x_min: float = 0.1
    b_min: float = 0.1
    b_max: float = 1.0
    temp_c: float = NOMINAL_TEMP_C
    opamp: OpampMacro = field(default_factory=OpampMacro.default)
    name: str = "divider4q"

    def __post_init__(self) -> None:
        check_positive("FourQuadrantDividerBlock", r_ohm=self.r_ohm, x_min=self.x_min, offset=self.offset,
                       b_min=self.b_min, b_max=self.b_max)
        if not self.offset > self.x_min:
            raise ParameterError(f"FourQuadrantDividerBlock.offset: {self.offset} must exceed x_min {self.x_min}")
        if not self.b_min < self.b_max:
            raise ParameterError(f"FourQuadrantDividerBlock.b_min ({self.b_min}) must be below b_max ({self.b_max})")
        if self.full_scale() * self.volts_per_unit + self.v_steer_v > 0.9 * self.opamp.v_rail_pos_v:
            raise ParameterError(f"FourQuadrantDividerBlock.b_min: quotients up to {self.full_scale():.3g} units at "
                                 f"{self.volts_per_unit} V leave no room for the sign steering (|q| + |S| must stay "
                                 f"inside the rails); raise b_min or lower volts_per_unit")
        self._check()

    @classmethod
    def from_primitive(cls, prim: LogExpDivider, volts_per_unit: float = 0.25,
                       **kw: object) -> FourQuadrantDividerBlock:
        return cls(volts_per_unit, **kw)  # type: ignore[arg-type]

    def n_inputs(self) -> int:
        return 2

    @property
    def a_max(self) -> float:
        return self.offset - self.x_min

    def input_range(self) -> tuple[float, float]:
        return (-max(self.a_max, self.b_max), max(self.a_max, self.b_max))

    def test_points(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """a uniform in ±(o − x_min); |b| log-uniform in [b_min, b_max] with a random sign; sorted by b,
        so a DC sweep flips the comparator once (a sweep jumping across b = 0 at every step can
        leave ngspice on a false operating point in a mismatched instance)."""
        a = rng.uniform(-self.a_max, self.a_max, n)
        mag = np.exp(rng.uniform(np.log(self.b_min), np.log(self.b_max), n))
        pts = np.stack([a, mag * rng.choice([-1.0, 1.0], n)], axis=1)
        return pts[np.argsort(pts[:, 1], kind="stable")]

    def full_scale(self) -> float:
        return self.a_max / self.b_min

    @property
    def v_steer_v(self) -> float:
        """|S|: 1.5× the largest quotient's voltage."""
        return 1.5 * self.full_scale() * self.volts_per_unit

    def ideal(self, points: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        return LogExpDivider().ideal(p[:, 0], p[:, 1])

    def models(self) -> list[str]:
        return [npn_card().text, diode_card().text]

    def _abs(self, prefix: str, inputs: list[str], out: str) -> list[Element]:
        """out = |Σ V(inputs)|: half-wave stage h = −relu(ΣV), then out = −(2h + ΣV)."""
        r, d = self.r_ohm, diode_card().name
        h = f"{prefix}_h"
        return [*half_wave(prefix, [(n, r) for n in inputs], (h, r), None, d, self.opamp),
                *inverting_sum(f"{prefix}_sum", out, [(h, 2.0), *((n, 1.0) for n in inputs)], r, self.opamp)]

    def elements(self) -> list[Element]:
        q, o, r_in = npn_card().name, self.offset, self.r_in_ohm
        r_off = self.v_ref_v / (o * self.i_unit_a)
        v_rail = self.opamp.v_rail_pos_v
        r_load = self.r_ohm / 5.0  # r_bot in parallel with the four rectifier inputs S drives
        r_top = r_load * (v_rail / self.v_steer_v - 1.0)
        return [
            *self._reference("er"),
            *self._abs("ab", ["x1"], "bab"),  # |b|
            *transdiode("la", [("x0", r_in), ("vr", r_off)], "ea", q, self.opamp),  # (a + o)·I_u
            *transdiode("lb", [("bab", r_in)], "eb", q, self.opamp),  # |b|·I_u
            *transdiode("lo", [("vr", r_off)], "eo", q, self.opamp),  # o·I_u
            *_sum_difference("s1", ("ea", "er"), "eb", "es1", self.r_ohm, self.opamp),
            *_sum_difference("s2", ("eo", "er"), "eb", "es2", self.r_ohm, self.opamp),
            bjt("o1", "t1_s", "0", "es1", q), bjt("o2", "t2_s", "0", "es2", q),
            *transimpedance("t2", "t2_s", "u2", r_in, self.opamp),
            *transimpedance("t1", "t1_s", "qv", r_in, self.opamp),
            resistor("t1_sub", "u2", "t1_s", r_in),  # V(qv) = R·(I₁ − I₂)
            opamp("cmp", "x1", "0", "cmp_o", self.opamp),  # comparator: ±rail with the sign of b
            resistor("st_top", "cmp_o", "s", r_top), resistor("st_bot", "s", "0", self.r_ohm),
            *self._abs("au", ["qv", "s"], "uab"), *self._abs("as", ["s"], "sab"),
            *weighted_difference("out", [("uab", 1.0)], [("sab", 1.0)], "y", self.r_ohm, self.opamp),
        ]
