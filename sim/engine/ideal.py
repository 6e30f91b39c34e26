"""Run a Kelvin graph in NumPy with ideal devices: ONNX-level ops by their semantics,
primitive banks by their ideal transfer functions. Valid at every stage of the pipeline."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from circuits.errors import InputError, KelvinError, ModelError
from compiler.ir import Graph, Node, OpNode, PrimitiveNode
from compiler.ops import lookup
from sim.engine.feeds import check_feed, check_graph

log = logging.getLogger(__name__)


def execute(graph: Graph, feeds: Mapping[str, np.ndarray], outputs: list[str] | None = None,
            *, dtype=None) -> dict[str, np.ndarray]:
    """Evaluate ``graph`` on ``feeds`` (graph input name -> array) with ideal devices; returns the
    requested outputs. Runs in ``dtype`` (default: the feeds' float dtype, float32 if none is
    float). For repeated runs build a `sim.engine.Program` once instead.
    """
    _check_arguments(graph, feeds)
    missing = [name for name in graph.inputs if name not in feeds]
    if missing:
        raise InputError(f"missing value for graph input(s): {', '.join(missing)}")
    checked = {name: check_feed(graph, name, feeds[name]) for name in graph.inputs}
    if dtype is None:
        floats = [v.dtype for v in checked.values() if v.dtype.kind == "f"]
        dtype = np.result_type(*floats) if floats else np.float32
    from sim.engine.program import Program
    return Program(graph, dtype=dtype).run(checked, outputs=outputs)


def _check_arguments(graph: Any, feeds: Any) -> None:
    """A Python caller's wrong graph or feeds as one InputError naming the argument, instead of an
    AttributeError or NumPy's "truth value of an array is ambiguous" from a list of arrays.
    (``dtype`` is checked by `Program`.)"""
    check_graph(graph)
    if not isinstance(feeds, Mapping):
        raise InputError("feeds: a mapping of graph input name to array, e.g. {" + repr(graph.inputs[0] if
                         graph.inputs else "x") + f": x}}, got {type(feeds).__name__}")


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
