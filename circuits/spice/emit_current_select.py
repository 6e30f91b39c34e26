"""Current-mode emitters for the winner-take-all, mirror average and junction banks (`current_select` blocks).

Each output element is one instance of its block's ``.subckt`` wired to the soma lines of its
inputs (`emit_current.CurrentSignal`), ending in its own output soma(s), which become the
element's signal. A signed input (a soma pair) enters a junction or an average as two terms,
+g on its positive soma and −g on its negative one; the winner-take-all needs single somas
(max pooling follows a rectifying layer) and says so otherwise. A pad (ground net) carries no
current and is left out (in a softmax it is a logit of 0: its gate sits at V_ref). A softmax
group's inputs may be signed: the positive soma's ``vp`` and the negative soma's ``vn`` drive
its gate node; each of its outputs is a soma of its own.

Mismatch: with a chip seed every block instance draws its transistors from
``SeedSequence([seed, SELECT_NODE, kind, element, 0, 0, 0])``, so it does not disturb the
other cells' draws. Only the softmax records its cells in ``ctx.layout`` (`_record_softmax`),
which the engine's chip model folds (`sim.chip`); the other blocks' draws live in the netlist only.
"""

from __future__ import annotations

import numpy as np

from circuits.base import Primitive
from circuits.current import CurrentJunction, MirrorAverage, SoftmaxNormalizer, WinnerTakeAll
from circuits.errors import UnsupportedError
from circuits.spice.current_select import MirrorAverageBlock, MirrorSumBlock, WinnerTakeAllBlock, _SomaBlock
from circuits.spice.current_softmax import DiffPairSoftmaxBlock
from circuits.spice.emit import GROUND, EmitContext, axes_last, register
from circuits.spice.emit_current import CellRecord, CurrentNetwork, CurrentSignal, Soma, _network, reference
from circuits.spice.netlist import instance

SELECT_NODE = 2**32 - 4  # key word of these blocks' draws
KIND_CODES = {"current.wta": 1, "current.average": 2, "current.junction": 3, "current.softmax": 4}
COUNT_KEY = "current_select"


def _place_block(ctx: EmitContext, net: CurrentNetwork, block: _SomaBlock, lines: list[str],
                 hint: str) -> CurrentSignal:
    """Instantiate ``block`` on input ``lines`` (vn, vp per input, then the reference's); returns its output
    signal (one soma, or a positive/negative pair)."""
    somas = _place_somas(ctx, net, block, lines, hint)
    return CurrentSignal(somas[0], somas[1] if len(somas) > 1 else None)


def _place_somas(ctx: EmitContext, net: CurrentNetwork, block: _SomaBlock, lines: list[str],
                 hint: str) -> list[Soma]:
    """Instantiate ``block`` on input ``lines``; returns its output somas in the block's order."""
    somas, _, _ = _instantiate(ctx, net, block, lines, hint)
    return somas


def _instantiate(ctx: EmitContext, net: CurrentNetwork, block: _SomaBlock, lines: list[str],
                 hint: str) -> tuple[list[Soma], tuple[int, ...], dict[str, float]]:
    """`_place_somas`, also returning the instance's draw key and its ``dvt_*``/``bf_*`` parameters."""
    mm = net.draw.enabled
    sub = block.subckt(mm)
    key = f"{sub.name}|" + "\n".join(e.render() for e in sub.elements)
    defined = ctx.state.setdefault("current_select_defs", {})
    if key not in defined:
        defined[key] = f"{sub.name}_{len(defined)}"
        sub.name = defined[key]
        ctx.define(sub)
    count = ctx.state.get(COUNT_KEY, 0)
    ctx.state[COUNT_KEY] = count + 1
    devices = [*block.devices(), *block.output_somas()]
    draw_key = (SELECT_NODE, KIND_CODES[block.kind], count, 0, 0, 0)
    params = net.draw.params(devices, draw_key)
    somas = [Soma(ctx.net("vn"), ctx.net("vp")) for _ in block.somas()]
    outs = [p for s in somas for p in (s.vn, s.vp)]
    name = ctx.instance_name(hint)
    ctx.elements.append(instance(name, defined[key], [*lines, *outs, ctx.supplies.nets[0], GROUND], params))
    ctx.devices += len(devices)
    return [Soma(s.vn, s.vp, name) for s in somas], draw_key, params


