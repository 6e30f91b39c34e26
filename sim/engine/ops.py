"""Backward passes of the ONNX-level ops the engine executes (digital periphery and wiring).

Forward is the op's own NumPy semantics (`compiler.ops`, one registry keyed by op and schema
version); the gradient of each op sits here, keyed the same way by op type, and calls
`circuits.ideal` where the math is a primitive's.

Routing ops (Reshape, Transpose, Flatten, Concat, Split, Slice, Gather, Expand, Im2Col,
ColToImage, …) share one backward: the op's own kernel is run once on integer element ids of its signal
inputs, which gives, for every output element, the input element it came from (0 for padding
or constants); the gradient is then a scatter-add (`np.bincount`). A multi-output op (Split)
maps all its outputs, concatenated, and takes their gradients concatenated the same way. This is the trick
`compiler.netlist._wire` uses for nets, so wiring can never disagree between the engine, its
gradient and the netlist.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from circuits import ideal
from circuits.errors import UnsupportedError
from compiler.ir import WIRING_OPS
from compiler.ops import lookup

Array = np.ndarray
# grad(args, outputs, attrs, version, gy) -> one gradient per input slot (None: no gradient)
OpGrad = Callable[[Sequence[Array | None], Sequence[Array], Mapping[str, Any], int, Array], list[Array | None]]

OP_GRADS: dict[str, OpGrad] = {}
RESHAPES = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"})
NO_SIGNAL = frozenset({"Shape", "Constant", "ConstantOfShape", "Range", "Equal"})


def grad(*ops: str) -> Callable[[OpGrad], OpGrad]:
    def deco(fn: OpGrad) -> OpGrad:
        for op in ops:
            OP_GRADS[op] = fn
        return fn
    return deco


def has_grad(op: str) -> bool:
    return op in OP_GRADS or op in WIRING_OPS


@grad("Relu")
def _relu(args, outs, attrs, version, gy):
    return [ideal.rectify_backward(gy, outs[0], 0.0)]


@grad("LeakyRelu")
def _leaky(args, outs, attrs, version, gy):
    return [ideal.rectify_backward(gy, args[0], float(attrs["alpha"]))]


@grad("Sigmoid")
def _sigmoid(args, outs, attrs, version, gy):
    return [ideal.sigmoid_backward(gy, outs[0])]


@grad("Tanh")
def _tanh(args, outs, attrs, version, gy):
    return [ideal.tanh_backward(gy, outs[0])]


@grad("Exp")
def _exp(args, outs, attrs, version, gy):
    return [ideal.exp_backward(gy, outs[0])]


@grad("Log")
def _log(args, outs, attrs, version, gy):
    return [ideal.log_backward(gy, args[0])]


@grad("Clip")
def _clip(args, outs, attrs, version, gy):
    x = args[0]
    if version < 11:
        lo, hi = attrs["min"], attrs["max"]
    else:
        lo = args[1] if len(args) > 1 and args[1] is not None else -np.inf
        hi = args[2] if len(args) > 2 and args[2] is not None else np.inf
    return [ideal.clip_backward(gy, x, float(lo), float(hi))] + [None] * (len(args) - 1)


def _normalized_backward(back, outs, attrs, version, gy) -> list[Array]:
    """``back(gy, y, axes)`` over the axes `compiler.ops.elementwise._normalized` used."""
    y = outs[0]
    ax = int(attrs["axis"]) % y.ndim
    if version < 13:
        flat = (int(np.prod(y.shape[:ax])), -1)
        return [back(gy.reshape(flat), y.reshape(flat), (1,)).reshape(y.shape)]
    return [back(gy, y, (ax,))]


@grad("Softmax")
def _softmax(args, outs, attrs, version, gy):
    return _normalized_backward(ideal.softmax_backward, outs, attrs, version, gy)


@grad("LogSoftmax")
def _log_softmax(args, outs, attrs, version, gy):
    return _normalized_backward(ideal.log_softmax_backward, outs, attrs, version, gy)


@grad("Add", "Sum")
def _add(args, outs, attrs, version, gy):
    return [ideal.unbroadcast(gy, a.shape) for a in args]


@grad("Sub")
def _sub(args, outs, attrs, version, gy):
    return [ideal.unbroadcast(gy, args[0].shape), ideal.unbroadcast(-gy, args[1].shape)]


@grad("Mul")
def _mul(args, outs, attrs, version, gy):
    return list(ideal.multiply_backward(gy, args[0], args[1]))


@grad("Div")
def _div(args, outs, attrs, version, gy):
    return list(ideal.divide_backward(gy, args[0], args[1]))


@grad("MatMul")
def _matmul(args, outs, attrs, version, gy):
    return list(ideal.matmul_backward(gy, args[0], args[1]))


@grad("Gemm")
def _gemm(args, outs, attrs, version, gy):
    """Y = α·A'·B' + β·C (A' = Aᵀ with transA, B' likewise), left unlowered when both factors are
    signals: ∂A' = α·gy·B'ᵀ, ∂B' = α·A'ᵀ·gy, ∂C = β·gy summed to C's shape."""
    a, b = args[0], args[1]
    ta, tb = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    a2, b2 = (a.T if ta else a), (b.T if tb else b)
    ga, gb = alpha * (gy @ b2.T), alpha * (a2.T @ gy)
    out = [(ga.T if ta else ga).astype(gy.dtype), (gb.T if tb else gb).astype(gy.dtype)]
    if len(args) > 2:
        out.append(None if args[2] is None else ideal.unbroadcast(beta * gy, np.shape(args[2])).astype(gy.dtype))
    return out


