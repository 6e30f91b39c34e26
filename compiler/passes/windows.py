"""Sliding-window ops to matrix form: Conv = Im2Col → Dense → ColToImage; pools reduce Im2Col windows.

Im2Col is wiring: in hardware each window's signals are simply routed to the block that
computes that output position, so the math left is a matrix product or a reduction.
"""

from __future__ import annotations

import numpy as np

from circuits.errors import KelvinError
from compiler.ir import Graph, OpNode, TensorInfo
from compiler.ops._window import geometry, tap_counts
from compiler.ops.kelvin_ops import window_attrs
from compiler.passes.linear import make_dense


def _geometry(node: OpNode, spatial, kernel, ceil: bool = False):
    """`geometry` for ``node``; a bad window names the node."""
    try:
        return geometry(node.op, spatial, kernel, node.attrs, ceil)
    except KelvinError as exc:
        raise type(exc)(f"node {node.name!r} ({node.op}): {str(exc).removeprefix(node.op + ': ')}") from None


def _static_image(g: Graph, tensor: str) -> tuple[int, ...] | None:
    """(C, *spatial) when those dims are known integers; the batch may be symbolic."""
    shape = g.shape(tensor)
    if shape is None or len(shape) < 3 or not all(isinstance(d, int) for d in shape[1:]):
        return None
    return tuple(shape[1:])  # type: ignore[return-value]


def _note(g: Graph, name: str, like: str, shape: tuple, dtype: np.dtype | None = None) -> None:
    """Record shape info for a tensor a pass created (batch dim copied from ``like``)."""
    src = g.shape(like)
    batch = src[0] if src else None
    info = g.info(like)
    g.values[name] = TensorInfo(name, (batch, *shape), dtype or (info.dtype if info else np.dtype(np.float32)))


