"""Run a Kelvin graph in NumPy with ideal devices: ONNX-level ops by their semantics,
primitive banks by their ideal transfer functions. Valid at every stage of the pipeline."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from circuits.errors import InputError, KelvinError, ModelError
from compiler.ir import Graph, Node, OpNode, PrimitiveNode
from compiler.ops import lookup

log = logging.getLogger(__name__)


def execute(graph: Graph, feeds: Mapping[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    """Evaluate ``graph`` on ``feeds`` (graph input name -> array); returns the requested outputs.

    Intermediate tensors are freed as soon as their last reader has run.
    """
    wanted = list(graph.outputs if outputs is None else outputs)
    missing = [name for name in graph.inputs if name not in feeds]
    if missing:
        raise InputError(f"missing value for graph input(s): {', '.join(missing)}")
    env: dict[str, np.ndarray] = dict(graph.constants)
    for name in graph.inputs:
        env[name] = _check_feed(graph, name, feeds[name])
    order = graph.nodes
    last_use: dict[str, int] = {}
    for i, node in enumerate(order):
        for t in node.inputs:
            last_use[t] = i
    keep = set(wanted) | set(graph.constants) | set(graph.inputs)
    for i, node in enumerate(order):
        args = [env[t] if t else None for t in node.inputs]
        results = run_node(graph, node, args)
        for name, value in zip(node.outputs, results):
            if name:
                env[name] = value
        for t in node.inputs:
            if t and last_use.get(t) == i and t not in keep:
                env.pop(t, None)
    return {name: env[name] for name in wanted}


def run_node(graph: Graph, node: Node, args: list[np.ndarray | None]) -> list[np.ndarray]:
    """Evaluate one node; errors name the node."""
    try:
        if isinstance(node, PrimitiveNode):
            assert node.primitive is not None
            return [np.asarray(node.primitive.ideal(*args))]
        assert isinstance(node, OpNode)
        spec = lookup(node.op, node.version, node.name)
        return [np.asarray(v) for v in spec.kernel(args, node.attrs, node.version)]
    except KelvinError as exc:
        msg = str(exc)
        raise type(exc)(msg if node.name in msg else f"node {node.name!r} ({node.kind}): {msg}") from exc
    except (ValueError, TypeError, IndexError) as exc:
        raise ModelError(f"node {node.name!r} ({node.kind}): {exc}") from exc


def _check_feed(graph: Graph, name: str, value: np.ndarray) -> np.ndarray:
    arr = np.asarray(value)
    info = graph.info(name)
    if info is None or info.shape is None:
        return arr
    if arr.ndim != len(info.shape):
        raise InputError(f"input {name!r}: expected rank {len(info.shape)} {_fmt(info.shape)}, got shape {arr.shape}")
    for want, got in zip(info.shape, arr.shape):
        if isinstance(want, int) and want != got:
            raise InputError(f"input {name!r}: expected shape {_fmt(info.shape)}, got {arr.shape}")
    if info.dtype.kind == "f" and arr.dtype != info.dtype and arr.dtype.kind in "fiu":
        arr = arr.astype(info.dtype)
    return arr


def _fmt(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
