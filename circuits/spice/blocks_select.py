"""Selection blocks on op-amps: the superdiode maximum (max pooling) and the log-domain softmax.

Maximum (Sheingold, *Nonlinear Circuits Handbook*, Analog Devices 1976, ch. 2; Tietze & Schenk
§25.5 "precision diodes"): one op-amp per input drives a diode onto the shared output node,
which a resistor pulls towards a negative reference; every op-amp's inverting input senses the
output through its own resistor R_s. The largest input's loop closes (its diode conducts) and
forces V_o = max V_k (no current flows in its R_s); every other op-amp sees V_o > V_k, its
output diode blocks, and a clamp diode from its inverting input to its output closes its loop
one diode drop below V_k instead of letting it saturate: the losers stay in their linear range
(ngspice finds the operating point in ~20 Newton iterations instead of ~270) and draw only
(V_o − V_k)/R_s from the output, which the winner supplies inside its loop. The diode drop is
divided by the loop gain (V_D/A₀ ≈ 7 µV), so the output is exact to the op-amp's offset.

Softmax (exp amplifiers and a normalizing divider in the log domain; Gilbert's translinear
principle, Electron. Lett. 11(1), 1975, and the transdiode stages of `blocks_logdomain`):

    m      ≈ max_k x_k                       (diode OR with its drop added back; see below)
    V_E,k  = V_E(ref) − n·V_T·(x_k − m)      ⇒ I_k = I_u·e^(x_k − m)      (exp amplifier per input)
    S      = Σ I_k / I_u                      (the collectors share one transimpedance node: KCL)
    V_ES   = V_E(ref) − n·V_T·ln S           (transdiode log of the sum)
    V_B    = V_ES − V_E(ref) = −n·V_T·ln S   (base of a second NPN sharing the emitter V_E,k)
    I_out,k = I_k·e^(V_B/(n·V_T)) = I_u·e^(x_k − m)/S = I_u·softmax(x)_k,   y_k = R_f·I_out,k/V_unit

I_S cancels between matched transistors; subtracting the maximum keeps every exponent near or
below 0, so the block takes any inputs inside the rails (the largest current is about I_u) and
needs no range narrowing of the logits. m need not be exact: a shift common to every input
drops out of a softmax, so a passive diode OR (one diode per input onto a pulled-down node) does,
its drop V_D (from the diode card at the pull-down current) added back in the shift stage; an
error δ in V_D only moves every current by e^(δ/V_unit). The superdiode maximum there would add
an op-amp per input and, in ngspice, several hundred Newton iterations to every operating point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from circuits.errors import ParameterError
from circuits.opamp import MaxSelector, SoftmaxUnit
from circuits.spice.block import index_sweep, indexed_inputs
from circuits.spice.blocks_logdomain import _LogDomain
from circuits.spice.netlist import Deck, Element, bjt, diode, resistor
from circuits.spice.opamp_macro import OpampMacro
from circuits.spice.opamp_stages import (
    NOMINAL_TEMP_C, OUT_NODE, R_LOAD_OHM, OpampBlock, check_positive, diode_card, difference, npn_card, opamp,
    reference, thermal_voltage_v, transdiode, transimpedance,
)

V_PULL_V = -10.0  # the maximum's pull-down reference
R_PULL_OHM = 10e3  # ~1 mA through the winning diode, ample for a 10 kΩ load at full swing
R_SENSE_OHM = 100e3  # output to each inverting input; a loser's clamp current (V_o − x_k)/R_sense
R_OR_PULL_OHM = 100e3  # the softmax's diode OR: ~0.1 mA through the winning diode


def superdiode_max(prefix: str, inputs: Sequence[str], out: str, diode_model: str, macro: OpampMacro,
                   v_pull_v: float = V_PULL_V, r_pull_ohm: float = R_PULL_OHM,
                   r_sense_ohm: float = R_SENSE_OHM) -> list[Element]:
    """V(out) = max_k V(inputs[k]): per input an op-amp, its output diode, a sense resistor from the
    output to its inverting input and a clamp diode; a shared pull-down (module doc)."""
    els = [reference(f"{prefix}_pull", f"{prefix}_vp", v_pull_v), resistor(f"{prefix}_pull", out, f"{prefix}_vp",
                                                                              r_pull_ohm)]
    for k, node in enumerate(inputs):
        o, n = f"{prefix}_o{k}", f"{prefix}_n{k}"
        els += [opamp(f"{prefix}_{k}", node, n, o, macro), diode(f"{prefix}_{k}", o, out, diode_model),
                resistor(f"{prefix}_s{k}", out, n, r_sense_ohm), diode(f"{prefix}_c{k}", n, o, diode_model)]
    return els


def weighted_difference(prefix: str, plus: Sequence[tuple[str, float]], minus: Sequence[tuple[str, float]],
                        out: str, r_ohm: float, macro: OpampMacro) -> list[Element]:
    """V_out = Σ a_j·V₊ⱼ − Σ b_k·V₋ₖ with one op-amp (a, b > 0).

    Inverting side R_f = r, R_k = r/b_k: noise gain G = 1 + Σ b_k (a resistor r/(Σa − G) from
    the inverting input to ground raises G to Σa when Σa exceeds it). Non-inverting side
    R_j = r/a_j and r/(G − Σa) to ground, so V(inp) = Σ a_j·V₊ⱼ/G and V_out = G·V(inp) − Σ b_k·V₋ₖ.
    """
    if any(not g > 0 for _, g in (*plus, *minus)):
        raise ParameterError(f"weighted_difference {prefix}: every gain must be > 0")
    p, n = f"{prefix}_p", f"{prefix}_n"
    els = [opamp(prefix, p, n, out, macro), resistor(f"{prefix}_f", out, n, r_ohm)]
    els += [resistor(f"{prefix}_m{k}", node, n, r_ohm / g) for k, (node, g) in enumerate(minus)]
    gain = 1.0 + sum(g for _, g in minus)
    total = sum(g for _, g in plus)
    if total > gain:
        els.append(resistor(f"{prefix}_mg", "0", n, r_ohm / (total - gain)))
        gain = total
    els += [resistor(f"{prefix}_p{j}", node, p, r_ohm / g) for j, (node, g) in enumerate(plus)]
    if gain - total > 1e-12:
        els.append(resistor(f"{prefix}_pg", p, "0", r_ohm / (gain - total)))
    return els


class _MultiOutput(OpampBlock):
    """Bench for blocks with ``n_outputs`` outputs y0..: ports x0.., y0..; read gives (rows, n_outputs)."""

    def n_outputs(self) -> int:
        return 1

    def ports(self) -> tuple[str, ...]:
        return (*(f"x{j}" for j in range(self.n_inputs())), *(f"y{j}" for j in range(self.n_outputs())))

    def dc_bench(self, points: np.ndarray) -> Deck:
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        outs = [f"{OUT_NODE}{j}" for j in range(self.n_outputs())]
        deck = self.bench_deck(f"{self.kind} {self.name} dc bench, {len(pts)} points",
                               [*(f"in{j}" for j in range(self.n_inputs())), *outs])
        deck.elements = [e for e in deck.elements if e.name != "load"]
        deck.elements += [resistor(f"load{j}", o, "0", R_LOAD_OHM) for j, o in enumerate(outs)]
        deck.elements += indexed_inputs(pts, [f"in{j}" for j in range(self.n_inputs())], self.volts_per_unit)
        return index_sweep(deck, len(pts))

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        cols = [np.asarray(vectors[f"{OUT_NODE}{j}"], dtype=np.float64).real for j in range(self.n_outputs())]
        return np.stack(cols, axis=-1) / self.volts_per_unit


@dataclass(frozen=True, slots=True)
class MaxSelectorBlock(OpampBlock):
    """y = max_k x_k over ``window`` inputs: superdiode maximum (module doc), an op-amp and two diodes each.

    Tolerance 0.1 % FS (FS = input_limit): the diode drop and the load current are divided by
    A₀ = 1e5; only the op-amp offset (0 on the nominal card) shows directly.
    """

    kind: ClassVar[str] = "opamp.max"
    tolerance_pct_fs: ClassVar[float] = 0.1

    window: int = 2
    volts_per_unit: float = 1.0
    input_limit: float = 1.0
    v_pull_v: float = V_PULL_V
    r_pull_ohm: float = R_PULL_OHM
    opamp: OpampMacro = field(default_factory=OpampMacro.default)
    name: str = "maxsel"

    def __post_init__(self) -> None:
        if not (isinstance(self.window, int) and self.window >= 1):
            raise ParameterError(f"MaxSelectorBlock.window: need an integer >= 1, got {self.window!r}")
        check_positive("MaxSelectorBlock", volts_per_unit=self.volts_per_unit, input_limit=self.input_limit,
                       r_pull_ohm=self.r_pull_ohm)
        if not self.v_pull_v < -self.input_limit * self.volts_per_unit:
            raise ParameterError(f"MaxSelectorBlock.v_pull_v: {self.v_pull_v} V must lie below the lowest input "
                                 f"{-self.input_limit * self.volts_per_unit} V")
        self.warn_swing()

    @classmethod
    def from_primitive(cls, prim: MaxSelector, volts_per_unit: float = 1.0, **kw: object) -> MaxSelectorBlock:
        return cls(int(prim.window), volts_per_unit, **kw)  # type: ignore[arg-type]

    def models(self) -> list[str]:
        return [diode_card().text]

    def n_inputs(self) -> int:
        return self.window

    def input_range(self) -> tuple[float, float]:
        return (-self.input_limit, self.input_limit)

    def full_scale(self) -> float:
        return self.input_limit

    def ideal(self, points: np.ndarray) -> np.ndarray:
        return MaxSelector(axes=(-1,), window=self.window).ideal(np.atleast_2d(np.asarray(points, np.float64)))

    def elements(self) -> list[Element]:
        return superdiode_max("mx", [f"x{k}" for k in range(self.window)], "y", diode_card().name, self.opamp,
                              self.v_pull_v, self.r_pull_ohm)


@dataclass(frozen=True, slots=True)
class SoftmaxBlock(_MultiOutput, _LogDomain):
    """y = softmax(x) over ``size`` inputs: maximum, exp amplifiers, sum, log and normalizing NPNs (module doc).

    Op-amps: 2 per output (exp amplifier, output transimpedance) + 5 shared (reference, max
    shift, sum, log, base shift); a diode per input for the maximum. R_s puts the sum
    (≤ size·I_u·e^(δ/V_unit)) at about ``v_sum_v``.
    Tolerance 0.5 % FS (FS = 1): the log-domain stages' errors (op-amp gain, reverse Early)
    are those of `AntilogBlock`, 0.05 % in ngspice; the output NPNs sit at V_CB = n·V_T·ln S.
    """

    kind: ClassVar[str] = "opamp.softmax"
    tolerance_pct_fs: ClassVar[float] = 0.5

    size: int = 2
    volts_per_unit: float = 1.0
    i_unit_a: float = 1e-6
    v_ref_v: float = 1.0
    r_ohm: float = 10e3
    v_sum_v: float = 5.0
    input_limit: float = 4.0
    temp_c: float = NOMINAL_TEMP_C
    opamp: OpampMacro = field(default_factory=OpampMacro.default)
    name: str = "softmax"

    def __post_init__(self) -> None:
        if not (isinstance(self.size, int) and self.size >= 1):
            raise ParameterError(f"SoftmaxBlock.size: need an integer >= 1, got {self.size!r}")
        check_positive("SoftmaxBlock", r_ohm=self.r_ohm, v_sum_v=self.v_sum_v, input_limit=self.input_limit)
        if self.input_limit * self.volts_per_unit > 0.9 * -V_PULL_V:
            raise ParameterError(f"SoftmaxBlock.input_limit: {self.input_limit} units at {self.volts_per_unit} V "
                                 f"exceed the maximum's range ({0.9 * -V_PULL_V} V)")
        self._check()

    @classmethod
    def from_primitive(cls, prim: SoftmaxUnit, volts_per_unit: float = 1.0, size: int = 4,
                       **kw: object) -> SoftmaxBlock:
        """``size``: how many elements one softmax group holds (the primitive is shape-free)."""
        return cls(size, volts_per_unit, **kw)  # type: ignore[arg-type]

    def n_inputs(self) -> int:
        return self.size

    def n_outputs(self) -> int:
        return self.size

    def input_range(self) -> tuple[float, float]:
        return (-self.input_limit, self.input_limit)

    def full_scale(self) -> float:
        return 1.0

    def ideal(self, points: np.ndarray) -> np.ndarray:
        return SoftmaxUnit(axes=(-1,)).ideal(np.atleast_2d(np.asarray(points, np.float64)))

    @property
    def r_sum_ohm(self) -> float:
        return self.v_sum_v / (self.size * self.i_unit_a)

    @property
    def r_out_ohm(self) -> float:
        """Output transimpedance V_unit/I_u: I_u (softmax 1) reads as one model unit."""
        return self.volts_per_unit / self.i_unit_a

    def models(self) -> list[str]:
        return [npn_card().text, diode_card().text]

    @property
    def v_or_drop_v(self) -> float:
        """The diode OR's drop at its pull-down current (V_PULL_V/R_OR_PULL_OHM): n·V_T·ln(I/I_S)."""
        card = diode_card()
        i_d = -V_PULL_V / R_OR_PULL_OHM
        return card.get("n", 1.0) * thermal_voltage_v(self.temp_c) * math.log(i_d / card.get("is", 1e-14))

    def elements(self) -> list[Element]:
        q, k = npn_card().name, self.n_vt_v / self.volts_per_unit
        xs = [f"x{j}" for j in range(self.size)]
        els = [reference("mx_pull", "mx_vp", V_PULL_V), resistor("mx_pull", "m", "mx_vp", R_OR_PULL_OHM),
               *(diode(f"mx_{j}", x, "m", diode_card().name) for j, x in enumerate(xs)), *self._reference("er"),
               *weighted_difference("sh", [("er", 1.0), ("m", k), ("vr", k * self.v_or_drop_v / self.v_ref_v)], [],
                                    "erm", self.r_ohm, self.opamp),
               *transimpedance("ts", "ts_s", "vs", self.r_sum_ohm, self.opamp),
               *transdiode("ls", [("vs", self.r_sum_ohm)], "es", q, self.opamp),
               *difference("vb", "es", 1.0, "er", 1.0, "vb", self.r_ohm, self.opamp)]
        for j, x in enumerate(xs):
            e = f"e{j}"
            els += [*difference(f"ex{j}", "erm", 1.0, x, k, e, self.r_ohm, self.opamp),
                    bjt(f"s{j}", "ts_s", "0", e, q), bjt(f"o{j}", f"to{j}_s", "vb", e, q),
                    *transimpedance(f"to{j}", f"to{j}_s", f"y{j}", self.r_out_ohm, self.opamp)]
        return els

