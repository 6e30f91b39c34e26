"""Evaluate what is known before run time: constant subgraphs and shape-only subgraphs.

Exporters compute Reshape targets from ``Shape(x)``; with a symbolic batch dimension that
is not a constant. Such dims travel through the shape ops as sentinel integers, and a
Reshape whose target holds them is rewritten with 0 ("copy this dim") or -1 ("infer").
"""

from __future__ import annotations

import logging

import numpy as np

from compiler.ir import Graph, OpNode
from compiler.ops import lookup

log = logging.getLogger(__name__)

SENTINEL_BASE = -1_000_000
"""Symbolic dim k is carried as SENTINEL_BASE - k: far below any real shape value, fits int32."""

SHAPE_OPS = frozenset({"Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Identity", "Cast"})
"""Ops that only move shape values around, so sentinels survive them intact."""


class ConstantFold:
    """Replace nodes whose inputs are all constant by their result; resolve symbolic Reshape targets."""

    name = "constant-fold"

    def run(self, g: Graph) -> bool:
        changed = False
        symbols: dict[str, int] = {}
        partial: dict[str, np.ndarray] = {}  # shape vectors holding sentinels
        for node in g.nodes:
            if not isinstance(node, OpNode):
                continue
            ins = [t for t in node.inputs if t]
            if ins and all(t in g.constants for t in ins):
                self._fold(g, node)
                changed = True
            elif node.op == "Shape":
                vec = _shape_vector(g, node, symbols)
                if vec is not None and vec.min(initial=0) > SENTINEL_BASE:
                    g.remove(node)
                    g.constants[node.outputs[0]] = vec
                    changed = True
                elif vec is not None:
                    partial[node.outputs[0]] = vec
            elif node.op in SHAPE_OPS and ins and all(t in g.constants or t in partial for t in ins):
                vals = [partial.get(t, g.constants.get(t)) if t else None for t in node.inputs]
                out = lookup(node.op, node.version, node.name).kernel(vals, node.attrs, node.version)[0]
                if out.dtype.kind in "iu" and out.dtype.itemsize >= 4:
                    partial[node.outputs[0]] = out
            elif node.op == "Reshape" and len(node.inputs) > 1 and node.inputs[1] in partial:
                target = _resolve_reshape(g, node, partial[node.inputs[1]], symbols)
                if target is not None:
                    name = g.add_constant(target, f"{node.name}_shape")
                    g.set_inputs(node, [node.inputs[0], name])
                    changed = True
        if changed:
            g.prune_constants()
        return changed

    @staticmethod
    def _fold(g: Graph, node: OpNode) -> None:
        vals = [g.constants[t] if t else None for t in node.inputs]
        outs = lookup(node.op, node.version, node.name).kernel(vals, node.attrs, node.version)
        g.remove(node)
        for name, value in zip(node.outputs, outs):
            if name:
                g.constants[name] = np.asarray(value)
        log.debug("folded %s (%s)", node.name, node.op)


def _shape_vector(g: Graph, node: OpNode, symbols: dict[str, int]) -> np.ndarray | None:
    shape = g.shape(node.inputs[0])
    if shape is None or any(d is None for d in shape):
        return None
    vec = np.array(
        [d if isinstance(d, int) else SENTINEL_BASE - symbols.setdefault(d, len(symbols)) for d in shape],
        dtype=np.int64,
    )
    start = node.attrs.get("start", 0)
    end = node.attrs.get("end")
    return vec[start:end]


def _resolve_reshape(g: Graph, node: OpNode, target: np.ndarray, symbols: dict[str, int]) -> np.ndarray | None:
    """Turn sentinels into 0 (same symbol at the same index) or a single -1; None if impossible."""
    shape = g.shape(node.inputs[0])
    codes = {SENTINEL_BASE - k: name for name, k in symbols.items()}
    out = target.astype(np.int64).copy()
    unknown = []
    allowzero = bool(node.attrs.get("allowzero", 0))
    for i, v in enumerate(out):
        if v > SENTINEL_BASE:
            continue
        sym = codes.get(int(v))
        if (not allowzero and shape is not None and i < len(shape) and sym is not None
                and shape[i] == sym):
            out[i] = 0
        else:
            unknown.append(i)
    if len(unknown) > 1 or (unknown and np.any(out == -1)):
        return None
    if unknown:
        out[unknown[0]] = -1
    return out
