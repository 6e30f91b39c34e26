"""Human-readable description of a lowered graph: graph.json and the compile summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import fields
from typing import Any

import numpy as np

from compiler.ir import Graph, OpNode, PrimitiveNode
from compiler.pipeline import Compiled

FORMAT_VERSION = 1


def _shape(g: Graph, t: str) -> list[Any] | None:
    s = g.shape(t)
    return None if s is None else [d if d is not None else "?" for d in s]


def node_devices(node: PrimitiveNode) -> Counter[str]:
    """Devices a bank uses in total: per-copy bill times the number of copies."""
    assert node.primitive is not None
    per = node.primitive.devices(node.lanes)
    return Counter({k: v * node.copies for k, v in per.items()})


def bank_size(node: PrimitiveNode) -> int:
    """Circuits in one copy of a bank: one per output of a linear layer, else one per lane."""
    w = getattr(node.primitive, "weights", None)
    return int(np.prod(w.shape[:-1])) if isinstance(w, np.ndarray) else node.lanes


def primitive_parameters(node: PrimitiveNode) -> int:
    """Number of programmable values a bank holds (float arrays: weights, biases, gains)."""
    total = 0
    for f in fields(node.primitive):
        value = getattr(node.primitive, f.name)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, np.ndarray) and v.dtype.kind == "f":
                total += v.size
    return total


def summary(c: Compiled) -> dict[str, Any]:
    """Counts of primitives, placements, parameters and devices."""
    g = c.graph
    placements: Counter[str] = Counter()
    banks: Counter[str] = Counter()
    instances: Counter[str] = Counter()
    devices: Counter[str] = Counter()
    digital: Counter[str] = Counter()
    params = 0
    for node in g.topo():
        placements[node.placement] += 1
        if isinstance(node, PrimitiveNode):
            banks[node.kind] += 1
            instances[node.kind] += node.copies * bank_size(node)
            devices.update(node_devices(node))
            params += primitive_parameters(node)
        elif node.placement == "digital":
            digital[node.kind] += 1
    params += sum(int(v.size) for v in g.constants.values() if v.dtype.kind == "f")
    return {
        "target": c.target.name,
        "nodes": len(g),
        "placement": dict(sorted(placements.items())),
        "primitives": {k: {"banks": banks[k], "instances": instances[k]} for k in sorted(banks)},
        "parameters": params,
        "devices": dict(sorted(devices.items())),
        "digital_ops": dict(sorted(digital.items())),
    }


def describe_node(g: Graph, node) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": node.name,
        "kind": node.kind,
        "placement": node.placement,
        "inputs": [{"name": t, "shape": _shape(g, t), "constant": t in g.constants} for t in node.inputs if t],
        "outputs": [{"name": t, "shape": _shape(g, t)} for t in node.outputs if t],
    }
    if isinstance(node, PrimitiveNode):
        assert node.primitive is not None
        out.update(
            params=node.primitive.describe(),
            copies=node.copies,
            lanes=node.lanes,
            reuse=node.reuse,
            devices=dict(sorted(node_devices(node).items())),
            origin=list(node.origin),
        )
    elif isinstance(node, OpNode):
        out["attrs"] = {k: _jsonable(v) for k, v in sorted(node.attrs.items())}
        out["version"] = node.version
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist() if v.size <= 16 else {"shape": list(v.shape), "dtype": str(v.dtype)}
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.generic,)):
        return v.item()
    return v


def graph_document(c: Compiled, source: str = "") -> dict[str, Any]:
    """The graph.json document: model, target, summary, passes and every node."""
    g = c.graph
    return {
        "format": "kelvin-graph",
        "format_version": FORMAT_VERSION,
        "source": source,
        "model": {
            "name": g.name,
            "opset": g.opset,
            "metadata": g.metadata,
            "inputs": [{"name": t, "shape": _shape(g, t), "dtype": str(g.values[t].dtype) if t in g.values else None}
                       for t in g.inputs],
            "outputs": [{"name": t, "shape": _shape(g, t)} for t in g.outputs],
        },
        "target": {"name": c.target.name, "description": c.target.description},
        "summary": summary(c),
        "passes": [{"name": r.name, "changed": r.changed, "seconds": round(r.seconds, 6),
                    "nodes_after": r.nodes_after} for r in c.records],
        "nodes": [describe_node(g, n) for n in g.topo()],
    }
