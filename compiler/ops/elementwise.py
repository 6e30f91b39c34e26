"""Elementwise ops: activations, arithmetic with multidirectional broadcasting, BatchNormalization.

Also the transformer's pointwise math: Sqrt, Pow, Erf and Gelu (exact or tanh form).

Every kernel keeps the input dtype (float16/32/64 stay as they are). Sigmoid, Softmax and
Log are written so that large or non-positive inputs give inf/0/nan without warnings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import math
from functools import reduce
from typing import Any

import numpy as np

from circuits import ideal
from circuits.errors import ModelError, UnsupportedError

from ._args import Attrs, Inputs, axis, optional
from .registry import register


@register("Relu", (6, 13, 14))
def relu(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """max(x, 0)."""
    return [np.maximum(inputs[0], 0)]


@register("LeakyRelu", (6, 16))
def leaky_relu(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """x for x >= 0, alpha * x otherwise."""
    x = inputs[0]
    return [np.where(x >= 0, x, x * np.asarray(attrs["alpha"], dtype=x.dtype))]


@register("Sigmoid", (6, 13))
def sigmoid(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """1 / (1 + exp(-x)), evaluated from exp(-|x|) so it never overflows."""
    return [ideal.sigmoid(inputs[0])]


@register("Tanh", (6, 13))
def tanh(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """tanh(x)."""
    return [np.tanh(inputs[0])]


@register("Exp", (6, 13))
def exp(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """exp(x); overflow gives inf."""
    with np.errstate(over="ignore"):
        return [np.exp(inputs[0])]


@register("Log", (6, 13))
def log(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Natural log; 0 gives -inf and negatives nan."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return [np.log(inputs[0])]


@register("Sqrt", (6, 13))
def sqrt(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Square root; negatives give nan."""
    with np.errstate(invalid="ignore"):
        return [np.sqrt(inputs[0])]


