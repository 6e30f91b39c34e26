"""Import-time shape checks that ONNX shape inference leaves out (bias lengths, empty tensors).

A model that fails one would otherwise get past import and break deep inside a pass or an
emitter; here it is one ModelError naming the node, the tensor and both shapes.
"""

from __future__ import annotations

import math

import numpy as np

from circuits.errors import ModelError
from compiler.ir import Graph, OpNode
from compiler.ops.shape import split_sizes

SIGNAL_OPS = frozenset({"Gemm", "MatMul", "Conv", "BatchNormalization"})
"""Ops whose weight operands must hold at least one value."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_node_shapes(graph: Graph, node: OpNode) -> None:
    """Weights and biases must fit the data they meet (shape inference checks only some)."""
    _check_float_attrs(node)
    if node.op in SIGNAL_OPS:
        for t in node.inputs[1:]:
            if t in graph.constants and graph.constants[t].size == 0:
                raise ModelError(f"node {node.name!r} ({node.op}): tensor {t!r} has shape "
                                 f"{list(graph.constants[t].shape)}, no values; the layer has zero features")
    for t in node.inputs:
        value = graph.constants.get(t) if t else None
        if value is None or value.dtype.kind != "f":
            continue
        bad = np.isnan(value) | (np.isinf(value) if node.op in SIGNAL_OPS else False)  # -inf masks are fine
        if bad.any():
            index = [int(i) for i in np.argwhere(bad)[0]]
            raise ModelError(f"node {node.name!r} ({node.op}): tensor {t!r} holds {value[tuple(index)]} at index "
                             f"{index}; a circuit needs finite weights")
    if node.op == "Gemm" and len(node.inputs) > 2 and node.inputs[2]:
        _check_gemm_bias(graph, node)
    elif node.op == "Split":
        _check_split(graph, node)
    elif node.op == "Conv":
        _check_conv(graph, node)
    elif node.op == "BatchNormalization":
        _check_batchnorm(graph, node)
    elif node.op == "Div" and node.inputs[1] in graph.constants and node.inputs[0] not in graph.constants:
        zero = np.asarray(graph.constants[node.inputs[1]]) == 0
        if zero.any():  # a signal times 1/0: no gain a circuit (or a float) can hold
            index = [int(i) for i in np.argwhere(zero)[0]] if zero.ndim else []
            raise ModelError(f"node {node.name!r} (Div): divisor {node.inputs[1]!r} is 0 at index {index}")


def _check_float_attrs(node: OpNode) -> None:
    """Float attributes (Gemm's alpha, LeakyRelu's alpha, epsilons) must be numbers a circuit can take:
    NaN never; ±Inf only as Clip's bounds (opset < 11 states them as attributes)."""
    for key, value in node.attrs.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, float) and (math.isnan(v) or (math.isinf(v) and node.op != "Clip")):
                raise ModelError(f"node {node.name!r} ({node.op}): attribute {key!r} is {v}; give a finite number")


def _check_batchnorm(graph: Graph, node: OpNode) -> None:
    """y = γ(x − μ)/√(σ² + ε) + β needs σ² + ε > 0 in every channel (a constant variance)."""
    eps = float(node.attrs.get("epsilon", 1e-5))
    var = graph.constants.get(node.inputs[4]) if len(node.inputs) > 4 else None
    if eps < 0:
        raise ModelError(f"node {node.name!r} (BatchNormalization): epsilon {eps} is negative")
    if var is not None and var.size and np.min(var.astype(np.float64) + eps) <= 0:
        k = int(np.argmin(var.astype(np.float64).reshape(-1)))
        raise ModelError(f"node {node.name!r} (BatchNormalization): variance {node.inputs[4]!r} is "
                         f"{var.reshape(-1)[k]:g} at channel {k}; variance + epsilon must be positive")


def _check_conv(graph: Graph, node: OpNode) -> None:
    """Channels: x has group·w[1] of them and w[0] splits into ``group`` equal parts; a bias has w[0]."""
    x, w = graph.shape(node.inputs[0]), graph.shape(node.inputs[1]) if len(node.inputs) > 1 else None
    group = node.attrs.get("group", 1)
    if not isinstance(group, (int, np.integer)) or group < 1:
        raise ModelError(f"node {node.name!r} (Conv): group {group!r} must be a positive integer")
    if x and w and len(x) >= 2 and len(w) >= 2 and all(isinstance(d, int) for d in (x[1], w[0], w[1])):
        if x[1] != group * w[1] or w[0] % group:
            raise ModelError(f"node {node.name!r} (Conv): input {node.inputs[0]!r} has {x[1]} channels and weight "
                             f"{node.inputs[1]!r} has shape {list(w)} with group {group}; it needs group × "
                             f"{w[1]} = {group * w[1]} input channels and output channels divisible by {group}")
    if len(node.inputs) > 2 and node.inputs[2]:
        b = graph.shape(node.inputs[2])
        if w and b is not None and isinstance(w[0], int) and tuple(b) != (w[0],):
            raise ModelError(f"node {node.name!r} (Conv): bias {node.inputs[2]!r} has shape {list(b)}, "
                             f"but the weight has {w[0]} output channels; the bias needs shape [{w[0]}]")


def _check_split(graph: Graph, node: OpNode) -> None:
    """Split sizes known at import (attribute or constant input) must add up to a known axis length."""
    shape = graph.shape(node.inputs[0])
    if not shape:
        return
    ax = int(node.attrs.get("axis", 0))
    if not -len(shape) <= ax < len(shape):
        raise ModelError(f"node {node.name!r} (Split): axis {ax} is out of range for a tensor of rank {len(shape)}")
    length = shape[ax]
    sizes_in = node.inputs[1] if len(node.inputs) > 1 else ""
    if not isinstance(length, int) or (sizes_in and sizes_in not in graph.constants):
        return
    args = [None, graph.constants[sizes_in] if sizes_in else None]
    try:
        split_sizes(args, node.attrs, node.version, length)
    except ModelError as exc:
        raise ModelError(f"node {node.name!r} (Split) on {node.inputs[0]!r} {list(shape)}, axis {ax}: "
                         f"{str(exc).removeprefix('Split: ')}") from None


def _check_gemm_bias(graph: Graph, node: OpNode) -> None:
    b_shape = graph.shape(node.inputs[1])
    c_shape = graph.shape(node.inputs[2])
    if not b_shape or c_shape is None or len(b_shape) != 2:
        return
    n = b_shape[0] if node.attrs.get("transB", 0) else b_shape[1]
    if not isinstance(n, int):
        return
    a_shape = graph.shape(node.inputs[0])
    m = None
    if a_shape and len(a_shape) == 2:
        m = a_shape[1] if node.attrs.get("transA", 0) else a_shape[0]
    target = (m if isinstance(m, int) else 1, n)
    try:
        np.broadcast_shapes(tuple(int(d) if isinstance(d, int) else 1 for d in c_shape), target)
        ok = not c_shape or c_shape[-1] in (1, n)
    except ValueError:
        ok = False
    if not ok:
        raise ModelError(f"node {node.name!r} (Gemm): bias {node.inputs[2]!r} has shape {list(c_shape)}, "
                         f"which does not broadcast to the layer's {n} outputs; give it shape [{n}]")
