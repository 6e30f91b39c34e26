"""The contract every analog primitive keeps: ideal math, device bill, parameter summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np

from circuits import ideal
from circuits.errors import ParameterError


@dataclass(frozen=True, slots=True, eq=False)
class Primitive:
    """A bank of identical analog circuits computing one tensor.

    Subclasses set ``kind`` (registry key, ``technology.name``) and implement ``ideal``
    (the exact function the bank computes with ideal devices, vectorized over the batch)
    and ``devices`` (how many of each device the bank uses for ``lanes`` parallel outputs).
    """

    kind: ClassVar[str] = "abstract"
    n_inputs: ClassVar[int] = 1
    params: ClassVar[tuple[str, ...]] = ()
    """Fields that are trainable parameters (arrays), addressed as ``<node>.<field>`` by the engine."""

    def parameters(self) -> dict[str, np.ndarray]:
        """The trainable arrays by field name (fields left as None are absent)."""
        out = {}
        for name in self.params:
            v = getattr(self, name)
            if v is not None:
                out[name] = np.asarray(v)
        return out

    def with_parameters(self, **arrays: np.ndarray) -> Primitive:
        """A copy with some trainable fields replaced (validated like any construction)."""
        unknown = set(arrays) - set(self.params)
        if unknown:
            raise ParameterError(f"{self.kind}: not trainable parameters: {', '.join(sorted(unknown))}")
        return replace(self, **arrays)

    def ideal(self, *inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def devices(self, lanes: int) -> Counter[str]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-ready parameters; arrays are summarised by shape and statistics."""
        out: dict[str, Any] = {}
        for f in fields(self):
            out[f.name] = summarize(getattr(self, f.name))
        return out


def summarize(value: Any) -> Any:
    """A small JSON-ready description of a parameter value."""
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return value.astype(float).ravel().tolist() if value.dtype.kind == "f" else value.ravel().tolist()
        v = value.astype(np.float64)
        return {
            "shape": list(value.shape),
            "min": float(v.min()),
            "max": float(v.max()),
            "mean": float(v.mean()),
            "std": float(v.std()),
            "nonzero": int(np.count_nonzero(v)),
        }
    if isinstance(value, (tuple, list)):
        return [summarize(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def as_finite_array(name: str, value: Any, ndim: tuple[int, ...] | None = None) -> np.ndarray:
    """Validate a numeric parameter: finite, of an allowed rank."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise ParameterError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim not in ndim:
        raise ParameterError(f"{name}: expected rank in {ndim}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name}: contains non-finite values")
    return arr


def normalize_axes(name: str, axes: tuple[int, ...]) -> tuple[int, ...]:
    """Axes are stored negative (counted from the end) so they survive a batch dimension."""
    if not axes:
        raise ParameterError(f"{name}: at least one axis is required")
    if any(a >= 0 for a in axes):
        raise ParameterError(f"{name}: axes must be negative (counted from the last), got {axes}")
    return tuple(sorted(set(axes)))


@dataclass(frozen=True, slots=True, eq=False)
class LinearBank(Primitive):
    """Any technology's linear layer: y = W·x + b, W (out, in) or grouped (groups, out, in)."""

    params: ClassVar[tuple[str, ...]] = ("weights", "bias")
    weights: np.ndarray
    bias: np.ndarray | None = None

    def __post_init__(self) -> None:
        w = as_finite_array("weights", self.weights, ndim=(2, 3))
        if self.bias is not None:
            b = as_finite_array("bias", self.bias)
            if b.shape != w.shape[:-1]:
                raise ParameterError(f"bias: shape {b.shape} does not match weights {w.shape}")

    def ideal(self, x: np.ndarray) -> np.ndarray:
        return ideal.dense(x, self.weights, self.bias)


@dataclass(frozen=True, slots=True, eq=False)
class WeightedSum(Primitive):
    """Any technology's per-element sum of signals: y = Σ gᵢ·xᵢ + b (NumPy broadcasting)."""

    gains: tuple[np.ndarray | float, ...]
    bias: np.ndarray | float | None = None

    def __post_init__(self) -> None:
        if not self.gains:
            raise ParameterError("gains: at least one input is required")
        for i, g in enumerate(self.gains):
            as_finite_array(f"gains[{i}]", g)
        if self.bias is not None:
            as_finite_array("bias", self.bias)

    @property
    def n_inputs(self) -> int:  # type: ignore[override]
        return len(self.gains)

    def ideal(self, *xs: np.ndarray) -> np.ndarray:
        return ideal.weighted_sum(xs, self.gains, self.bias)


@dataclass(frozen=True, slots=True, eq=False)
class Softmax(Primitive):
    """Any technology's softmax: y = exp(x − max) / Σ exp(x − max) jointly over ``axes`` (negative axes)."""

    axes: tuple[int, ...] = (-1,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "axes", normalize_axes("axes", self.axes))

    def ideal(self, x: np.ndarray) -> np.ndarray:
        return ideal.softmax(x, self.axes)


@dataclass(frozen=True, slots=True, eq=False)
class WindowMax(Primitive):
    """Any technology's max over a window: y = max over ``axes`` (negative axes)."""

    axes: tuple[int, ...] = (-1,)
    window: int = 1
    keepdims: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "axes", normalize_axes("axes", self.axes))
        if self.window < 1:
            raise ParameterError(f"window: must be >= 1, got {self.window}")

    def ideal(self, x: np.ndarray) -> np.ndarray:
        return ideal.window_max(x, self.axes, self.keepdims)


@dataclass(frozen=True, slots=True, eq=False)
class WindowSum(Primitive):
    """Any technology's scaled window sum: y = gain·Σ x over ``axes`` (gain = 1/count for a mean)."""

    axes: tuple[int, ...] = (-1,)
    gain: np.ndarray | float = 1.0
    window: int = 1
    keepdims: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "axes", normalize_axes("axes", self.axes))
        as_finite_array("gain", self.gain)
        if self.window < 1:
            raise ParameterError(f"window: must be >= 1, got {self.window}")

    def ideal(self, x: np.ndarray) -> np.ndarray:
        return ideal.window_sum(x, self.axes, self.gain, self.keepdims)