@register("Pow", (7, 12, 13, 15))
def pow_(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """X ** Y with broadcasting, in X's dtype (Y may have another numeric type from v12)."""
    x, y = inputs[0], inputs[1]
    if x.dtype.kind in "iu" and y.dtype.kind in "iu":
        return [_broadcast("Pow", np.power, [x, y.astype(x.dtype)])]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        z = _broadcast("Pow", np.power, [x.astype(np.float64), y.astype(np.float64)])
        return [z.astype(x.dtype)]


_erf = np.vectorize(math.erf, otypes=[np.float64])


@register("Erf", (9, 13))
def erf(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """The error function, elementwise (math.erf in float64)."""
    x = inputs[0]
    return [_erf(x.astype(np.float64)).astype(x.dtype) if x.size else x.copy()]


@register("Gelu", (20,))
def gelu(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """x·Φ(x) = x/2·(1 + erf(x/√2)), or with approximate="tanh" x/2·(1 + tanh(√(2/π)(x + 0.044715x³)))."""
    x, form = inputs[0], attrs["approximate"]
    xf = x.astype(np.float64)
    if form == "tanh":
        inner = np.tanh(math.sqrt(2 / math.pi) * (xf + 0.044715 * xf**3))
    elif form == "none":
        inner = _erf(xf / math.sqrt(2)) if x.size else xf
    else:
        raise ModelError(f"Gelu: approximate must be 'none' or 'tanh', got {form!r}")
    return [(0.5 * xf * (1 + inner)).astype(x.dtype)]


def _bound(value: Any, dtype: np.dtype) -> np.ndarray:
    """A Clip bound in the input dtype (FLT_MAX saturates to inf in float16)."""
    with np.errstate(over="ignore"):
        return np.asarray(value).astype(dtype)


@register("Clip", (6, 11, 12, 13))
def clip(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """min(max(x, lo), hi): bounds are attributes before v11, optional scalar inputs from v11."""
    x = inputs[0]
    if version < 11:
        lo, hi = attrs["min"], attrs["max"]
    else:
        lo, hi = optional(inputs, 1), optional(inputs, 2)
    if lo is not None:
        x = np.maximum(x, _bound(lo, x.dtype))
    if hi is not None:
        x = np.minimum(x, _bound(hi, x.dtype))
    return [x]


def _normalized(op: str, fn, x: np.ndarray, attrs: Attrs, version: int) -> np.ndarray:
    """``fn(x, axes)`` (`circuits.ideal.softmax` or `log_softmax`): before v13 over the 2-D coercion at
    ``axis``, from v13 along ``axis``; in x's dtype."""
    if x.ndim == 0:
        raise ModelError(f"{op}: input must have rank >= 1")
    ax = axis(op, int(attrs["axis"]), x.ndim)
    if version < 13:
        flat = x.reshape(int(np.prod(x.shape[:ax])), int(np.prod(x.shape[ax:])))
        return fn(flat, (1,)).astype(x.dtype, copy=False).reshape(x.shape)
    return fn(x, (ax,)).astype(x.dtype, copy=False)


@register("Softmax", (1, 11, 13))
def softmax(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """exp(x) / Σ exp(x) (`circuits.ideal.softmax`, the primitive's own statement)."""
    return [_normalized("Softmax", ideal.softmax, inputs[0], attrs, version)]


@register("LogSoftmax", (1, 11, 13))
def log_softmax(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """x − ln Σ exp(x), over the same axes as Softmax at the same version (`circuits.ideal.log_softmax`)."""
    return [_normalized("LogSoftmax", ideal.log_softmax, inputs[0], attrs, version)]


Binary = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _broadcast(op: str, fn: Binary, operands: Sequence[np.ndarray]) -> np.ndarray:
    """Apply the binary ufunc ``fn`` left to right with numpy (= ONNX multidirectional) broadcasting."""
    try:
        return reduce(fn, operands)
    except ValueError as err:
        shapes = ", ".join(str(a.shape) for a in operands)
        raise ModelError(f"{op}: input shapes {shapes} do not broadcast") from err


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b; integers divide with truncation toward zero, as in C."""
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        with np.errstate(divide="ignore", invalid="ignore"):
            return (a - np.fmod(a, b)) // np.where(b == 0, 1, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(a, b)


@register("Add", (7, 13, 14))
def add(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """A + B with broadcasting."""
    return [_broadcast("Add", np.add, inputs[:2])]


@register("Sub", (7, 13, 14))
def sub(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """A - B with broadcasting."""
    return [_broadcast("Sub", np.subtract, inputs[:2])]


@register("Mul", (7, 13, 14))
def mul(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """A * B with broadcasting."""
    return [_broadcast("Mul", np.multiply, inputs[:2])]


@register("Div", (7, 13, 14))
def div(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """A / B with broadcasting."""
    return [_broadcast("Div", _divide, inputs[:2])]


@register("Sum", (6, 8, 13))
def sum_(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Elementwise sum of any number of inputs (v6 requires equal shapes; broadcasting covers it)."""
    return [np.asarray(_broadcast("Sum", np.add, inputs))]


@register("BatchNormalization", (7, 9, 14, 15))
def batch_normalization(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Inference form: Y = (X - mean) / sqrt(var + epsilon) * scale + B; returns only Y."""
    if attrs.get("training_mode", 0):
        raise UnsupportedError(
            "BatchNormalization: training_mode=1 is not supported; Kelvin compiles inference "
            "graphs, so export the model in eval mode"
        )
    x = inputs[0]
    if x.ndim < 2:
        raise ModelError(f"BatchNormalization: input must be (N, C, ...), got shape {x.shape}")

    def per_channel(p: np.ndarray) -> np.ndarray:
        # (C,) when spatial, (C, D1, ...) when v7 spatial=0: pad with size-1 axes to X's rank - 1.
        p = np.asarray(p, dtype=np.float64)
        return p.reshape(p.shape + (1,) * (x.ndim - 1 - p.ndim))

    scale, bias, mean, var = (per_channel(p) for p in inputs[1:5])
    y = (x.astype(np.float64) - mean) / np.sqrt(var + attrs["epsilon"]) * scale + bias
    return [y.astype(x.dtype)]