@grad("kelvin.Dense")
def _dense(args, outs, attrs, version, gy):
    gx, gw, gb = ideal.dense_backward(gy, args[0], args[1], len(args) > 2 and args[2] is not None)
    return [gx, gw, gb][: len(args)]


@grad("kelvin.WindowMax")
def _window_max(args, outs, attrs, version, gy):
    return [ideal.window_max_backward(gy, args[0], outs[0], tuple(attrs["axes"]), bool(attrs.get("keepdims", 1)))]


@grad("kelvin.WindowSum")
def _window_sum(args, outs, attrs, version, gy):
    return [ideal.window_sum_backward(gy, args[0].shape, tuple(attrs["axes"]), args[1],
                                      bool(attrs.get("keepdims", 1))), None]


@grad("GlobalAveragePool")
def _gap(args, outs, attrs, version, gy):
    x = args[0]
    axes = tuple(range(2, x.ndim))
    return [ideal.window_sum_backward(gy, x.shape, axes, 1.0 / float(np.prod(x.shape[2:])), True)]


@grad("BatchNormalization")
def _bn(args, outs, attrs, version, gy):
    x = args[0]
    scale, var = (np.asarray(p, gy.dtype) for p in (args[1], args[4]))
    k = scale / np.sqrt(var + gy.dtype.type(attrs["epsilon"]))
    return [gy * k.reshape(k.shape + (1,) * (x.ndim - 1 - k.ndim)), None, None, None, None]


@grad("Sqrt")
def _sqrt(args, outs, attrs, version, gy):
    with np.errstate(divide="ignore", invalid="ignore"):
        return [gy * 0.5 / outs[0]]


@grad("Pow")
def _pow(args, outs, attrs, version, gy):
    """z = xʸ: ∂x = y·xʸ⁻¹, ∂y = z·ln x (0 where x ≤ 0, where it has no real derivative)."""
    x, e = (np.asarray(a, np.float64) for a in args[:2])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        gx = gy * e * np.power(x, e - 1)
        ge = gy * np.asarray(outs[0], np.float64) * np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), 0.0)
    return [ideal.unbroadcast(gx, x.shape).astype(gy.dtype), ideal.unbroadcast(ge, e.shape).astype(gy.dtype)]


def _normal_pdf(x: Array) -> Array:
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


@grad("Erf")
def _erf(args, outs, attrs, version, gy):
    x = np.asarray(args[0], np.float64)
    return [(gy * 2 / math.sqrt(math.pi) * np.exp(-x * x)).astype(gy.dtype)]


@grad("Gelu")
def _gelu(args, outs, attrs, version, gy):
    """y = x·Φ(x): ∂x = Φ(x) + x·φ(x); tanh form y = x/2·(1 + t), t = tanh(c(x + 0.044715x³)):
    ∂x = (1 + t)/2 + x/2·(1 − t²)·c·(1 + 3·0.044715x²), c = √(2/π)."""
    x = np.asarray(args[0], np.float64)
    if attrs["approximate"] == "tanh":
        c = math.sqrt(2 / math.pi)
        t = np.tanh(c * (x + 0.044715 * x**3))
        d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
    else:
        phi = lookup("Erf", 13, "gelu").kernel([x / math.sqrt(2)], {}, 13)[0]  # erf(x/√2), the forward's
        d = 0.5 * (1 + phi) + x * _normal_pdf(x)
    return [(gy * d).astype(gy.dtype)]


