"""Behavioural families of the issue-11 blocks: maximum, softmax (op-amp and current), activation product,
junction, average, WTA.

Parameters are the errors a mismatched instance shows; each initial guess is the ideal block
(`circuits` primitives' math with zero errors). Equations in `sim.characterize.families`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sim.characterize.family_base import Family, bounds_of, register


@register
@dataclass(frozen=True, slots=True)
class MaxSelectorFamily(Family):
    """Superdiode maximum y = g·max_k(x_k + o_k): one offset per input op-amp, a gain (load, diode)."""

    name: ClassVar[str] = "max_selector"
    kind: ClassVar[str] = "opamp.max"
    window: int = 4

    def n_inputs(self) -> int:
        return self.window

    def parameters(self) -> tuple[str, ...]:
        return ("gain", *(f"offset_{k}" for k in range(self.window)))

    def initial(self) -> np.ndarray:
        return np.append(1.0, np.zeros(self.window))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return bounds_of((0.5, 1.5), *[(-0.5, 0.5)] * self.window)

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        p, pts = self.check(params, x)
        return p[0] * np.max(pts + p[1:], axis=1)


@register
@dataclass(frozen=True, slots=True)
class SoftmaxFamily(Family):
    """Output ``output`` of a softmax block: y = g·softmax(u)_output, u_k = β_k·(x_k + o_k) − c_k·max(x).

    Per exp amplifier: β_k its n·V_T/V_unit divider's error, o_k its offset (NPN I_S, op-amp V_os,
    as an ln-weight), c_k how much of the subtracted maximum its plus-side divider leaves
    uncancelled (ideal 0: a shift common to every input drops out of a softmax); g the output
    NPN's area and R_f.
    """

    name: ClassVar[str] = "softmax"
    kind: ClassVar[str] = "opamp.softmax"
    size: int = 3
    output: int = 0

    def n_inputs(self) -> int:
        return self.size

    def parameters(self) -> tuple[str, ...]:
        return ("gain", *(f"{p}_{k}" for k in range(self.size) for p in ("slope", "offset", "max_coupling")))

    def initial(self) -> np.ndarray:
        return np.append(1.0, np.tile([1.0, 0.0, 0.0], self.size))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return bounds_of((0.5, 1.5), *[(0.5, 1.5), (-1.0, 1.0), (-0.5, 0.5)] * self.size)

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        p, pts = self.check(params, x)
        per = p[1:].reshape(self.size, 3)
        m = np.max(pts, axis=1, keepdims=True)
        u = per[:, 0] * (pts + per[:, 1]) - per[:, 2] * m
        u = u - np.max(u, axis=1, keepdims=True)
        e = np.exp(u)
        return p[0] * e[:, self.output] / np.sum(e, axis=1)


@register
@dataclass(frozen=True, slots=True)
class MatMulFamily(Family):
    """One output of the offset log/antilog product sum, x = (a₀..a_{K−1}, b₀..b_{K−1}):

    y = Σₖ [gₖ·(aₖ + o)^γaₖ·(bₖ + o)^γbₖ − o·(1 + δaₖ)·aₖ − o·(1 + δbₖ)·bₖ]
        − K·o²·(1 + δ₀)
    (`MultiplierFamily` per term; the o² resistor is shared).
    """

    name: ClassVar[str] = "matmul"
    kind: ClassVar[str] = "opamp.matmul"
    inner: int = 2
    offset: float = 1.1

    def n_inputs(self) -> int:
        return 2 * self.inner

    def parameters(self) -> tuple[str, ...]:
        per = ("gain", "slope_a", "slope_b", "sub_a_error", "sub_b_error")
        return (*(f"{p}_{k}" for k in range(self.inner) for p in per), "sub_0_error")

    def initial(self) -> np.ndarray:
        return np.append(np.tile([1.0, 1.0, 1.0, 0.0, 0.0], self.inner), 0.0)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        per = [(0.5, 1.5), (0.8, 1.2), (0.8, 1.2), (-0.5, 0.5), (-0.5, 0.5)]
        return bounds_of(*(per * self.inner), (-0.5, 0.5))

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        p, pts = self.check(params, x)
        o, k = self.offset, self.inner
        terms = p[:-1].reshape(k, 5)
        a, b = pts[:, :k], pts[:, k:]
        g, ga, gb, da, db = (terms[:, i] for i in range(5))
        prod = g * np.maximum(a + o, 1e-12) ** ga * np.maximum(b + o, 1e-12) ** gb
        return np.sum(prod - o * (1 + da) * a - o * (1 + db) * b, axis=1) - k * o * o * (1 + p[-1])


@register
@dataclass(frozen=True, slots=True)
class JunctionFamily(Family):
    """Mirror junction y = Σ gₖ·(1 + εₖ)·xₖ + b·(1 + ε_b) + o: one ratio error per copy, an offset."""

    name: ClassVar[str] = "junction"
    kind: ClassVar[str] = "current.junction"
    gains: tuple[float, ...] = (1.0, -0.5)
    bias: float = 0.2

    def n_inputs(self) -> int:
        return len(self.gains)

    def parameters(self) -> tuple[str, ...]:
        return (*(f"eps_{k}" for k in range(len(self.gains))), "eps_bias", "offset")

    def initial(self) -> np.ndarray:
        return np.zeros(len(self.gains) + 2)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return bounds_of(*[(-0.5, 0.5)] * (len(self.gains) + 1), (-0.5, 0.5))

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        p, pts = self.check(params, x)
        k = len(self.gains)
        return pts @ (np.asarray(self.gains) * (1 + p[:k])) + self.bias * (1 + p[k]) + p[k + 1]


@dataclass(frozen=True, slots=True)
class _CopyRatioFamily(Family):
    """A window of current copies: one mirror-ratio error εₖ per input copy and an output offset."""

    window: int = 4

    def n_inputs(self) -> int:
        return self.window

    def parameters(self) -> tuple[str, ...]:
        return (*(f"eps_{k}" for k in range(self.window)), "offset")

    def initial(self) -> np.ndarray:
        return np.zeros(self.window + 1)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return bounds_of(*[(-0.5, 0.5)] * (self.window + 1))


@register
@dataclass(frozen=True, slots=True)
class MirrorAverageFamily(_CopyRatioFamily):
    """Mirror average y = gain·Σ (1 + εₖ)·xₖ + o: one ratio error per window copy, an offset."""

    name: ClassVar[str] = "mirror_average"
    kind: ClassVar[str] = "current.average"
    gain: float = 0.25

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        p, pts = self.check(params, x)
        return self.gain * (pts @ (1 + p[:-1])) + p[-1]


@register
@dataclass(frozen=True, slots=True)
class WinnerTakeAllFamily(_CopyRatioFamily):
    """Lazzaro WTA y = max_k((1 + εₖ)·xₖ) + o: each input copy's ratio error, the read-out chain's offset."""

    name: ClassVar[str] = "wta"
    kind: ClassVar[str] = "current.wta"

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        p, pts = self.check(params, x)
        return np.max(pts * (1 + p[:-1]), axis=1) + p[-1]


@register
@dataclass(frozen=True, slots=True)
class CurrentSoftmaxFamily(Family):
    """Output ``output`` of the differential-pair softmax: y = g·softmax(u)_output + c,
    u_k = β⁺_k·max(x_k, 0) + β⁻_k·min(x_k, 0) + o_k.

    β⁺_k, β⁻_k: the gate-voltage slope of input k's PMOS (positive part) and NMOS (negative part)
    copies against R and n; o_k: its pair device's ΔVt/(n·U_T) relative to input 0's (a shift
    common to all inputs drops out, so o_0 = 0); g and c: the output chain's gain and leakage.
    """

    name: ClassVar[str] = "current_softmax"
    kind: ClassVar[str] = "current.softmax"
    size: int = 3
    output: int = 0

    def n_inputs(self) -> int:
        return self.size

    def parameters(self) -> tuple[str, ...]:
        per = [f"{p}_{k}" for k in range(self.size) for p in ("slope_pos", "slope_neg")]
        return ("gain", "offset", *per, *(f"shift_{k}" for k in range(1, self.size)))

    def initial(self) -> np.ndarray:
        return np.concatenate([[1.0, 0.0], np.ones(2 * self.size), np.zeros(self.size - 1)])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return bounds_of((0.5, 1.5), (-0.2, 0.2), *[(0.5, 1.5)] * (2 * self.size), *[(-2.0, 2.0)] * (self.size - 1))

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        p, pts = self.check(params, x)
        slopes = p[2:2 + 2 * self.size].reshape(self.size, 2)
        u = slopes[:, 0] * np.maximum(pts, 0.0) + slopes[:, 1] * np.minimum(pts, 0.0)
        u = u + np.concatenate([[0.0], p[2 + 2 * self.size:]])
        e = np.exp(u - np.max(u, axis=1, keepdims=True))
        return p[0] * e[:, self.output] / np.sum(e, axis=1) + p[1]
