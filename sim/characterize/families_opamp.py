"""Op-amp behavioural families: summer, rectifier, clipper, integrator, diff pair, log, exp, multiplier, divider.

Parameters are the errors a mismatched op-amp block shows (gains from resistor ratios, offsets
from op-amp V_os, log-domain slopes from NPN and resistor mismatch); each family's initial
guess is the ideal block. Equations in `sim.characterize.families`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from circuits.errors import ParameterError
from sim.characterize.family_base import Family, bounds_of, register, softplus

# --- op-amp families -----------------------------------------------------------------------

@register
@dataclass(frozen=True, slots=True)
class SummerFamily(Family):
    """Inverting summer: per-input gain factors (resistor ratios), one offset, rails from the card."""

    name: ClassVar[str] = "summer"
    kind: ClassVar[str] = "opamp.summer"
    weights: tuple[float, ...]
    bias: float
    rail_pos: float
    rail_neg: float
    knee: float

    def n_inputs(self) -> int:
        return len(self.weights)

    def parameters(self) -> tuple[str, ...]:
        return (*(f"gain_{k}" for k in range(len(self.weights))), "offset")

    def initial(self) -> np.ndarray:
        return np.append(np.ones(len(self.weights)), 0.0)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return bounds_of(*[(0.5, 1.5)] * len(self.weights), (-1.0, 1.0))

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        p, pts = self.check(params, x)
        u = pts @ (np.asarray(self.weights) * p[:-1]) + self.bias + p[-1]
        return u - softplus(u - self.rail_pos, self.knee) + softplus(self.rail_neg - u, self.knee)


@register
@dataclass(frozen=True, slots=True)
class RectifierFamily(Family):
    """Precision rectifier (op-amp neuron): gain, threshold, leak slope below it, output offset."""

    name: ClassVar[str] = "rectifier"
    kind: ClassVar[str] = "opamp.rectifier"
    negative_slope: float = 0.0

    def parameters(self) -> tuple[str, ...]:
        return ("gain", "threshold", "leak", "offset")

    def initial(self) -> np.ndarray:
        return np.array([1.0, 0.0, self.negative_slope, 0.0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return bounds_of((0.5, 1.5), (-0.5, 0.5), (-1.0, 1.0 + 2 * self.negative_slope), (-1.0, 1.0))

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        (g, th, s, o), pts = self.check(params, x)
        d = pts[:, 0] - th
        return g * np.maximum(d, 0.0) + s * np.minimum(d, 0.0) + o


@register
@dataclass(frozen=True, slots=True)
class LogFamily(Family):
    """Log amplifier y = n·ln((x − x_os)/s): slope factor, I_S-like scale, input offset (op-amp V_os)."""

    name: ClassVar[str] = "log"
    kind: ClassVar[str] = "opamp.log"
    x_min: float = 0.01

    def parameters(self) -> tuple[str, ...]:
        return ("slope", "scale", "input_offset")

    def initial(self) -> np.ndarray:
        return np.array([1.0, 1.0, 0.0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return bounds_of((0.5, 2.0), (0.01, 100.0), (-self.x_min, 0.9 * self.x_min))

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        (n, s, x_os), pts = self.check(params, x)
        return n * np.log(np.maximum(pts[:, 0] - x_os, 1e-300) / s)


@register
@dataclass(frozen=True, slots=True)
class ExpFamily(Family):
    """Antilog amplifier y = s·exp(x/n) + o: scale (I_S ratio, R_f), slope factor, output offset."""

    name: ClassVar[str] = "exp"
    kind: ClassVar[str] = "opamp.exp"

    def parameters(self) -> tuple[str, ...]:
        return ("scale", "slope", "offset")

    def initial(self) -> np.ndarray:
        return np.array([1.0, 1.0, 0.0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return bounds_of((0.2, 5.0), (0.5, 2.0), (-1.0, 1.0))

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        (s, n, o), pts = self.check(params, x)
        return s * np.exp(pts[:, 0] / n) + o


@register
@dataclass(frozen=True, slots=True)
class MultiplierFamily(Family):
    """Log/antilog multiplier with operand offset o: log-domain gain and slopes, offset-removal errors.

    y = g·(a + o)^γa·(b + o)^γb − o·(1 + δa)·a − o·(1 + δb)·b − o²·(1 + δ0). The product term is
    the log stages' I_S ratio (g) and the summing amp's resistor ratios (γ, exponents of the
    currents); the δ are the errors of the resistors removing o·a, o·b and o². Op-amp offsets
    at the log inputs shift a + o by V_os/V_unit, which to first order the δ absorb.
    """

    name: ClassVar[str] = "multiplier"
    kind: ClassVar[str] = "opamp.multiplier"
    offset: float = 1.1

    def n_inputs(self) -> int:
        return 2

    def parameters(self) -> tuple[str, ...]:
        return ("gain", "slope_a", "slope_b", "sub_a_error", "sub_b_error", "sub_0_error")

    def initial(self) -> np.ndarray:
        return np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return bounds_of((0.5, 2.0), (0.8, 1.25), (0.8, 1.25), (-0.5, 0.5), (-0.5, 0.5), (-0.5, 0.5))

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        (g, ga, gb, da, db, d0), pts = self.check(params, x)
        a, b, o = pts[:, 0], pts[:, 1], self.offset
        product = g * np.maximum(a + o, 1e-300) ** ga * np.maximum(b + o, 1e-300) ** gb
        return product - o * (1 + da) * a - o * (1 + db) * b - o * o * (1 + d0)


@register
@dataclass(frozen=True, slots=True)
class IntegratorFamily(Family):
    """Lossy integrator sampled at time s = t/τ after the reset (x columns: input, t/window)."""

    name: ClassVar[str] = "integrator"
    kind: ClassVar[str] = "opamp.integrator"
    y0: float = 0.0
    window_over_tau: float = 1.0

    def n_inputs(self) -> int:
        return 2

    def parameters(self) -> tuple[str, ...]:
        return ("gain", "input_offset", "y0_offset", "leak")

    def initial(self) -> np.ndarray:
        return np.array([1.0, 0.0, 0.0, 0.0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return bounds_of((0.5, 1.5), (-0.5, 0.5), (-1.0, 1.0), (0.0, 10.0))

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        (g, x_os, dy0, lam), pts = self.check(params, x)
        s = pts[:, 1] * self.window_over_tau
        ramp = s if lam < 1e-12 else -np.expm1(-lam * s) / lam
        return (self.y0 + dy0) * np.exp(-lam * s) - g * (pts[:, 0] - x_os) * ramp


@register
@dataclass(frozen=True, slots=True)
class ClipperFamily(Family):
    """Precision clipper x − relu(x − high) + relu(low − x), each of its three paths with its own gain.

    y = g·x + o − g_h·relu(x − h) + g_l·relu(l − x): with mismatch the clipped regions keep a
    small slope g − g_h (g − g_l) instead of 0. Bounds must be finite.
    """

    name: ClassVar[str] = "clipper"
    kind: ClassVar[str] = "opamp.clipper"
    low: float = -1.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.low < self.high):
            raise ParameterError(f"family clipper: needs finite bounds low < high, got {self.low}, {self.high}")

    def parameters(self) -> tuple[str, ...]:
        return ("gain", "offset", "high", "high_gain", "low", "low_gain")

    def initial(self) -> np.ndarray:
        return np.array([1.0, 0.0, self.high, 1.0, self.low, 1.0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        span = self.high - self.low
        return bounds_of((0.5, 1.5), (-0.5 * span, 0.5 * span), (self.high - 0.25 * span, self.high + 0.25 * span),
                         (0.5, 1.5), (self.low - 0.25 * span, self.low + 0.25 * span), (0.5, 1.5))

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        (g, o, h, gh, lo, gl), pts = self.check(params, x)
        v = pts[:, 0]
        return g * v + o - gh * np.maximum(v - h, 0.0) + gl * np.maximum(lo - v, 0.0)


@register
@dataclass(frozen=True, slots=True)
class DiffPairFamily(Family):
    """BJT differential pair y = a·f(b·(x − x_os)) + o, f = tanh or sigmoid.

    a: tail current and transimpedance ratio; b: the input divider's ratio over n·V_T;
    x_os: V_BE and divider mismatch referred to the input; o: output op-amp offset.
    """

    name: ClassVar[str] = "diffpair"
    kind: ClassVar[str] = "opamp.diffpair"
    function: str = "tanh"

    def __post_init__(self) -> None:
        if self.function not in ("tanh", "sigmoid"):
            raise ParameterError(f"family diffpair: function must be 'tanh' or 'sigmoid', got {self.function!r}")

    def parameters(self) -> tuple[str, ...]:
        return ("gain", "slope", "input_offset", "offset")

    def initial(self) -> np.ndarray:
        return np.array([1.0, 1.0, 0.0, 0.0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return bounds_of((0.5, 1.5), (0.5, 1.5), (-1.0, 1.0), (-0.5, 0.5))

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        (a, b, x_os, o), pts = self.check(params, x)
        u = b * (pts[:, 0] - x_os)
        f = np.tanh(u) if self.function == "tanh" else 0.5 + 0.5 * np.tanh(0.5 * u)
        return a * f + o


@register
@dataclass(frozen=True, slots=True)
class DividerFamily(Family):
    """Four-quadrant divider (offset numerator, sign-steered denominator; `FourQuadrantDividerBlock`):

    y = s·(1 + d_s·s)·(g·(a + o + a_os)^γa/B^γb − g₀·o/B^γb₀) + c_s·s + c₀,   s = sgn(b), B = |b| − b_os

    g, g₀: the two output NPNs' I_S ratios and resistors; γ: the summing amps' resistor ratios
    (log-domain slopes of each path); a_os, b_os: log-stage and rectifier offsets over V_unit;
    the steering |q + S| − |S| passes q through a different rectifier branch for each sign of b
    (d_s: half their gain difference) and leaves some of S through resistor mismatch (c_s); c₀:
    output offset.
    """

    name: ClassVar[str] = "divider"
    kind: ClassVar[str] = "opamp.divider"
    offset: float = 1.1
    x_min: float = 0.1

    def n_inputs(self) -> int:
        return 2

    def parameters(self) -> tuple[str, ...]:
        return ("gain", "slope_a", "a_offset", "offset_gain", "slope_b", "slope_b_offset_path", "b_offset",
                "steer_gain", "steer_error", "out_offset")

    def initial(self) -> np.ndarray:
        return np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        os = (-self.x_min, 0.9 * self.x_min)
        return bounds_of((0.5, 2.0), (0.8, 1.25), os, (0.5, 2.0), (0.8, 1.25), (0.8, 1.25), os, (-0.5, 0.5),
                         (-1.0, 1.0), (-1.0, 1.0))

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        (g, ga, a_os, g0, gb, gb0, b_os, d_s, c_s, c0), pts = self.check(params, x)
        s = np.where(pts[:, 1] < 0, -1.0, 1.0)
        a = np.maximum(pts[:, 0] + self.offset + a_os, 1e-300)
        b = np.maximum(np.abs(pts[:, 1]) - b_os, 1e-300)
        return s * (1 + d_s * s) * (g * a**ga / b**gb - g0 * self.offset / b**gb0) + c_s * s + c0