@grad("LayerNormalization")
def _layer_norm(args, outs, attrs, version, gy):
    """x̂ = (x − μ)·s, y = x̂·γ + β over the axes from ``axis`` (s the saved InvStdDev):
    ∂x = s·(g − mean(g) − x̂·mean(g·x̂)) with g = gy·γ; ∂γ = Σ gy·x̂, ∂β = Σ gy (over the batch axes)."""
    x = np.asarray(args[0], np.float64)
    first = int(attrs["axis"]) % x.ndim
    red = tuple(range(first, x.ndim))
    mean, inv = (np.asarray(o, np.float64) for o in outs[1:3])
    xhat = (x - mean) * inv
    g = gy * np.asarray(args[1], np.float64)
    gx = inv * (g - g.mean(axis=red, keepdims=True) - xhat * (g * xhat).mean(axis=red, keepdims=True))
    out = [gx.astype(gy.dtype), ideal.unbroadcast(gy * xhat, np.shape(args[1])).astype(gy.dtype)]
    if len(args) > 2:
        out.append(None if args[2] is None else ideal.unbroadcast(gy, np.shape(args[2])).astype(gy.dtype))
    return out


@grad("Where")
def _where(args, outs, attrs, version, gy):
    cond = np.asarray(args[0], bool)
    zero = np.zeros((), gy.dtype)
    return [None, ideal.unbroadcast(np.where(cond, gy, zero), np.shape(args[1])),
            ideal.unbroadcast(np.where(cond, zero, gy), np.shape(args[2]))]


def _reduce_backward(op: str, axes_from: int, args, attrs, version, gy) -> list[Array | None]:
    """Σ or mean over the reduced axes: gy spread back over them (÷ their size for the mean)."""
    from compiler.ops.reduce import reduce_axes
    x = args[0]
    red = reduce_axes(op, args, attrs, x.ndim, version >= axes_from)
    if red is None:  # noop_with_empty_axes
        return [gy] + [None] * (len(args) - 1)
    g = gy if attrs["keepdims"] else np.expand_dims(gy, red)
    if op == "ReduceMean":
        g = g / float(np.prod([x.shape[a] for a in red]))
    return [np.broadcast_to(g, x.shape).astype(gy.dtype)] + [None] * (len(args) - 1)


@grad("ReduceSum")
def _reduce_sum(args, outs, attrs, version, gy):
    return _reduce_backward("ReduceSum", 13, args, attrs, version, gy)


@grad("ReduceMean")
def _reduce_mean(args, outs, attrs, version, gy):
    return _reduce_backward("ReduceMean", 18, args, attrs, version, gy)


# --- activations (compiler.ops.activations) ----------------------------------------------------
def _pointwise(gy: Array, d: Array) -> list[Array]:
    """An elementwise op's input gradient: gy times its derivative ``d``, in gy's dtype."""
    return [(gy * d).astype(gy.dtype)]


@grad("Abs")
def _abs(args, outs, attrs, version, gy):
    return _pointwise(gy, np.sign(args[0]))


@grad("Neg")
def _neg(args, outs, attrs, version, gy):
    return [-gy]


@grad("Elu")
def _elu(args, outs, attrs, version, gy):
    """∂x = 1 for x > 0, y + α (= α·eˣ) otherwise."""
    x = args[0]
    return _pointwise(gy, np.where(x > 0, 1, outs[0] + x.dtype.type(attrs["alpha"])))


@grad("Celu")
def _celu(args, outs, attrs, version, gy):
    x, alpha = args[0], float(attrs["alpha"])
    return _pointwise(gy, np.where(x > 0, 1, np.exp(np.minimum(x, 0) / alpha)))


@grad("Selu")
def _selu(args, outs, attrs, version, gy):
    x, gamma, alpha = args[0], float(attrs["gamma"]), float(attrs["alpha"])
    return _pointwise(gy, gamma * np.where(x > 0, 1, alpha * np.exp(np.minimum(x, 0))))


