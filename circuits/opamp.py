"""Voltage-mode op-amp analog-computer primitives (ideal math and device bill).

Signals are voltages; an inverting stage gives V_o = -R_f·Σ V_i/R_i, so a signed weight
uses the input directly (negative weight) or an inverted copy of it (positive weight).
The device bill per circuit follows the textbook topologies named in each docstring.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from circuits import ideal
from circuits.base import LinearBank, Primitive, Softmax, WeightedSum, WindowMax, WindowSum, as_finite_array
from circuits.errors import ParameterError


def _linear_bank_devices(weights: np.ndarray, bias: np.ndarray | None) -> Counter[str]:
    """One inverting summer per output, plus one shared inverter per input used with a positive weight."""
    w = weights.reshape(-1, *weights.shape[-2:]) if weights.ndim == 3 else weights[None]
    nnz = int(np.count_nonzero(w))
    outs = w.shape[0] * w.shape[1]
    inverters = int(np.count_nonzero((w > 0).any(axis=1)))
    bias_r = 0 if bias is None else int(np.count_nonzero(bias))
    return Counter(
        opamp=outs + inverters,
        resistor=nnz + outs + bias_r + 2 * inverters,
    )


def _log_domain_devices(lanes: int) -> Counter[str]:
    """Transdiode stage, a reference transistor at the unit current (cancels I_S), a gain stage."""
    return Counter(opamp=3 * lanes, bjt=2 * lanes, resistor=6 * lanes, capacitor=2 * lanes)


@dataclass(frozen=True, slots=True, eq=False)
class InvertingSummerArray(LinearBank):
    """A layer of inverting weighted adders: y = W·x + b, bias from a reference voltage.

    Weights are (out, in), or (groups, out, in) for grouped convolutions. Example: the
    analog-computer block V_o = -0.35·V1 + 5.24·V2 + 2.6 is one summer with W = [-0.35, 5.24].
    """

    kind: ClassVar[str] = "opamp.summer"

    def devices(self, lanes: int) -> Counter[str]:
        return _linear_bank_devices(self.weights, self.bias)

@dataclass(frozen=True, slots=True, eq=False)
class ElementwiseSummer(WeightedSum):
    """Per-element weighted sum of signals: y = Σ gᵢ·xᵢ + b (Add, Sub, Sum, scaling, affine BatchNorm)."""

    kind: ClassVar[str] = "opamp.elementwise_summer"

    def devices(self, lanes: int) -> Counter[str]:
        positive = sum(1 for g in self.gains if np.any(np.asarray(g) > 0))
        return Counter(
            opamp=lanes * (1 + positive),
            resistor=lanes * (len(self.gains) + 1 + (self.bias is not None) + 2 * positive),
        )

@dataclass(frozen=True, slots=True, eq=False)
class PrecisionRectifier(Primitive):
    """Precision (superdiode) half-wave rectifier and output inverter: ReLU, or leaky ReLU.

    y = max(0, x) + negative_slope·min(0, x).
    """

    kind: ClassVar[str] = "opamp.rectifier"
    negative_slope: float = 0.0

    def __post_init__(self) -> None:
        as_finite_array("negative_slope", self.negative_slope, ndim=(0,))

    def ideal(self, x: np.ndarray) -> np.ndarray:
        return ideal.rectify(x, self.negative_slope)

    def devices(self, lanes: int) -> Counter[str]:
        return Counter(opamp=2 * lanes, diode=2 * lanes,
                       resistor=(4 + 2 * (self.negative_slope != 0.0)) * lanes)


@dataclass(frozen=True, slots=True, eq=False)
class Clipper(Primitive):
    """Unity-gain stage with a diode limiter to reference levels: y = min(max(x, low), high)."""

    kind: ClassVar[str] = "opamp.clipper"
    low: float = -np.inf
    high: float = np.inf

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or np.isnan(v):
                raise ParameterError(f"{name}: expected a number, got {v!r}")

    def ideal(self, x: np.ndarray) -> np.ndarray:
        return ideal.clip(x, self.low, self.high)

    def devices(self, lanes: int) -> Counter[str]:
        return Counter(opamp=4 * lanes, resistor=12 * lanes, diode=4 * lanes)


@dataclass(frozen=True, slots=True, eq=False)
class DiffPairActivation(Primitive):
    """BJT differential pair with a transimpedance output: tanh, or sigmoid = (1 + tanh(x/2))/2."""

    kind: ClassVar[str] = "opamp.diffpair"
    function: Literal["tanh", "sigmoid"] = "tanh"

    def __post_init__(self) -> None:
        if self.function not in ("tanh", "sigmoid"):
            raise ParameterError(f"function: expected 'tanh' or 'sigmoid', got {self.function!r}")

    def ideal(self, x: np.ndarray) -> np.ndarray:
        return ideal.tanh(x) if self.function == "tanh" else ideal.sigmoid(x)

    def devices(self, lanes: int) -> Counter[str]:
        extra = self.function == "sigmoid"
        return Counter(bjt=2 * lanes, current_source=lanes, opamp=lanes,
                       resistor=(6 + 2 * extra) * lanes)


@dataclass(frozen=True, slots=True, eq=False)
class LogAmp(Primitive):
    """Transdiode log amplifier: V_o = -n·V_T·ln(V_in/(I_S·R)); ideal in model units: y = ln(x)."""

    kind: ClassVar[str] = "opamp.log"

    def ideal(self, x: np.ndarray) -> np.ndarray:
        return ideal.log(x)

    def devices(self, lanes: int) -> Counter[str]:
        return _log_domain_devices(lanes)


@dataclass(frozen=True, slots=True, eq=False)
class AntilogAmp(Primitive):
    """Antilog (exponential) amplifier: V_o = -R·I_S·exp(V_in/(n·V_T)); ideal: y = eˣ."""

    kind: ClassVar[str] = "opamp.exp"

    def ideal(self, x: np.ndarray) -> np.ndarray:
        return ideal.exp(x)

    def devices(self, lanes: int) -> Counter[str]:
        return _log_domain_devices(lanes)


@dataclass(frozen=True, slots=True, eq=False)
class LogExpMultiplier(Primitive):
    """antilog(log a + log b) multiplier, offset to four quadrants: y = a·b (broadcasting)."""

    kind: ClassVar[str] = "opamp.multiplier"
    n_inputs: ClassVar[int] = 2

    def ideal(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return ideal.multiply(a, b)

    def devices(self, lanes: int) -> Counter[str]:
        return Counter(opamp=5 * lanes, bjt=4 * lanes, resistor=13 * lanes, capacitor=4 * lanes)


@dataclass(frozen=True, slots=True, eq=False)
class LogExpDivider(Primitive):
    """antilog(log a - log b) divider, four quadrants: y = a / b (abs(b) >= b_min).

    Offset numerator (a + o in its log stage, o/abs(b) subtracted by a second output NPN), sign-steered
    denominator (log of abs(b); y = abs(q + S) - abs(S) with S = ±V_s from a comparator on b); see
    `circuits.spice.blocks_products.FourQuadrantDividerBlock`.
    """

    kind: ClassVar[str] = "opamp.divider"
    n_inputs: ClassVar[int] = 2

    def ideal(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return ideal.divide(a, b)

    def devices(self, lanes: int) -> Counter[str]:
        return Counter(opamp=16 * lanes, bjt=6 * lanes, resistor=39 * lanes, capacitor=6 * lanes, diode=6 * lanes)


@dataclass(frozen=True, slots=True, eq=False)
class ActivationMatMul(Primitive):
    """Product of two signal matrices: a multiplier per term and a summer per output (y = a @ b)."""

    kind: ClassVar[str] = "opamp.matmul"
    n_inputs: ClassVar[int] = 2
    inner: int = 1

    def ideal(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return ideal.matmul(a, b)

    def devices(self, lanes: int) -> Counter[str]:
        """Per output: 3 op-amps, 3 NPNs, 2 capacitors, 10 resistors per term; reference and output stage."""
        k = self.inner
        return Counter(opamp=(3 * k + 2) * lanes, bjt=(3 * k + 1) * lanes, capacitor=(2 * k + 2) * lanes,
                       resistor=(10 * k + 3) * lanes)


@dataclass(frozen=True, slots=True, eq=False)
class SoftmaxUnit(Softmax):
    """Softmax from analog blocks: a max selector, subtractors, antilog amps, a summer and dividers.

    y = exp(x - max) / Σ exp(x - max) jointly over ``axes`` (negative axes).
    """

    kind: ClassVar[str] = "opamp.softmax"

    def devices(self, lanes: int) -> Counter[str]:
        """Per element: a diode of the max's diode OR, an exp amplifier, two NPNs, an output stage; the
        shared reference, max shift, sum, log and base-shift stages counted once (one group)."""
        return Counter(opamp=2 * lanes + 5, bjt=2 * lanes + 2, resistor=5 * lanes + 13, diode=lanes,
                       capacitor=lanes + 3)


@dataclass(frozen=True, slots=True, eq=False)
class MaxSelector(WindowMax):
    """Superdiode max circuit: one precision diode (and a clamp) per window input, y = max over ``axes``."""

    kind: ClassVar[str] = "opamp.max"

    def devices(self, lanes: int) -> Counter[str]:
        return Counter(opamp=lanes * self.window, diode=2 * lanes * self.window, resistor=lanes * (self.window + 1))

@dataclass(frozen=True, slots=True, eq=False)
class AveragingSummer(WindowSum):
    """Summer with equal input resistors: y = gain·Σ x over ``axes`` (gain may vary per position)."""

    kind: ClassVar[str] = "opamp.average"

    def devices(self, lanes: int) -> Counter[str]:
        return Counter(opamp=(self.window + 1) * lanes, resistor=(3 * self.window + 1) * lanes)


@dataclass(frozen=True, slots=True, eq=False)
class Integrator(Primitive):
    """Inverting integrator with an initial condition: y(t) = y0 − (1/τ)·∫₀ᵗ x dt, τ = R·C.

    Ideal on sampled signals: x (..., T) at step ``dt_s``, trapezoidal integration.
    """

    kind: ClassVar[str] = "opamp.integrator"
    tau_s: float = 1e-3
    y0: float = 0.0
    dt_s: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("tau_s", "dt_s"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"{name}: must be > 0, got {getattr(self, name)}")
        as_finite_array("y0", self.y0, ndim=(0,))

    def ideal(self, x: np.ndarray) -> np.ndarray:
        return ideal.integrate(x, self.tau_s, self.y0, self.dt_s)

    def devices(self, lanes: int) -> Counter[str]:
        return Counter(opamp=lanes, resistor=2 * lanes, capacitor=lanes)


@dataclass(frozen=True, slots=True, eq=False)
class Differentiator(Primitive):
    """Inverting differentiator: y = −τ·dx/dt (a small series R keeps it stable), τ = R·C.

    Ideal on sampled signals: x (..., T) at step ``dt_s``, central differences.
    """

    kind: ClassVar[str] = "opamp.differentiator"
    tau_s: float = 1e-3
    dt_s: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("tau_s", "dt_s"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"{name}: must be > 0, got {getattr(self, name)}")

    def ideal(self, x: np.ndarray) -> np.ndarray:
        return ideal.differentiate(x, self.tau_s, self.dt_s)

    def devices(self, lanes: int) -> Counter[str]:
        return Counter(opamp=lanes, resistor=2 * lanes, capacitor=lanes)
