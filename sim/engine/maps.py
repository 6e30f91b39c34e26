"""Elementwise maps a hardware model applies around a kernel, each with its derivative.

Most analog kernels have the form ``post(kernel(pre(x), wmap(p)))`` (`ENGINE.md`):
- `SignalMap` on a signal (``pre``: DAC quantization, input rectification; ``post``: ADC, fitted
  gain/offset/saturation);
- `ParamMap` on a node's trainable arrays (``wmap``: weight levels, mismatch gains, PCM
  programming noise and drift).

Each ``forward`` returns its result and what ``backward`` needs. A map whose true derivative is
zero almost everywhere (a quantizer) uses a straight-through estimator and says so in its
``ste`` flag. Maps compose: `chain` applies a list in order, `chain_back` differentiates it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numba import njit

Array = np.ndarray
Params = dict[str, Array]


class SignalMap:
    ste: ClassVar[bool] = False

    def forward(self, x: Array, rng: np.random.Generator | None) -> tuple[Array, Any]:
        raise NotImplementedError

    def backward(self, saved: Any, gy: Array) -> Array:
        raise NotImplementedError


class ParamMap:
    ste: ClassVar[bool] = False
    deterministic: ClassVar[bool] = False  # no random draw: at inference the engine may reuse its result

    def forward(self, p: Mapping[str, Array], rng: np.random.Generator | None) -> tuple[Params, Any]:
        raise NotImplementedError

    def backward(self, saved: Any, g: Mapping[str, Array]) -> Params:
        raise NotImplementedError


@dataclass(eq=False)
class ContentMemo:
    """The last value computed from some parameter arrays, returned again while their content is
    unchanged: optimizers update arrays in place, so equal content, not identity, is the test."""

    _arrays: dict[str, Array] | None = None
    _value: Any = None

    def get(self, arrays: Mapping[str, Array | None], compute: Callable[[], Any]) -> Any:
        kept, now = self._arrays, {k: v for k, v in arrays.items() if v is not None}
        if kept is None or kept.keys() != now.keys() or not all(
                kept[k].dtype == v.dtype and np.array_equal(kept[k], v) for k, v in now.items()):
            self._value = compute()
            self._arrays = {k: np.array(v, copy=True) for k, v in now.items()}
        return self._value


@dataclass(frozen=True)
class NodeMaps:
    """What one hardware model does to one node: on its first input, its parameters, its output."""

    pre: tuple[SignalMap, ...] = ()
    wmap: tuple[ParamMap, ...] = ()
    post: tuple[SignalMap, ...] = ()

    def __add__(self, other: NodeMaps) -> NodeMaps:
        return NodeMaps(self.pre + other.pre, self.wmap + other.wmap, self.post + other.post)

    def __bool__(self) -> bool:
        return bool(self.pre or self.wmap or self.post)


def chain(maps: Sequence[SignalMap | ParamMap], value: Any, rng, save: bool) -> tuple[Any, list[Any]]:
    """Apply ``maps`` in order (a signal or a parameter dict); keep what each backward needs if ``save``."""
    saved = []
    for m in maps:
        value, s = m.forward(value, rng)
        saved.append(s if save else None)
    return value, saved


def chain_back(maps: Sequence[SignalMap | ParamMap], saved: list[Any], grad: Any) -> Any:
    """The gradient through ``maps``, last map first."""
    for m, s in zip(reversed(maps), reversed(saved)):
        grad = m.backward(s, grad)
    return grad


# --- common maps ------------------------------------------------------------------------------
class Rectify(SignalMap):
    """x → max(0, x): a current-mode input soma (currents cannot be negative). Derivative: 1[x > 0]."""

    def forward(self, x, rng):
        if x.size and x.min() >= 0:  # already a current (one read, no copy); NaN fails the test
            return x, x
        y = np.maximum(x, 0)
        return y, y

    def backward(self, saved, gy):
        return gy * (saved > 0)


@njit(cache=True, nogil=True)
def _quantize(x, step, levels, y):  # pragma: no cover - compiled
    """The converter rule in one pass (NumPy needs four over the signal), in the signal's dtype."""
    half = x.dtype.type(0.5)
    for i in range(x.size):
        k = np.floor(x[i] / step + half)
        k = k if k > -levels else -levels
        y[i] = (k if k < levels else levels) * step


@dataclass
class Quantize(SignalMap):
    """A symmetric mid-tread converter (DAC or ADC): q(v) = Δ·clip(floor(v/Δ + ½), −L, L),
    L = 2^(bits−1) − 1, Δ = fs/L (`circuits.spice.crossbar_blocks.Quantizer`'s rule).
    A ``full_scale`` of None is calibrated once, on the first signal seen, to its largest |v|
    (a converter's range set from calibration data, as on IBM's chip).
    Straight-through estimator: ∂q/∂v = 1 inside ±fs, 0 where it saturates."""

    bits: int
    full_scale: float | None = None
    ste: ClassVar[bool] = True

    def forward(self, x, rng):
        if self.full_scale is None:
            peak = float(np.max(np.abs(x))) if x.size else 0.0
            self.full_scale = peak if peak > 0 else 1.0
        levels = 2 ** (self.bits - 1) - 1
        y = np.empty(x.shape, dtype=x.dtype)  # C order, so reshape(-1) is a view
        _quantize(np.ascontiguousarray(x).reshape(-1), x.dtype.type(self.full_scale / levels), x.dtype.type(levels),
                  y.reshape(-1))
        return y, (x, self.full_scale)  # the STE mask only when a backward asks for it

    def backward(self, saved, gy):
        x, fs = saved
        return gy * (np.abs(x) <= fs)


@dataclass(frozen=True)
class RelativeNoise(ParamMap):
    """p → p·(1 + σ·ε), ε ~ N(0, 1) fresh on every forward pass (the seed documents' 1e-3 parameter
    error). Exact derivative: ∂/∂p = 1 + σ·ε."""

    sigma: float

    def forward(self, p, rng):
        if rng is None:
            raise ValueError("noise needs a random generator")
        out, saved = {}, {}
        for k, v in p.items():
            f = (1 + self.sigma * rng.standard_normal(v.shape, dtype=v.dtype)).astype(v.dtype, copy=False)
            out[k], saved[k] = v * f, f
        return out, saved

    def backward(self, saved, g):
        return {k: v * saved[k] if k in saved else v for k, v in g.items()}


@dataclass(frozen=True)
class FixedGain(ParamMap):
    """p[k] → p[k]·G[k] with per-element gains fixed for one chip (or drawn per call by the caller).
    Exact derivative: G."""

    gains: Mapping[str, Array]
    deterministic: ClassVar[bool] = True

    def forward(self, p, rng):
        return {k: v * self.gains[k].astype(v.dtype, copy=False) if k in self.gains else v
                for k, v in p.items()}, None

    def backward(self, saved, g):
        return {k: v * self.gains[k].astype(v.dtype, copy=False) if k in self.gains else v
                for k, v in g.items()}
