"""MaxPool, AveragePool and GlobalAveragePool (ReduceMean lives with ReduceSum in ``reduce``).

The pools reuse the Conv window geometry (``_window``); AveragePool divides each window
sum by the number of taps that land on the input, or on input + pads when
count_include_pad is set (taps in a ceil-mode overhang never count).
"""

from __future__ import annotations

import numpy as np

from circuits.errors import ModelError

from ._args import Attrs, Inputs
from ._window import geometry, tap_counts, windows
from .registry import register


def _kernel(op: str, x: np.ndarray, attrs: Attrs) -> tuple[int, ...]:
    """The required kernel_shape, checked against the input rank."""
    kernel = attrs.get("kernel_shape")
    if not kernel:
        raise ModelError(f"{op}: the kernel_shape attribute is required")
    if x.ndim != len(kernel) + 2:
        raise ModelError(f"{op}: input of shape {x.shape} does not match kernel_shape={list(kernel)}")
    return tuple(int(k) for k in kernel)


def _lowest(dtype: np.dtype) -> float | int:
    """The padding value of a max window: the lowest finite value, so an all-padding window
    gives -FLT_MAX rather than -inf, as onnxruntime does."""
    return np.finfo(dtype).min if dtype.kind == "f" else np.iinfo(dtype).min


@register("MaxPool", (1, 8, 10, 11, 12, 22))
def max_pool(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Window maximum; returns only Y (the Indices output is not supported)."""
    x = inputs[0]
    kernel = _kernel("MaxPool", x, attrs)
    win = geometry("MaxPool", x.shape[2:], kernel, attrs, ceil_mode=bool(attrs.get("ceil_mode", 0)))
    taps = windows(x, win, _lowest(x.dtype))
    return [taps.max(axis=tuple(range(-len(kernel), 0)))]


@register("AveragePool", (7, 10, 11, 19, 22))
def average_pool(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Window mean over the taps that count (see module docstring)."""
    x = inputs[0]
    kernel = _kernel("AveragePool", x, attrs)
    win = geometry("AveragePool", x.shape[2:], kernel, attrs, ceil_mode=bool(attrs.get("ceil_mode", 0)))
    sums = windows(x.astype(np.float64), win, 0.0).sum(axis=tuple(range(-len(kernel), 0)))
    counts = tap_counts(x.shape[2:], win, include_pad=bool(attrs["count_include_pad"]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return [(sums / counts).astype(x.dtype)]


@register("GlobalAveragePool", (1, 22))
def global_average_pool(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Mean over every spatial axis, kept as size-1 axes: (N, C, D1, ...) -> (N, C, 1, ...)."""
    x = inputs[0]
    y = x.astype(np.float64).mean(axis=tuple(range(2, x.ndim)), keepdims=True)
    return [y.astype(x.dtype)]