@grad("Softplus")
def _softplus(args, outs, attrs, version, gy):
    """∂x = σ(x)."""
    return _pointwise(gy, ideal.sigmoid(args[0]))


@grad("Softsign")
def _softsign(args, outs, attrs, version, gy):
    return _pointwise(gy, 1 / (1 + np.abs(args[0])) ** 2)


@grad("HardSigmoid")
def _hard_sigmoid(args, outs, attrs, version, gy):
    x, alpha, beta = args[0], float(attrs["alpha"]), float(attrs["beta"])
    u = alpha * x + beta
    return _pointwise(gy, np.where((u > 0) & (u < 1), alpha, 0.0))


@grad("HardSwish")
def _hard_swish(args, outs, attrs, version, gy):
    """∂x = 0 below −3, 1 above 3, x/3 + 1/2 between."""
    x = args[0]
    return _pointwise(gy, np.where(x < -3, 0.0, np.where(x > 3, 1.0, x / 3 + 0.5)))


@grad("PRelu")
def _prelu(args, outs, attrs, version, gy):
    x, slope = args[0], args[1]
    gx = np.where(x >= 0, gy, gy * slope.astype(gy.dtype))
    return [gx.astype(gy.dtype), ideal.unbroadcast(np.where(x < 0, gy * x, 0), np.shape(slope)).astype(gy.dtype)]


# --- routing ----------------------------------------------------------------------------------
class Router:
    """The gradient of a wiring node: a scatter-add through its element-id map, cached per shape."""

    def __init__(self, op: str, version: int, attrs: Mapping[str, Any], name: str) -> None:
        self.spec = lookup(op, version, name)
        self.op, self.version, self.name = op, version, name
        self.attrs = dict(attrs)
        if "fill" in self.attrs:
            self.attrs["fill"] = 0
        self._maps: dict[tuple, tuple[Array, list[int]]] = {}

    def backward(self, args: Sequence[Array | None], signal: Sequence[bool], gy: Array,
                 more: Sequence[Array] = ()) -> list[Array | None]:
        """Input gradients from ``gy`` (the first output's) and, for a multi-output op (Split), ``more``:
        the other outputs' gradients (zeros where none arrived), in output order."""
        if more:
            gy = np.concatenate([gy.ravel(), *(g.ravel() for g in more)])
        if self.op in RESHAPES:
            return [gy.reshape(args[0].shape)] + [None] * (len(args) - 1)
        if self.op == "Transpose":
            perm = self.attrs.get("perm") or list(range(gy.ndim))[::-1]
            return [np.transpose(gy, np.argsort(perm))]
        if self.op == "Cast":
            return [gy.astype(args[0].dtype, copy=False) if args[0].dtype.kind == "f" else None]
        key = tuple(None if a is None else (a.shape, s) for a, s in zip(args, signal))
        if key not in self._maps:
            self._maps[key] = self._index_map(args, signal)
        ids, sizes = self._maps[key]
        flat = np.bincount(ids.ravel(), weights=gy.ravel(), minlength=sum(sizes) + 1)[1:].astype(gy.dtype)
        out: list[Array | None] = []
        start = 0
        for a, s in zip(args, signal):
            if a is None or not s:
                out.append(None)
                continue
            out.append(flat[start:start + a.size].reshape(a.shape))
            start += a.size
        return out

    def _index_map(self, args, signal) -> tuple[Array, list[int]]:
        offset, ids_args, sizes = 1, [], []
        for a, s in zip(args, signal):
            if a is None:
                ids_args.append(None)
            elif s:
                ids_args.append(np.arange(offset, offset + a.size, dtype=np.int64).reshape(a.shape))
                offset += a.size
                sizes.append(a.size)
            elif a.dtype.kind == "f":
                ids_args.append(np.zeros(a.shape, np.int64))
            else:
                ids_args.append(a)
        outs = self.spec.kernel(ids_args, self.attrs, self.version)
        out = np.concatenate([np.asarray(o).ravel() for o in outs]) if self.op == "Split" else outs[0]
        return np.asarray(out).astype(np.int64, copy=False), sizes


def op_backward(op: str) -> OpGrad:
    g = OP_GRADS.get(op)
    if g is None:
        raise UnsupportedError(f"op {op} has no gradient in the behavioral engine; ops with one: "
                               f"{', '.join(sorted(set(OP_GRADS) | (WIRING_OPS - NO_SIGNAL)))}")
    return g