class ConvToMatrix:
    """Conv with constant weights and a known image size -> Im2Col + Dense + ColToImage."""

    name = "conv-to-matrix"

    def run(self, g: Graph) -> bool:
        changed = False
        for node in g.nodes:
            if not (isinstance(node, OpNode) and node.op == "Conv"):
                continue
            image = _static_image(g, node.inputs[0])
            if image is None or not all(t in g.constants for t in node.inputs[1:] if t):
                continue
            w = g.constants[node.inputs[1]]
            b = g.constants[node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] else None
            groups = int(node.attrs.get("group", 1))
            kernel = node.attrs.get("kernel_shape") or w.shape[2:]
            win = _geometry(node, image[1:], kernel)
            k, cg = w.shape[:2]
            taps = int(np.prod(win.kernel))
            positions = int(np.prod(win.out_shape))
            cols, prod = g.fresh(f"{node.name}_cols"), g.fresh(f"{node.name}_mm")
            im2col = OpNode(name=g.fresh(f"{node.name}_im2col"), inputs=[node.inputs[0]], outputs=[cols],
                            op="kelvin.Im2Col", attrs={**window_attrs(win), "groups": groups, "fill": 0.0})
            if groups == 1:
                wm, bm = w.reshape(k, cg * taps), b
            else:
                wm = w.reshape(groups, k // groups, cg * taps)
                bm = None if b is None else b.reshape(groups, k // groups)
            dense = make_dense(g, node.name, cols, prod, wm, bm)
            back = OpNode(name=g.fresh(f"{node.name}_col2im"), inputs=[prod], outputs=[node.outputs[0]],
                          op="kelvin.ColToImage", attrs={"out_shape": list(win.out_shape)})
            _note(g, cols, node.inputs[0], (positions, groups, cg * taps))
            _note(g, prod, node.inputs[0], (positions, groups, k // groups))
            g.replace(node, [im2col, dense, back])
            changed = True
        if changed:
            g.prune_constants()
        return changed


class PoolToWindows:
    """MaxPool/AveragePool -> Im2Col + window reduction; GlobalAveragePool/ReduceMean -> a reduction."""

    name = "pool-to-windows"

    def run(self, g: Graph) -> bool:
        changed = False
        for node in g.nodes:
            if not isinstance(node, OpNode):
                continue
            if node.op in ("MaxPool", "AveragePool"):
                changed |= self._pool(g, node)
            elif node.op in ("GlobalAveragePool", "ReduceMean"):
                changed |= self._mean(g, node)
        if changed:
            g.prune_constants()
        return changed

    @staticmethod
    def _pool(g: Graph, node: OpNode) -> bool:
        image = _static_image(g, node.inputs[0])
        if image is None:
            return False
        channels, spatial = image[0], image[1:]
        ceil = bool(node.attrs.get("ceil_mode", 0))
        win = _geometry(node, spatial, node.attrs["kernel_shape"], ceil)
        taps = int(np.prod(win.kernel))
        positions = int(np.prod(win.out_shape))
        is_max = node.op == "MaxPool"
        cols, red = g.fresh(f"{node.name}_cols"), g.fresh(f"{node.name}_red")
        im2col = OpNode(name=g.fresh(f"{node.name}_im2col"), inputs=[node.inputs[0]], outputs=[cols],
                        op="kelvin.Im2Col",
                        attrs={**window_attrs(win), "groups": channels, "fill": -np.inf if is_max else 0.0})
        attrs = {"axes": [-1], "keepdims": 1}
        if is_max:
            reduce = OpNode(name=node.name, inputs=[cols], outputs=[red], op="kelvin.WindowMax", attrs=attrs)
        else:
            include = bool(node.attrs.get("count_include_pad", 0))
            counts = tap_counts(spatial, win, include).reshape(positions, 1, 1)
            info = g.info(node.inputs[0])
            dtype = info.dtype if info is not None else np.dtype(np.float32)
            gain = g.add_constant((1.0 / counts).astype(dtype), f"{node.name}_gain")
            reduce = OpNode(name=node.name, inputs=[cols, gain], outputs=[red], op="kelvin.WindowSum",
                            attrs=attrs)
        back = OpNode(name=g.fresh(f"{node.name}_col2im"), inputs=[red], outputs=[node.outputs[0]],
                      op="kelvin.ColToImage", attrs={"out_shape": list(win.out_shape)})
        _note(g, cols, node.inputs[0], (positions, channels, taps))
        _note(g, red, node.inputs[0], (positions, channels, 1))
        g.replace(node, [im2col, reduce, back])
        return True

    @staticmethod
    def _mean(g: Graph, node: OpNode) -> bool:
        shape = g.shape(node.inputs[0])
        if shape is None:
            return False
        rank = len(shape)
        if node.op == "GlobalAveragePool":
            axes, keep = list(range(2, rank)), 1
        else:
            axes = _reduce_axes(g, node, rank)
            keep = int(node.attrs.get("keepdims", 1))
            if axes is None:
                return False
        if not axes:
            return False  # no-op reduce: left for the Identity-like kernel
        dims = [shape[a] for a in axes]
        if not all(isinstance(d, int) for d in dims):
            return False
        info = g.info(node.inputs[0])
        dtype = info.dtype if info is not None else np.dtype(np.float32)
        gain = g.add_constant(np.asarray(1.0 / int(np.prod(dims)), dtype=dtype), f"{node.name}_gain")
        new = OpNode(name=node.name, inputs=[node.inputs[0], gain], outputs=[node.outputs[0]],
                     op="kelvin.WindowSum", attrs={"axes": sorted(a - rank for a in axes), "keepdims": keep})
        g.replace(node, [new])
        return True


def _reduce_axes(g: Graph, node: OpNode, rank: int) -> list[int] | None:
    """ReduceMean's axes as non-negative ints; None when they are not known at compile time."""
    if node.version >= 18:
        if len(node.inputs) > 1 and node.inputs[1]:
            if node.inputs[1] not in g.constants:
                return None
            axes = [int(a) for a in np.asarray(g.constants[node.inputs[1]]).reshape(-1)]
        else:
            axes = []
        if not axes:
            return [] if node.attrs.get("noop_with_empty_axes", 0) else list(range(rank))
    else:
        axes = list(node.attrs.get("axes") or range(rank))
    return sorted({a % rank for a in axes})
