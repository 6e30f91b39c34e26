"""Network emitters for voltage-mode op-amp primitives: one block circuit per output element.

Every block keeps the network's signal scale (V = volts_per_unit·x) at its inputs and
output, so blocks connect directly; fan-out is free in voltage mode. A block's
``.subckt`` is named by a hash of its contents: identical instances (every rectifier of a
layer, summers with equal rows) share one definition, and each distinct design appears once.
"""

from __future__ import annotations

import hashlib

import numpy as np

from circuits import opamp
from circuits.base import Primitive
from circuits.spice.block import BlockCircuit
from circuits.spice.blocks_linear import ElementwiseSummerBlock, SummerBlock
from circuits.spice.emit import EmitContext, axes_last, per_row, register
from circuits.spice.blocks_products import MatMulBlock
from circuits.spice.blocks_select import MaxSelectorBlock, SoftmaxBlock
from circuits.spice.library import swing_v, block_for
from circuits.spice.netlist import Subckt, instance, spice_name

MACRO = "opamp_macro"
SOFTMAX_INPUT_LIMIT = 8.0  # logits in model units the softmax blocks accept (scaled into the rails)


def place(ctx: EmitContext, block: BlockCircuit, inputs: list[str], hint: str, n_outputs: int = 1) -> str:
    """Define the block's subcircuits (once each) and instantiate it; returns the output net
    (a list of ``n_outputs`` nets for multi-output blocks such as softmax)."""
    subs = block.subckts()
    for text in getattr(block, "models", lambda: [])():
        ctx.model(hashlib.sha1(text.encode()).hexdigest(), text)
    for sub in subs[:-1]:
        ctx.define(sub)
    own = subs[-1]
    body = "\n".join(e.render() for e in own.elements) + "|" + " ".join(own.ports)
    name = spice_name(f"{block.kind}_{hashlib.sha1(body.encode()).hexdigest()[:10]}")
    if name not in ctx.subckts:
        ctx.define(Subckt(name, own.ports, list(own.elements), dict(own.params), own.comment))
        ctx.devices += len(own.elements)
    outs = [ctx.net(hint) for _ in range(n_outputs)]
    ctx.elements.append(instance(ctx.instance_name(hint), name, [*inputs, *outs]))
    return outs[0] if n_outputs == 1 else outs  # type: ignore[return-value]


def _sample_array(value, shape: tuple[int, ...]) -> np.ndarray:
    """A gain/bias broadcast to one sample's shape (a leading batch axis of 1 is dropped)."""
    arr = np.asarray(0.0 if value is None else value, dtype=np.float64)
    while arr.ndim > len(shape) and arr.shape[0] == 1:
        arr = arr[0]
    return np.broadcast_to(arr, shape)


@register("opamp.summer")
def emit_summer(prim: Primitive, ctx: EmitContext, ins: list[np.ndarray]) -> np.ndarray:
    """y[..., o] = Σ W[o, i]·x[..., i] + b[o]; grouped weights act on x[..., g, :]."""
    assert isinstance(prim, opamp.InvertingSummerArray)
    rows = int(np.prod(prim.weights.shape[:-1]))
    blocks = [SummerBlock.from_primitive(prim, r, ctx.scale) for r in range(rows)]
    return per_row(ins[0], prim.weights, lambda nets, r: place(ctx, blocks[r], nets, "sum"))


@register("opamp.elementwise_summer")
def emit_elementwise(prim: Primitive, ctx: EmitContext, ins: list[np.ndarray]) -> np.ndarray:
    """y = Σ gᵢ·xᵢ + b per element, gains and bias broadcast like the signals."""
    assert isinstance(prim, opamp.ElementwiseSummer)
    xs = np.broadcast_arrays(*ins)
    shape = xs[0].shape
    gains = [_sample_array(g, shape) for g in prim.gains]
    bias = _sample_array(prim.bias, shape)
    y = np.empty(shape, dtype=object)
    for pos in np.ndindex(*shape):
        block = ElementwiseSummerBlock(tuple(float(g[pos]) for g in gains), float(bias[pos]), ctx.scale)
        y[pos] = place(ctx, block, [str(x[pos]) for x in xs], "esum")
    return y


