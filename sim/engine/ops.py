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


@grad("Softmax")
def _softmax(args, outs, attrs, version, gy):
    y = outs[0]
    ax = int(attrs["axis"]) % y.ndim
    if version < 13:
        flat = (int(np.prod(y.shape[:ax])), -1)
        return [ideal.softmax_backward(gy.reshape(flat), y.reshape(flat), (1,)).reshape(y.shape)]
    return [ideal.softmax_backward(gy, y, (ax,))]


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