def _terms(net: CurrentNetwork, srcs: list[str], gains: list[float], where: str) -> tuple[list[float], list[str]]:
    """Gains and soma lines of every nonzero input term (a pair gives +g and −g terms)."""
    gs, lines = [], []
    for src, g in zip(srcs, gains, strict=True):
        if src == GROUND or g == 0.0:
            continue
        sig = net.signal(src, where)
        for soma, sign in ((sig.pos, 1.0), (sig.neg, -1.0)):
            if soma is not None:
                gs.append(sign * g)
                lines += [soma.vn, soma.vp]
    return gs, lines


def _sample_array(value, shape: tuple[int, ...]) -> np.ndarray:
    """A gain/bias broadcast to one sample's shape (a leading batch axis of 1 is dropped)."""
    arr = np.asarray(0.0 if value is None else value, dtype=np.float64)
    while arr.ndim > len(shape) and arr.shape[0] == 1:
        arr = arr[0]
    return np.broadcast_to(arr, shape)


def _windows(x: np.ndarray, axes_neg: tuple[int, ...], keepdims: bool) -> tuple[np.ndarray, tuple[int, ...]]:
    axes = tuple(a % x.ndim for a in axes_neg)
    kept = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, (*kept, *axes)).reshape(*[x.shape[a] for a in kept], -1)
    out_shape = tuple(1 if a in axes else x.shape[a] for a in range(x.ndim)) if keepdims else \
        tuple(x.shape[a] for a in kept)
    return moved, out_shape


def _emit_window(prim: Primitive, ctx: EmitContext, x: np.ndarray, build) -> np.ndarray:
    net = _network(ctx)
    moved, out_shape = _windows(x, prim.axes, prim.keepdims)  # type: ignore[attr-defined]
    y = np.empty(moved.shape[:-1], dtype=object)
    for pos in np.ndindex(*moved.shape[:-1]):
        flat = int(np.ravel_multi_index(pos, moved.shape[:-1])) if pos else 0
        y[pos] = build(net, [str(n) for n in moved[pos]], flat)
    return y.reshape(out_shape)


def _signal_net(ctx: EmitContext, net: CurrentNetwork, sig: CurrentSignal, hint: str) -> str:
    key = ctx.net(hint)
    net.signals[key] = sig
    return key