def _windows(x: np.ndarray, axes_neg: tuple[int, ...], keepdims: bool) -> tuple[np.ndarray, tuple[int, ...]]:
    """Nets with the window ``axes`` moved last and flattened, and the reduced output shape."""
    axes = tuple(a % x.ndim for a in axes_neg)
    kept = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, (*kept, *axes)).reshape(*[x.shape[a] for a in kept], -1)
    out_shape = tuple(1 if a in axes else x.shape[a] for a in range(x.ndim)) if keepdims else \
        tuple(x.shape[a] for a in kept)
    return moved, out_shape


@register("opamp.average")
def emit_average(prim: Primitive, ctx: EmitContext, ins: list[np.ndarray]) -> np.ndarray:
    """y = gain·Σ x over the window axes: an equal-resistor summer per output position."""
    assert isinstance(prim, opamp.AveragingSummer)
    moved, out_shape = _windows(ins[0], prim.axes, prim.keepdims)
    gain = _sample_array(prim.gain, out_shape).reshape(moved.shape[:-1])
    y = np.empty(moved.shape[:-1], dtype=object)
    for pos in np.ndindex(*moved.shape[:-1]):
        block = SummerBlock((float(gain[pos]),) * moved.shape[-1], 0.0, ctx.scale)
        y[pos] = place(ctx, block, list(moved[pos]), "avg")
    return y.reshape(out_shape)


@register("opamp.max")
def emit_max(prim: Primitive, ctx: EmitContext, ins: list[np.ndarray]) -> np.ndarray:
    """y = max over the window axes: a superdiode maximum per output position (pads sit at the
    negative rail, so they never win)."""
    assert isinstance(prim, opamp.MaxSelector)
    moved, out_shape = _windows(ins[0], prim.axes, prim.keepdims)
    y = np.empty(moved.shape[:-1], dtype=object)
    for pos in np.ndindex(*moved.shape[:-1]):
        block = MaxSelectorBlock(moved.shape[-1], ctx.scale)
        y[pos] = place(ctx, block, [str(n) for n in moved[pos]], "max")
    return y.reshape(out_shape)


@register("opamp.softmax")
def emit_softmax(prim: Primitive, ctx: EmitContext, ins: list[np.ndarray]) -> np.ndarray:
    """softmax jointly over the primitive's axes: one `SoftmaxBlock` per group, outputs put back in place."""
    assert isinstance(prim, opamp.SoftmaxUnit)
    flat, restore = axes_last(ins[0], prim.axes)
    limit = min(SOFTMAX_INPUT_LIMIT, 0.9 * swing_v() / ctx.scale)
    block = SoftmaxBlock(flat.shape[-1], ctx.scale, input_limit=limit)
    y = np.empty(flat.shape, dtype=object)
    for pos in np.ndindex(*flat.shape[:-1]):
        y[pos] = place(ctx, block, [str(n) for n in flat[pos]], "softmax", n_outputs=flat.shape[-1])
    return restore(y)


@register("opamp.matmul")
def emit_matmul(prim: Primitive, ctx: EmitContext, ins: list[np.ndarray]) -> np.ndarray:
    """y[..., m, n] = Σₖ a[..., m, k]·b[..., k, n]: one `MatMulBlock` of ``inner`` terms per output."""
    assert isinstance(prim, opamp.ActivationMatMul)
    a, b = ins
    lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, (*lead, *a.shape[-2:]))
    b = np.broadcast_to(b, (*lead, *b.shape[-2:]))
    block = MatMulBlock(a.shape[-1], ctx.scale)
    y = np.empty((*lead, a.shape[-2], b.shape[-1]), dtype=object)
    for pos in np.ndindex(*y.shape):
        *head, m, n = pos
        nets = [str(v) for v in (*a[(*head, m)], *b[(*head, slice(None), n)])]
        y[pos] = place(ctx, block, nets, "matmul")
    return y


def _elementwise(kind: str) -> None:
    @register(kind)
    def emit(prim: Primitive, ctx: EmitContext, ins: list[np.ndarray]) -> np.ndarray:
        xs = np.broadcast_arrays(*ins)
        block = block_for(prim, 0, ctx.scale)
        y = np.empty(xs[0].shape, dtype=object)
        for pos in np.ndindex(*xs[0].shape):
            y[pos] = place(ctx, block, [str(x[pos]) for x in xs], kind.split(".")[-1])
        return y


for _kind in ("opamp.rectifier", "opamp.clipper", "opamp.diffpair", "opamp.log", "opamp.exp",
              "opamp.multiplier", "opamp.divider"):
    _elementwise(_kind)
