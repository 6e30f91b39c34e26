"""Log-domain op-amp blocks: log, antilog, multiplier and divider on transdiode NPNs with a reference.

Every block carries a reference transdiode at the unit current I_u, so the NPN's I_S cancels
between matched transistors (Tietze & Schenk §11.7.2-3; Sheingold, *Nonlinear Circuits
Handbook*, Analog Devices 1976, ch. 3):

    transdiode:   V_E = −n·V_T·ln(I/I_S)                       (I = V/R into a virtual ground)
    difference:   V_E(ref) − V_E(x) = n·V_T·ln(I_x/I_u) = n·V_T·ln(x)     (I_x = x·I_u)
    antilog:      I_C = I_S·exp(V_BE/(n·V_T)) with V_BE = n·V_T·ln(I_u/I_S) + n·V_T·x  →  I_C = I_u·eˣ

Model units: an input x in volts is x·V_unit, and R_in = V_unit/I_u makes I = x·I_u. The only
device constants left are n (the card's NF), V_T = kT/q at ``temp_c`` and a first-order reverse-Early
correction from VAR and IS (see `_LogDomain.n_vt_v`), all used analytically;
the temperature drift of V_T (0.33 %/K) is not compensated (a real design adds a PTC resistor).
The blocks are one-quadrant (inputs > 0); `MultiplierBlock(offset=o)` accepts signed operands.

Four quadrants. Multiplication uses an offset (each operand enters its log stage as a + o > 0 and
the cross terms o·a + o·b + o² are removed by resistors): signals cross zero all the time, and an
offset keeps the product continuous through zero with nothing but linear corrections. Division
(`blocks_products.FourQuadrantDividerBlock`, the library's ``opamp.divider``) uses an offset for
the numerator but sign steering for the denominator: a/b is singular at b = 0, so no offset can
carry it across; the log stage takes |b| and a comparator on b flips the quotient's sign.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from circuits import ideal as ideal_fn

from circuits.errors import ParameterError
from circuits.opamp import AntilogAmp, LogAmp, LogExpDivider, LogExpMultiplier
from circuits.spice.netlist import Element, bjt, resistor
from circuits.spice.opamp_macro import OpampMacro
from circuits.spice.opamp_stages import (
    NOMINAL_TEMP_C, OpampBlock, check_finite, check_positive, difference, npn_card, opamp, reference,
    thermal_voltage_v, transdiode, transimpedance,
)


class _LogDomain(OpampBlock):
    """Shared parts: the NPN card, n·V_T, the reference transdiode and the unit input resistor."""

    volts_per_unit: float
    i_unit_a: float
    v_ref_v: float
    temp_c: float

    def models(self) -> list[str]:
        return [npn_card().text]

    def temperature_c(self) -> float:
        return self.temp_c

    @property
    def n_vt_v(self) -> float:
        """Volts per e-fold of collector current near I_u: n·V_T·(1 + n·V_T/(VAR − V_BE)).

        Gummel-Poon's q1 = 1/(1 − V_BC/VAF − V_BE/VAR) makes I_C ∝ exp(V_BE/(n·V_T))·(1 − V_BE/VAR)
        at V_BC = 0, stretching the log slope by n·V_T/(VAR − V_BE) (0.13 % for the generic card),
        evaluated at V_BE = n·V_T·ln(I_u/I_S).
        """
        card = npn_card()
        nvt = card.get("nf", 1.0) * thermal_voltage_v(self.temp_c)
        var = card.get("var", math.inf)
        if not math.isfinite(var) or var <= 0:
            return nvt
        v_be = nvt * math.log(self.i_unit_a / card.get("is", 1e-16))
        return nvt * (1.0 + nvt / (var - v_be))

    @property
    def r_in_ohm(self) -> float:
        """R_in = V_unit/I_u: one model unit of input drives I_u."""
        return self.volts_per_unit / self.i_unit_a

    def _check(self) -> None:
        owner = type(self).__name__
        check_positive(owner, volts_per_unit=self.volts_per_unit, i_unit_a=self.i_unit_a, v_ref_v=self.v_ref_v)
        check_finite(owner, temp_c=self.temp_c)
        self.warn_swing()

    def _reference(self, out: str) -> list[Element]:
        """Reference transdiode at I_u: V(out) = −n·V_T·ln(I_u/I_S)."""
        return [reference("ref", "vr", self.v_ref_v),
                *transdiode("lr", [("vr", self.v_ref_v / self.i_unit_a)], out, npn_card().name, self.opamp)]

    def _log_uniform(self, n: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
        return np.exp(rng.uniform(math.log(lo), math.log(hi), size=(n, self.n_inputs())))


@dataclass(frozen=True, slots=True)
class LogBlock(_LogDomain):
    """y = ln(x) for x in [x_min, x_max]: two transdiodes (input, reference) and a difference amp.

    V_o = G·(V_E(ref) − V_E(x)) with G = V_unit/(n·V_T) (R2/R1 of the difference amp), so
    V_o = V_unit·ln(I_x/I_u) = V_unit·ln(x). Full scale: max |ln x| over the range.
    """

    kind: ClassVar[str] = "opamp.log"
    tolerance_pct_fs: ClassVar[float] = 0.5

    volts_per_unit: float = 1.0
    i_unit_a: float = 1e-6
    v_ref_v: float = 1.0
    r_ohm: float = 10e3
    x_min: float = 0.01
    x_max: float = 10.0
    temp_c: float = NOMINAL_TEMP_C
    opamp: OpampMacro = field(default_factory=OpampMacro.default)
    name: str = "logamp"

    def __post_init__(self) -> None:
        check_positive("LogBlock", r_ohm=self.r_ohm, x_min=self.x_min, x_max=self.x_max)
        if not self.x_min < self.x_max:
            raise ParameterError(f"LogBlock.x_min ({self.x_min}) must be below x_max ({self.x_max})")
        self._check()

    @classmethod
    def from_primitive(cls, prim: LogAmp, volts_per_unit: float = 1.0, **kw: object) -> LogBlock:
        return cls(volts_per_unit, **kw)  # type: ignore[arg-type]

    def n_inputs(self) -> int:
        return 1

    def input_range(self) -> tuple[float, float]:
        return (self.x_min, self.x_max)

    def test_points(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._log_uniform(n, rng, self.x_min, self.x_max)

    def full_scale(self) -> float:
        return max(abs(math.log(self.x_min)), abs(math.log(self.x_max)))

    def ideal(self, points: np.ndarray) -> np.ndarray:
        return ideal_fn.log(np.atleast_2d(points)[:, 0])

    def elements(self) -> list[Element]:
        g = self.volts_per_unit / self.n_vt_v
        return [*transdiode("lx", [("x0", self.r_in_ohm)], "ex", npn_card().name, self.opamp),
                *self._reference("er"),
                *difference("d", "er", g, "ex", g, "y", self.r_ohm, self.opamp)]


@dataclass(frozen=True, slots=True)
class AntilogBlock(_LogDomain):
    """y = eˣ for x in [x_min, x_max]: reference transdiode, difference amp, NPN and transimpedance amp.

    The difference amp drives the output NPN's emitter to V_E(ref) − (n·V_T/V_unit)·V_in, so
    I_C = I_u·eˣ; the transimpedance stage R_f = V_unit/I_u gives V_o = V_unit·eˣ. Full
    scale: e^x_max (default range e^±2.3 ≈ 0.1..10).
    """

    kind: ClassVar[str] = "opamp.exp"
    tolerance_pct_fs: ClassVar[float] = 0.5

    volts_per_unit: float = 1.0
    i_unit_a: float = 1e-6
    v_ref_v: float = 1.0
    r_ohm: float = 10e3
    x_min: float = -math.log(10.0)
    x_max: float = math.log(10.0)
    temp_c: float = NOMINAL_TEMP_C
    opamp: OpampMacro = field(default_factory=OpampMacro.default)
    name: str = "antilogamp"

    def __post_init__(self) -> None:
        check_positive("AntilogBlock", r_ohm=self.r_ohm)
        check_finite("AntilogBlock", x_min=self.x_min, x_max=self.x_max)
        if not self.x_min < self.x_max:
            raise ParameterError(f"AntilogBlock.x_min ({self.x_min}) must be below x_max ({self.x_max})")
        self._check()

    @classmethod
    def from_primitive(cls, prim: AntilogAmp, volts_per_unit: float = 1.0, **kw: object) -> AntilogBlock:
        return cls(volts_per_unit, **kw)  # type: ignore[arg-type]

    def n_inputs(self) -> int:
        return 1

    def input_range(self) -> tuple[float, float]:
        return (self.x_min, self.x_max)

    def full_scale(self) -> float:
        return math.exp(self.x_max)

    def ideal(self, points: np.ndarray) -> np.ndarray:
        return ideal_fn.exp(np.atleast_2d(points)[:, 0])

    def elements(self) -> list[Element]:
        k = self.n_vt_v / self.volts_per_unit
        return [*self._reference("er"),
                *difference("d", "er", 1.0, "x0", k, "eo", self.r_ohm, self.opamp),
                bjt("o", "to_s", "0", "eo", npn_card().name),
                *transimpedance("to", "to_s", "y", self.r_in_ohm, self.opamp)]


def _sum_difference(prefix: str, plus: Sequence[str], minus: str, out: str, r_ohm: float,
                    macro: OpampMacro) -> list[Element]:
    """V_out = V₊₁ + V₊₂ − V₋: V(inp) = mean of the two plus inputs, unity-gain inverting side."""
    p, n = f"{prefix}_p", f"{prefix}_n"
    return [opamp(prefix, p, n, out, macro), resistor(f"{prefix}_p1", plus[0], p, r_ohm),
            resistor(f"{prefix}_p2", plus[1], p, r_ohm), resistor(f"{prefix}_m", minus, n, r_ohm),
            resistor(f"{prefix}_f", out, n, r_ohm)]


@dataclass(frozen=True, slots=True)
class _LogProduct(_LogDomain):
    """Shared parts of the multiplier and the divider: operand range, log stages, output stage."""

    volts_per_unit: float = 0.1
    i_unit_a: float = 1e-6
    v_ref_v: float = 1.0
    r_ohm: float = 10e3
    x_min: float = 0.1
    x_max: float = 10.0
    temp_c: float = NOMINAL_TEMP_C
    opamp: OpampMacro = field(default_factory=OpampMacro.default)
    name: str = "logproduct"

    def __post_init__(self) -> None:
        check_positive(type(self).__name__, r_ohm=self.r_ohm, x_min=self.x_min, x_max=self.x_max)
        if not self.x_min < self.x_max:
            raise ParameterError(f"{type(self).__name__}.x_min ({self.x_min}) must be below x_max ({self.x_max})")
        self._check()

    def n_inputs(self) -> int:
        return 2

    def _output(self, emitter: str) -> list[Element]:
        """Output NPN driven at its emitter and the transimpedance stage R_f = R_in: V_o = R_in·I_C."""
        return [bjt("o", "to_s", "0", emitter, npn_card().name),
                *transimpedance("to", "to_s", "y", self.r_in_ohm, self.opamp)]


@dataclass(frozen=True, slots=True)
class MultiplierBlock(_LogProduct):
    """y = a·b: log a + log b − log u, antilog (one quadrant; ``offset`` o > 0 for signed operands).

    V_E(out) = V_E(a) + V_E(b) − V_E(ref) ⇒ I_C = I_a·I_b/I_u = a·b·I_u, V_o = R_in·I_C = V_unit·a·b.
    With offset o, each log stage also takes o·I_u from the reference (I_a = (a + o)·I_u) and
    the output stage subtracts o·a + o·b + o² by resistors into its virtual ground, so
    y = (a + o)(b + o) − o·a − o·b − o² = a·b for a, b ∈ [x_min − o, x_max − o].

    Error measure: relative error on the product. Log-domain errors (V_BE offsets from r_E,
    high injection, op-amp gain) add in the exponent, so they scale the output by a factor
    (1 + ε) at every magnitude; % of full scale would hide the whole lower decades. Tolerance:
    1 % relative for offset = 0 (``tolerance_rel``), i.e. ≤ 1 % of full scale too.
    """

    kind: ClassVar[str] = "opamp.multiplier"
    tolerance_pct_fs: ClassVar[float] = 1.0
    tolerance_rel: ClassVar[float] = 0.01

    offset: float = 0.0
    name: str = "multiplier"

    def __post_init__(self) -> None:
        _LogProduct.__post_init__(self)
        if not (math.isfinite(self.offset) and self.offset >= 0):
            raise ParameterError(f"MultiplierBlock.offset: must be a finite number >= 0, got {self.offset!r}")
        if self.offset and not self.x_min < self.offset < self.x_max:
            raise ParameterError(f"MultiplierBlock.offset: {self.offset} must lie inside (x_min, x_max) = "
                                 f"({self.x_min}, {self.x_max}) so that a + offset stays in the log stages' range")

    @classmethod
    def from_primitive(cls, prim: LogExpMultiplier, volts_per_unit: float = 0.1, **kw: object) -> MultiplierBlock:
        return cls(volts_per_unit, **kw)  # type: ignore[arg-type]

    def input_range(self) -> tuple[float, float]:
        """[x_min, x_max]; with an offset, the symmetric |a| ≤ o − x_min that keeps a + o in range."""
        if not self.offset:
            return (self.x_min, self.x_max)
        half = min(self.offset - self.x_min, self.x_max - self.offset)
        return (-half, half)

    def test_points(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.offset:
            return OpampBlock.test_points(self, n, rng)
        return self._log_uniform(n, rng, self.x_min, self.x_max)

    def full_scale(self) -> float:
        lo, hi = self.input_range()
        return max(abs(lo), abs(hi)) ** 2

    def ideal(self, points: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(points)
        return ideal_fn.multiply(p[:, 0], p[:, 1])

    def _log_stage(self, prefix: str, node: str, out: str) -> list[Element]:
        ins = [(node, self.r_in_ohm)]
        if self.offset:
            ins.append(("vr", self.v_ref_v / (self.offset * self.i_unit_a)))
        return transdiode(prefix, ins, out, npn_card().name, self.opamp)

    def elements(self) -> list[Element]:
        els = [*self._log_stage("la", "x0", "ea"), *self._log_stage("lb", "x1", "eb"), *self._reference("er"),
               *_sum_difference("s", ("ea", "eb"), "er", "es", self.r_ohm, self.opamp), *self._output("es")]
        if self.offset:
            o, r_f = self.offset, self.r_in_ohm
            els += [resistor("oa", "x0", "to_s", r_f / o), resistor("ob", "x1", "to_s", r_f / o),
                    resistor("oc", "vr", "to_s", r_f * self.v_ref_v / (o * o * self.volts_per_unit))]
        return els


@dataclass(frozen=True, slots=True)
class DividerBlock(_LogProduct):
    """y = a/b: log a − log b + log u, antilog (one quadrant, a, b > 0).

    V_E(out) = V_E(a) + V_E(ref) − V_E(b) ⇒ I_C = I_a·I_u/I_b = (a/b)·I_u, V_o = V_unit·a/b.
    Relative error measure as for `MultiplierBlock`; full scale x_max/x_min.
    """

    kind: ClassVar[str] = "opamp.divider"
    tolerance_pct_fs: ClassVar[float] = 1.0
    tolerance_rel: ClassVar[float] = 0.01

    name: str = "divider"

    @classmethod
    def from_primitive(cls, prim: LogExpDivider, volts_per_unit: float = 0.1, **kw: object) -> DividerBlock:
        return cls(volts_per_unit, **kw)  # type: ignore[arg-type]

    def input_range(self) -> tuple[float, float]:
        return (self.x_min, self.x_max)

    def test_points(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._log_uniform(n, rng, self.x_min, self.x_max)

    def full_scale(self) -> float:
        return self.x_max / self.x_min

    def ideal(self, points: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(points)
        return ideal_fn.divide(p[:, 0], p[:, 1])

    def elements(self) -> list[Element]:
        q = npn_card().name
        return [*transdiode("la", [("x0", self.r_in_ohm)], "ea", q, self.opamp),
                *transdiode("lb", [("x1", self.r_in_ohm)], "eb", q, self.opamp), *self._reference("er"),
                *_sum_difference("s", ("ea", "er"), "eb", "es", self.r_ohm, self.opamp), *self._output("es")]