@register("current.wta")
def emit_wta(prim: Primitive, ctx: EmitContext, ins: list[np.ndarray]) -> np.ndarray:
    """Max over the window axes: one Lazzaro winner-take-all per output position."""
    assert isinstance(prim, WinnerTakeAll)

    def build(net: CurrentNetwork, srcs: list[str], flat: int) -> str:
        lines = []
        for src in srcs:
            if src == GROUND:
                continue
            sig = net.signal(src, "current.wta")
            if sig.neg is not None:
                raise UnsupportedError("current.wta: a winner-take-all takes rectified (single-soma) signals; "
                                       "its input comes from a signed layer (put a ReLU before the max pool)")
            lines += [sig.pos.vn, sig.pos.vp]
        if not lines:
            return GROUND
        block = WinnerTakeAllBlock(len(lines) // 2, ctx.scale, sizing=net.sizing)
        return _signal_net(ctx, net, _place_block(ctx, net, block, lines, "wta"), "wta")

    return _emit_window(prim, ctx, ins[0], build)


@register("current.average")
def emit_average(prim: Primitive, ctx: EmitContext, ins: list[np.ndarray]) -> np.ndarray:
    """gain·Σ over the window axes: one mirror average per output position (pads left out)."""
    assert isinstance(prim, MirrorAverage)
    gain = np.asarray(prim.gain, dtype=np.float64).ravel()

    def build(net: CurrentNetwork, srcs: list[str], flat: int) -> str:
        gs, lines = _terms(net, srcs, [float(gain[flat % gain.size])] * len(srcs), "current.average")
        if not gs:
            return GROUND
        cls = MirrorAverageBlock if all(g == gs[0] for g in gs) else MirrorSumBlock
        block = cls(tuple(gs), 0.0, ctx.scale, sizing=net.sizing)
        return _signal_net(ctx, net, _place_block(ctx, net, block, lines, "avg"), "avg")

    return _emit_window(prim, ctx, ins[0], build)


@register("current.junction")
def emit_junction(prim: Primitive, ctx: EmitContext, ins: list[np.ndarray]) -> np.ndarray:
    """Σ gᵢ·xᵢ + b per element (broadcast like the signals): one mirror junction each."""
    assert isinstance(prim, CurrentJunction)
    net = _network(ctx)
    xs = np.broadcast_arrays(*ins)
    shape = xs[0].shape
    gains = [_sample_array(g, shape) for g in prim.gains]
    bias = _sample_array(prim.bias, shape)
    y = np.empty(shape, dtype=object)
    for pos in np.ndindex(*shape):
        gs, lines = _terms(net, [str(x[pos]) for x in xs], [float(g[pos]) for g in gains], "current.junction")
        b = float(bias[pos])
        if b:
            ref = reference(ctx, net).pos
            lines += [ref.vn, ref.vp]
        if not gs and not b:
            y[pos] = GROUND
            continue
        if not gs:
            raise UnsupportedError("current.junction: a constant-only element has no current-mode circuit")
        block = MirrorSumBlock(tuple(gs), b, ctx.scale, sizing=net.sizing)
        y[pos] = _signal_net(ctx, net, _place_block(ctx, net, block, lines, "junc"), "junc")
    return y


@register("current.softmax")
def emit_softmax(prim: Primitive, ctx: EmitContext, ins: list[np.ndarray]) -> np.ndarray:
    """softmax jointly over the primitive's axes: one differential-pair array per group, outputs put back in place."""
    assert isinstance(prim, SoftmaxNormalizer)
    net = _network(ctx)
    flat, restore = axes_last(ins[0], prim.axes)
    vdd = ctx.supplies.nets[0]
    block = DiffPairSoftmaxBlock(flat.shape[-1], ctx.scale, sizing=net.sizing)
    y = np.empty(flat.shape, dtype=object)
    for pos in np.ndindex(*flat.shape[:-1]):
        lines = []
        for src in flat[pos]:
            if src == GROUND:  # a zero logit: both copies off, the gate rests at V_ref
                lines += [vdd, GROUND]
                continue
            sig = net.signal(str(src), "current.softmax")
            lines += [sig.pos.vp, sig.neg.vn if sig.neg is not None else GROUND]
        somas, key, params = _instantiate(ctx, net, block, lines, "softmax")
        group = int(np.ravel_multi_index(pos, flat.shape[:-1])) if pos else 0
        for k, (src, soma) in enumerate(zip(flat[pos], somas, strict=True)):
            soma = Soma(soma.vn, soma.vp, f"{soma.element}.o{k}")
            _record_softmax(ctx, net, soma, str(src), key, params, group, k)
            y[(*pos, k)] = _signal_net(ctx, net, CurrentSignal(soma), "softmax")
    return restore(y)


def _record_softmax(ctx: EmitContext, net: CurrentNetwork, soma: Soma, src: str, key: tuple[int, ...],
                    params: dict[str, float], group: int, k: int) -> None:
    """Two `CellRecord`s for element ``k`` of a softmax group: its input branch (kind ``softmax``: the
    copies ``cp``/``cn`` reading ``pre``/``pre_neg``, the pair device ``mq``, the drain diode ``md`` and
    its copy ``me``) and its output soma (kind ``softmax_soma``, devices m0..m4), with their draws."""
    sig = net.signal(src, "current.softmax") if src != GROUND else None

    def draw(names: dict[str, str], what: str) -> dict[str, float]:
        return {short: params[f"{what}_{full}"] for short, full in names.items() if f"{what}_{full}" in params}

    branch = {d: f"{d}{k}" for d in ("cp", "cn", "mq", "md", "me")}
    somadev = {f"m{i}": f"o{k}m{i}" for i in range(5)}
    element = soma.element.rsplit(".", 1)[0]
    common = dict(node=ctx.node_name, key=key, copy=group, row=k)
    ctx.layout.append(CellRecord("softmax", element, "softmax", pre=sig.pos.element if sig else "",
                                 pre_neg=sig.neg.element if sig and sig.neg else "",
                                 dvt_v=draw(branch, "dvt"), bf=draw(branch, "bf"), **common))
    ctx.layout.append(CellRecord("softmax_soma", soma.element, "softmax", dvt_v=draw(somadev, "dvt"),
                                 bf=draw(somadev, "bf"), **common))
