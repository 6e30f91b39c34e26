"""Bring every layer with constant weights into one form, kelvin.Dense, and fold BatchNorm into it.

Dense computes y = x·Wᵀ + b over the last axis with W (out, in), or (G, out, in) per group.
"""

from __future__ import annotations

import numpy as np

from compiler.ir import Graph, OpNode


def make_dense(g: Graph, name: str, x: str, y: str, w: np.ndarray, b: np.ndarray | None) -> OpNode:
    """A kelvin.Dense node reading fresh constants for its weights and bias."""
    inputs = [x, g.add_constant(w, f"{name}_W")]
    if b is not None:
        inputs.append(g.add_constant(b, f"{name}_b"))
    return OpNode(name=name, inputs=inputs, outputs=[y], op="kelvin.Dense")


def dense_params(g: Graph, node: OpNode) -> tuple[np.ndarray, np.ndarray | None]:
    w = g.constants[node.inputs[1]]
    b = g.constants[node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] else None
    return w, b


class GemmToDense:
    """Gemm with constant B (and C broadcastable to a row) and MatMul by a constant matrix -> Dense."""

    name = "gemm-to-dense"

    def run(self, g: Graph) -> bool:
        changed = False
        for node in g.nodes:
            if isinstance(node, OpNode) and node.op == "Gemm":
                changed |= self._gemm(g, node)
            elif isinstance(node, OpNode) and node.op == "MatMul":
                changed |= self._matmul(g, node)
        if changed:
            g.prune_constants()
        return changed

    @staticmethod
    def _gemm(g: Graph, node: OpNode) -> bool:
        a, bname = node.inputs[0], node.inputs[1]
        cname = node.inputs[2] if len(node.inputs) > 2 else ""
        if bname not in g.constants or (cname and cname not in g.constants):
            return False
        b = g.constants[bname].astype(np.float64)
        w = b if node.attrs.get("transB", 0) else b.T
        w = w * float(node.attrs.get("alpha", 1.0))
        bias = None
        if cname:
            c = g.constants[cname].astype(np.float64) * float(node.attrs.get("beta", 1.0))
            if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
                return False  # a per-row bias is not a layer bias
            bias = np.broadcast_to(c.reshape(-1) if c.ndim else c, (w.shape[0],)).copy()
        dtype = g.constants[bname].dtype
        new = []
        if node.attrs.get("transA", 0):
            t = g.fresh(f"{node.name}_At")
            new.append(OpNode(name=g.fresh(f"{node.name}_transpose"), inputs=[a], outputs=[t],
                              op="Transpose", attrs={"perm": [1, 0]}, version=13))
            a = t
        new.append(make_dense(g, node.name, a, node.outputs[0], w.astype(dtype),
                              None if bias is None else bias.astype(dtype)))
        g.replace(node, new)
        return True

    @staticmethod
    def _matmul(g: Graph, node: OpNode) -> bool:
        bname = node.inputs[1]
        if bname not in g.constants or g.constants[bname].ndim != 2:
            return False
        w = g.constants[bname].T.copy()
        g.replace(node, [make_dense(g, node.name, node.inputs[0], node.outputs[0], w, None)])
        return True


class FuseBiasAdd:
    """Dense followed by Add of a constant row vector -> Dense with that bias (MatMul+Add exports)."""

    name = "fuse-bias-add"

    def run(self, g: Graph) -> bool:
        changed = False
        for node in g.nodes:
            if not (isinstance(node, OpNode) and node.op == "Add" and node.name in g):
                continue
            for i, t in enumerate(node.inputs):
                other = node.inputs[1 - i]
                dense = g.producer(t)
                if (other in g.constants and isinstance(dense, OpNode) and dense.op == "kelvin.Dense"
                        and _sole_use(g, t)):
                    w, b = dense_params(g, dense)
                    if w.ndim != 2 or g.constants[other].size not in (1, w.shape[0]) or g.constants[other].ndim > 1:
                        continue
                    add = np.broadcast_to(g.constants[other].astype(np.float64).reshape(-1), (w.shape[0],))
                    nb = add if b is None else b.astype(np.float64) + add
                    g.remove(node)
                    g.replace(dense, [make_dense(g, dense.name, dense.inputs[0], node.outputs[0], w,
                                                 nb.astype(w.dtype))])
                    changed = True
                    break
        if changed:
            g.prune_constants()
        return changed


def _sole_use(g: Graph, tensor: str) -> bool:
    return len(g.consumers(tensor)) == 1 and tensor not in g.outputs


class FoldBatchNorm:
    """Inference BatchNorm right after a Conv or Dense becomes part of that layer's weights.

    BN(y) = s·(y - mean) + beta with s = gamma/√(var + eps), so W' = s·W, b' = s·(b - mean) + beta.
    """

    name = "fold-batchnorm"

    def run(self, g: Graph) -> bool:
        changed = False
        for bn in g.nodes:
            if not (isinstance(bn, OpNode) and bn.op == "BatchNormalization"):
                continue
            if not all(t in g.constants for t in bn.inputs[1:5]) or bn.attrs.get("spatial", 1) != 1:
                continue
            if bn.attrs.get("training_mode", 0):
                continue
            layer = g.producer(bn.inputs[0])
            if not (isinstance(layer, OpNode) and layer.op in ("Conv", "kelvin.Dense")
                    and _sole_use(g, bn.inputs[0])):
                continue
            if layer.op == "kelvin.Dense" and not self._dense_ok(g, layer, bn):
                continue
            if layer.op == "Conv" and not all(t in g.constants for t in layer.inputs[1:] if t):
                continue
            self._fold(g, bn, layer)
            changed = True
        if changed:
            g.prune_constants()
        return changed

    @staticmethod
    def _dense_ok(g: Graph, dense: OpNode, bn: OpNode) -> bool:
        shape = g.shape(bn.inputs[0])
        return g.constants[dense.inputs[1]].ndim == 2 and shape is not None and len(shape) == 2

    @staticmethod
    def _fold(g: Graph, bn: OpNode, layer: OpNode) -> None:
        gamma, beta, mean, var = (g.constants[t].astype(np.float64) for t in bn.inputs[1:5])
        s = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        w = g.constants[layer.inputs[1]]
        b = g.constants[layer.inputs[2]].astype(np.float64) if len(layer.inputs) > 2 and layer.inputs[2] else 0.0
        new_w = (w.astype(np.float64) * s.reshape(-1, *([1] * (w.ndim - 1)))).astype(w.dtype)
        new_b = (s * (b - mean) + beta).astype(w.dtype)
        inputs = [layer.inputs[0], g.add_constant(new_w, f"{layer.name}_W"),
                  g.add_constant(new_b, f"{layer.name}_b")]
        g.remove(bn)
        g.set_outputs(layer, [bn.outputs[0]])
        g.set_inputs(layer, inputs)
