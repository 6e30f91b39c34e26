"""Gemm, MatMul and Conv: the ops that become resistor/conductance arrays in Kelvin.

All three accumulate in float64 (int64 for integer inputs) and return the input dtype.
Conv is an im2col gather of the sliding-window view followed by one batched matmul over
groups, so a ResNet-scale forward pass takes seconds, not minutes.
"""

from __future__ import annotations

from math import prod

import numpy as np

from circuits.errors import ModelError

from ._args import Attrs, Inputs, optional
from ._window import geometry, windows
from .registry import register


def _acc(x: np.ndarray) -> np.ndarray:
    """``x`` in the wide accumulation dtype: float64 for floats, int64/uint64 for integers."""
    if x.dtype.kind == "f":
        return x.astype(np.float64, copy=False)
    if x.dtype.kind in "iu":
        return x.astype(np.uint64 if x.dtype.kind == "u" else np.int64, copy=False)
    return x


@register("Gemm", (7, 9, 11, 13))
def gemm(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Y = alpha * A' B' + beta * C, with A', B' optionally transposed and C broadcast to (M, N)."""
    a, b, c = inputs[0], inputs[1], optional(inputs, 2)
    if a.ndim != 2 or b.ndim != 2:
        raise ModelError(f"Gemm: A and B must be 2-D, got shapes {a.shape} and {b.shape}")
    a2 = _acc(a).T if attrs["transA"] else _acc(a)
    b2 = _acc(b).T if attrs["transB"] else _acc(b)
    if a2.shape[1] != b2.shape[0]:
        raise ModelError(f"Gemm: inner dimensions differ: A' is {a2.shape}, B' is {b2.shape}")
    y = attrs["alpha"] * (a2 @ b2)
    if c is not None:
        try:
            cb = np.broadcast_to(_acc(c), y.shape)
        except ValueError as err:
            raise ModelError(f"Gemm: C of shape {c.shape} does not broadcast to {y.shape}") from err
        y = y + attrs["beta"] * cb
    return [y.astype(a.dtype)]


@register("MatMul", (1, 9, 13))
def matmul(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """numpy.matmul semantics: 1-D operands promoted, leading (batch) axes broadcast."""
    a, b = inputs[0], inputs[1]
    try:
        y = np.matmul(_acc(a), _acc(b))
    except ValueError as err:
        raise ModelError(f"MatMul: shapes {a.shape} and {b.shape} do not multiply") from err
    return [np.asarray(y).astype(a.dtype)]


@register("Conv", (1, 11, 22))
def conv(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """N-D grouped, strided, dilated, padded convolution (cross-correlation, as in ONNX)."""
    x, w, bias = inputs[0], inputs[1], optional(inputs, 2)
    if x.ndim < 3 or w.ndim != x.ndim:
        raise ModelError(
            f"Conv: X {x.shape} and W {w.shape} must both be (N, C, D1, ...) of equal rank"
        )
    kernel = tuple(w.shape[2:])
    given = attrs.get("kernel_shape")
    if given is not None and len(given) and tuple(int(k) for k in given) != kernel:
        raise ModelError(f"Conv: kernel_shape={list(given)} does not match W shape {w.shape}")
    groups = int(attrs["group"])
    n, c = x.shape[:2]
    m = w.shape[0]
    if groups < 1 or c % groups or m % groups or w.shape[1] * groups != c:
        raise ModelError(f"Conv: group={groups} does not fit X channels {c} and W shape {w.shape}")
    cg, mg = c // groups, m // groups
    win = geometry("Conv", x.shape[2:], kernel, attrs)
    out = win.out_shape
    taps = windows(_acc(x), win, 0)  # (N, C, *out, *kernel)
    taps = taps.reshape((n, groups, cg) + out + kernel)
    d = len(out)
    order = (1, 0) + tuple(range(3, 3 + d)) + (2,) + tuple(range(3 + d, 3 + 2 * d))
    cols = taps.transpose(order).reshape(groups, n * prod(out), cg * prod(kernel))
    wmat = _acc(w).reshape(groups, mg, cg * prod(kernel)).transpose(0, 2, 1)
    y = np.matmul(cols, wmat)  # (G, N*P, Mg)
    y = y.reshape((groups, n) + out + (mg,))
    y = y.transpose((1, 0, d + 2) + tuple(range(2, 2 + d))).reshape((n, m) + out)
    if bias is not None:
        y = y + _acc(bias).reshape((m,) + (1,) * d)
    return [y.astype(x.dtype)]
