"""The inference-only fused paths of `sim.engine.program.Program`: same results within rounding, no tape.

Planned once, when a program is built:
- `plan_windows`: an Im2Col whose only reader is a dense bank may hand that bank the image, which
  it convolves itself (`conv_direct`), or gather its taps in (kh, kw, C) order into a reused scratch
  buffer (`im2col_taps_first`); an Im2Col whose only reader is a max pool's WindowMax hands it the
  image, pooled without gathering (`max_pool`).
- `plan_in_place`: a rectifier or weighted sum may write over an input that only it reads.

Decided per run (`direct_conv_kind`), from the input's shape and dtype: shifted GEMMs on the image
(`compiler.ops._window.conv2d_shifted`) where `shifted_conv_pays`, else im2col rows gathered a chunk
at a time (`conv2d_gathered`). Training never fuses: the tape needs every gather.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from compiler.ir import OpNode, PrimitiveNode
from sim.engine.kernels import DenseKernel, RectifyKernel, WeightedSumKernel, WindowMaxKernel
from sim.engine.maps import chain

Array = np.ndarray
Step = Any  # a `sim.engine.program.Step` (not imported: program imports this module)
Alloc = Callable[[tuple[int, ...], np.dtype], Array]
TAPS_FIRST_MIN_CHANNELS = 16  # below this the channel runs are too short for the NHWC gather to pay


def plan_windows(steps: Sequence[Step], output_slots: Sequence[int]) -> list[Step]:
    """Mark the Im2Cols that may hand their image on (module docstring) and return the steps reordered
    so each taps-first gather runs just before its bank (a valid order: its one input is ready
    earlier), so that one scratch buffer can hold every gather in turn; renumbers ``Step.index``."""
    readers: dict[int, list[Step]] = {}
    for step in steps:
        for s in step.ins:
            readers.setdefault(s, []).append(step)
    for step in steps:
        node = step.node
        if not (isinstance(node, OpNode) and node.op == "kelvin.Im2Col" and len(node.attrs["kernel"]) == 2):
            continue
        users = readers.get(step.outs[0], [])
        if int(node.attrs.get("groups", 1)) > 1:  # one group per channel (pooling): a transposed view
            step.taps_view = True
            if (len(users) == 1 and isinstance(users[0].kernel, WindowMaxKernel) and users[0].ins[0] == step.outs[0]
                    and step.outs[0] not in output_slots and node.attrs.get("fill") == -np.inf
                    and users[0].node.primitive.axes == (-1,)):
                step.pool_max = users[0]
            continue
        if (len(users) == 1 and isinstance(users[0].kernel, DenseKernel) and users[0].ins[0] == step.outs[0]
                and step.outs[0] not in output_slots):
            step.taps_first = users[0]
    gathers = {id(s.taps_first): s for s in steps if s.taps_first is not None}
    order = []
    for step in steps:
        if step.taps_first is None:
            if id(step) in gathers:
                order.append(gathers[id(step)])
            order.append(step)
    for i, step in enumerate(order):
        step.index = i
    return order


def plan_in_place(steps: Sequence[Step], output_slots: Sequence[int]) -> None:
    """Mark rectify and weighted-sum steps with an input that is a fresh array they alone read (a bank's,
    a sum's or a rectifier's output, possibly through a `ColToImage` view read by nothing else): at
    inference they may write their output over it instead of into new memory, whose first touch
    costs page faults on every run (ResNet-18 at batch 8: 6-12 ms of some 0.35 s)."""
    producer = {s: step for step in steps for s in step.outs if s >= 0}
    n_readers: dict[int, int] = {}
    for step in steps:
        for s in step.ins:
            n_readers[s] = n_readers.get(s, 0) + 1
    outputs = set(output_slots)

    def owned(s: int) -> tuple[int, ...] | None:  # the slots sharing s's memory, if s is ours alone
        prod = producer.get(s)
        if prod is None or n_readers.get(s) != 1 or s in outputs:
            return None
        if isinstance(prod.kernel, (DenseKernel, WeightedSumKernel, RectifyKernel)):
            return (s,)
        if isinstance(prod.node, OpNode) and prod.node.op == "kelvin.ColToImage":
            below = owned(prod.ins[0])
            return None if below is None else (s, *below)
        return None

    for step in steps:
        if isinstance(step.kernel, (RectifyKernel, WeightedSumKernel)):
            for i, s in enumerate(step.ins):
                slots = owned(s) if s >= 0 else None
                if slots is not None:
                    step.in_place, step.in_place_slots = i, slots
                    break


def im2col_taps_first(step: Step, x: Array, alloc: Alloc) -> list[Array]:
    """The taps-first gather of ``x`` (columns in (kh, kw, C) order) into memory from ``alloc``."""
    from compiler.ops._window import im2col_2d_taps_first
    from compiler.ops.kelvin_ops import window_from_attrs
    attrs = step.node.attrs
    cols = im2col_2d_taps_first(x, window_from_attrs(attrs), attrs.get("fill", 0.0), alloc)
    return [cols.reshape(cols.shape[0], cols.shape[1], 1, cols.shape[2])]


def direct_conv_kind(gather: Step, x: Array, weights: Array | None) -> str | None:
    """How the bank reading ``gather`` may convolve ``x`` itself, given its (out, taps) ``weights``, or
    None (gather as usual): "shifted" (`conv2d_shifted`) where `shifted_conv_pays`, else "taps_first"
    (C ≥ 16) or "ordered" (`conv2d_gathered`). Not for a bank with input maps (they act on the whole
    gather: a converter calibrates its full scale on it), nor for dtypes BLAS lacks."""
    from compiler.ops._window import shifted_conv_pays
    from compiler.ops.kelvin_ops import window_from_attrs
    bank = gather.taps_first
    assert bank is not None
    if x.dtype not in (np.float32, np.float64) or x.ndim != 4 or x.size == 0 or bank.maps.pre:
        return None
    if weights is None or weights.ndim != 2:
        return None
    if x.shape[1] < TAPS_FIRST_MIN_CHANNELS:
        return "ordered"
    return "shifted" if shifted_conv_pays(window_from_attrs(gather.node.attrs), x.shape[2:], weights.shape[0]) \
        else "taps_first"


def conv_direct(bank: Step, params: dict[str, Array], x: Array, gather: Step, how: str, alloc: Alloc,
                rng: Any) -> list[Array]:
    """``bank`` with its (mapped) ``params`` on the im2col of ``x`` that ``gather`` skipped (``how``:
    `direct_conv_kind`): the weight columns in the order ``how`` needs, `DenseKernel.forward_conv`,
    then the output maps."""
    from compiler.ops._window import conv2d_gathered, conv2d_shifted
    from compiler.ops.kelvin_ops import window_from_attrs
    attrs = gather.node.attrs
    win, fill, (kh, kw), c = window_from_attrs(attrs), attrs.get("fill", 0.0), attrs["kernel"], x.shape[1]
    w = params["weights"]
    if how == "shifted":  # tap-major (kh·kw, out, C)
        w = np.ascontiguousarray(w.reshape(w.shape[0], c, kh * kw).transpose(2, 0, 1), dtype=x.dtype)
        conv = functools.partial(conv2d_shifted, win=win, fill=fill, alloc=alloc)
    else:
        if how == "taps_first":  # columns in (kh, kw, C) order
            w = w.reshape(w.shape[0], c, kh, kw).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
        conv = functools.partial(conv2d_gathered, win=win, fill=fill, taps_first=how == "taps_first", alloc=alloc)
    assert isinstance(bank.kernel, DenseKernel) and isinstance(bank.node, PrimitiveNode)
    y = bank.kernel.forward_conv(bank.node.primitive, {**params, "weights": w}, x, conv)
    y = y.reshape(y.shape[0], y.shape[1], 1, y.shape[2])  # as the bank's (N, P, groups, K) rows give
    if bank.maps.post:
        y, _ = chain(bank.maps.post, y, rng, False)
    return [y]


def max_pool(reduce: Step, x: Array, gather: Step, rng: Any) -> list[Array]:
    """The WindowMax ``reduce`` over the windows of ``x`` that ``gather`` skipped (`max_pool_2d`),
    shaped as the max over the gathered (N, P, C, taps) would be, then the output maps."""
    from compiler.ops._window import max_pool_2d
    from compiler.ops.kelvin_ops import window_from_attrs
    y = max_pool_2d(x, window_from_attrs(gather.node.attrs))
    assert isinstance(reduce.node, PrimitiveNode)
    if reduce.node.primitive.keepdims:
        y = y[..., None]
    if reduce.maps.post:
        y, _ = chain(reduce.maps.post, y, rng, False)
    return [y]
