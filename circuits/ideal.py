"""Ideal transfer functions shared by primitives of different technologies.

The same math (a weighted sum, a rectifier, a window max) is built as an op-amp circuit,
a current-mode circuit or a crossbar; each primitive class calls the function here.
Accumulation is float64; results come back in the input's dtype.
"""

from __future__ import annotations

import numpy as np


def dense(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """y = x·Wᵀ + b over the last axis; with 3-D weights (G, out, in), per group over x[..., G, in]."""
    acc = x.astype(np.float64, copy=False)
    w = weights.astype(np.float64, copy=False)
    if w.ndim == 2:
        y = acc @ w.T
    else:
        y = np.einsum("...gi,goi->...go", acc, w, optimize=True)
    if bias is not None:
        y = y + bias
    return y.astype(_float_dtype(x), copy=False)


def weighted_sum(inputs: tuple[np.ndarray, ...], gains: tuple, bias) -> np.ndarray:
    """y = Σ gᵢ·xᵢ + b with NumPy broadcasting (Kirchhoff's current law, or an inverting summer)."""
    dtype = np.result_type(*[_float_dtype(x) for x in inputs])
    y = None
    for x, g in zip(inputs, gains, strict=True):
        term = x.astype(np.float64, copy=False) * g
        y = term if y is None else y + term
    assert y is not None
    if bias is not None:
        y = y + bias
    return np.asarray(y).astype(dtype, copy=False)


def rectify(x: np.ndarray, negative_slope: float) -> np.ndarray:
    """max(0, x) + slope·min(0, x): a precision rectifier, or leaky with slope ≠ 0."""
    if negative_slope == 0.0:
        return np.maximum(x, 0).astype(x.dtype, copy=False)
    return np.where(x >= 0, x, x * x.dtype.type(negative_slope)).astype(x.dtype, copy=False)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), evaluated without overflow."""
    xf = x.astype(np.float64)
    return (0.5 * (1.0 + np.tanh(0.5 * xf))).astype(x.dtype)


def softmax(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """exp(x - max) / Σ exp(x - max) jointly over ``axes``."""
    xf = x.astype(np.float64)
    e = np.exp(xf - np.max(xf, axis=axes, keepdims=True))
    return (e / np.sum(e, axis=axes, keepdims=True)).astype(x.dtype)


def window_sum(x: np.ndarray, axes: tuple[int, ...], gain, keepdims: bool) -> np.ndarray:
    """Σ over ``axes`` times ``gain`` (1/count for an average)."""
    y = np.sum(x.astype(np.float64), axis=axes, keepdims=keepdims) * gain
    return np.asarray(y).astype(x.dtype, copy=False)


def window_max(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """max over ``axes``."""
    return np.max(x, axis=axes, keepdims=keepdims)


def _float_dtype(x: np.ndarray) -> np.dtype:
    return x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
