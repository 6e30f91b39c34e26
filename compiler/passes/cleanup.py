"""Remove nodes that compute nothing at inference: Identity, inference Dropout, dead nodes."""

from __future__ import annotations

import numpy as np

from compiler.ir import Graph, Node, OpNode


def _is_passthrough(g: Graph, node: Node) -> bool:
    if not isinstance(node, OpNode):
        return False
    if node.op == "Identity":
        return True
    if node.op != "Dropout":
        return False
    if len(node.outputs) > 1 and node.outputs[1] and g.is_used(node.outputs[1]):
        return False  # the mask is read: keep the node, which produces it
    if node.version >= 12 and len(node.inputs) > 2 and node.inputs[2]:
        mode = g.constants.get(node.inputs[2])
        return mode is not None and not bool(np.asarray(mode))
    return True


def bypass(g: Graph, node: Node) -> bool:
    """Make readers of node's first output read its first input; False if the names must stay."""
    src, dst = node.inputs[0], node.outputs[0]
    if dst not in g.outputs:
        g.remove(node)
        g.replace_uses(dst, src)
        return True
    producer = g.producer(src)
    if producer is None or src in g.outputs:
        return False  # a graph output copying an input/constant/other output: keep the copy
    # Rename the producer's output to the graph output's name.
    g.remove(node)
    g.replace_uses(src, dst)
    g.set_outputs(producer, [dst if t == src else t for t in producer.outputs])
    if src in g.values and dst not in g.values:
        g.values[dst] = g.values[src]
    return True


class EliminateIdentity:
    """Drop Identity and inference-mode Dropout nodes by rewiring their readers."""

    name = "eliminate-identity"

    def run(self, g: Graph) -> bool:
        changed = False
        for node in g.nodes:
            if _is_passthrough(g, node) and bypass(g, node):
                changed = True
        return changed


class EliminateDead:
    """Drop nodes whose outputs nobody reads (no Kelvin op has side effects)."""

    name = "eliminate-dead"

    def run(self, g: Graph) -> bool:
        changed = False
        for node in reversed(g.nodes):
            if not any(t and g.is_used(t) for t in node.outputs):
                g.remove(node)
                changed = True
        g.prune_constants()
        return changed
