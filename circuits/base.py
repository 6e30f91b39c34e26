"""The contract every analog primitive keeps: ideal math, device bill, parameter summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

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
