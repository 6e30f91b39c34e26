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
from circuits.opamp import ActivationMatMul
from circuits.spice.blocks_logdomain import _LogDomain, _sum_difference
from circuits.spice.netlist import Element, bjt, resistor
from circuits.spice.opamp_macro import OpampMacro
from circuits.spice.opamp_stages import NOMINAL_TEMP_C, OpampBlock, check_positive, npn_card, transdiode, transimpedance


@dataclass(frozen=True, slots=True)
class MatMulBlock(_LogDomain):
    """y = Σₖ aₖ·bₖ over ``inner`` terms, |aₖ|, |bₖ| ≤ o − x_min (module doc); inputs a₀..a_{K−1}, b₀..b_{K−1}.

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
