"""Behavioral kernels: one per primitive kind, forward and backward side by side.

A kernel adapts a primitive's math in `circuits.ideal` (the one statement of it) to the engine:
``forward(prim, p, xs, save)`` returns the output and what ``backward`` needs (nothing when
``save`` is False, i.e. inference); ``backward(prim, p, saved, gy)`` returns the input gradients
(one per input, None for an input with no gradient) and the parameter gradients by field name.
``p`` holds the primitive's trainable arrays (`Primitive.params`) as the engine sees them: cast
to the run's dtype and passed through the hardware model's weight maps. Every other field is
read from the primitive itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from circuits import ideal
from circuits.base import Primitive
from circuits.errors import UnsupportedError
from sim.engine.chip_loops import epilogue, xlnx

Array = np.ndarray
Grads = tuple[list[Array | None], dict[str, Array]]


class Kernel:
    """Base: subclasses set ``kinds`` and implement forward/backward."""

    kinds: ClassVar[tuple[str, ...]] = ()

    def forward(self, prim: Primitive, p: Mapping[str, Array], xs: list[Array], save: bool) -> tuple[Array, Any]:
        raise NotImplementedError

    def backward(self, prim: Primitive, p: Mapping[str, Array], saved: Any, gy: Array) -> Grads:
        raise NotImplementedError


KERNELS: dict[str, Kernel] = {}
CLASS_KERNELS: dict[type, Kernel] = {}
"""Kernels for primitive classes that share a kind but not its math (a chip instance's synapses)."""


def register(cls: type[Kernel]) -> type[Kernel]:
    inst = cls()
    for kind in cls.kinds:
        if kind in KERNELS:
            raise RuntimeError(f"kernel for {kind} registered twice")
        KERNELS[kind] = inst
    return cls


def kernel_for(prim: Primitive) -> Kernel:
    """The kernel of ``prim``'s kind, or an UnsupportedError listing the kinds that have one."""
    k = CLASS_KERNELS.get(type(prim)) or KERNELS.get(prim.kind)
    if k is None:
        raise UnsupportedError(f"no behavioral kernel for primitive kind {prim.kind!r}; "
                               f"kernels exist for: {', '.join(sorted(KERNELS))}")
    return k


@register
class DenseKernel(Kernel):
    """y = W·x + b, rectified when the primitive says so (a current-mode soma): ReLU(W·x + b)."""

    kinds = ("opamp.summer", "current.synapse_array", "crossbar.tiles")

    def forward(self, prim, p, xs, save):
        x = xs[0]
        y = ideal.dense(x, p["weights"], p.get("bias"))  # a fresh array: rectified in place
        if getattr(prim, "rectify", False):
            np.maximum(y, 0, out=y)
        return y, ((x, y) if save else None)

    def forward_conv(self, prim, p, x: Array, conv: Callable[[Array, Array, Array | None], Array]) -> Array:
        """Inference for a bank fed by an Im2Col of the image ``x``: the same y as ``forward`` on the
        im2col rows, from ``conv(x, weights, bias)`` (`compiler.ops._window.conv2d_shifted` or
        `conv2d_gathered`, which take ``p["weights"]`` in the layout they need)."""
        y = conv(x, p["weights"], p.get("bias"))
        if getattr(prim, "rectify", False):
            np.maximum(y, 0, out=y)
        return y

    def backward(self, prim, p, saved, gy):
        x, y = saved
        if getattr(prim, "rectify", False):
            gy = ideal.rectify_backward(gy, y, 0.0)
        gx, gw, gb = ideal.dense_backward(gy, x, p["weights"], "bias" in p)
        grads = {"weights": gw}
        if gb is not None:
            grads["bias"] = gb
        return [gx], grads


@register
class WeightedSumKernel(Kernel):
    """y = Σ gᵢ·xᵢ + b (inverting adder per element, or a Kirchhoff junction)."""

    kinds = ("opamp.elementwise_summer", "current.junction")

    def forward(self, prim, p, xs, save):
        y = ideal.weighted_sum(tuple(xs), prim.gains, prim.bias)
        return y, (tuple(np.shape(x) for x in xs) if save else None)

    def forward_in_place(self, prim, xs: list[Array], i: int) -> Array | None:
        """Inference: ``forward``'s y written over ``xs[i]`` (an array nobody else reads,
        `ideal.weighted_sum`'s ``into``); None where it cannot hold y (another dtype or shape, or a
        sum of three or more that would change order)."""
        dtype = np.result_type(*[ideal.float_dtype(np.asarray(x)) for x in xs])
        shapes = [np.shape(x) for x in xs] + [np.shape(g) for g in prim.gains]
        if prim.bias is not None:
            shapes.append(np.shape(prim.bias))
        if xs[i].dtype != dtype or np.broadcast_shapes(*shapes) != xs[i].shape or (i and len(xs) > 2):
            return None
        return ideal.weighted_sum(tuple(xs), prim.gains, prim.bias, into=i)

    def backward(self, prim, p, saved, gy):
        bias_shape = None if prim.bias is None else np.shape(prim.bias)
        gxs, _ = ideal.weighted_sum_backward(gy, saved, prim.gains, bias_shape)
        return list(gxs), {}


@register
class RectifyKernel(Kernel):
    kinds = ("opamp.rectifier", "current.neuron")

    def forward(self, prim, p, xs, save):
        y = ideal.rectify(xs[0], getattr(prim, "negative_slope", 0.0))
        return y, (y if save else None)

    def forward_in_place(self, prim, xs: list[Array], i: int) -> Array | None:
        """Inference: ``forward``'s y written over ``xs[0]`` (an array nobody else reads), or None
        if it is not floating-point."""
        if xs[0].dtype.kind != "f":
            return None
        return ideal.rectify(xs[0], getattr(prim, "negative_slope", 0.0), in_place=True)

    def backward(self, prim, p, saved, gy):
        return [ideal.rectify_backward(gy, saved, getattr(prim, "negative_slope", 0.0))], {}


@register
class ClipKernel(Kernel):
    kinds = ("opamp.clipper",)

    def forward(self, prim, p, xs, save):
        return ideal.clip(xs[0], prim.low, prim.high), (xs[0] if save else None)

    def backward(self, prim, p, saved, gy):
        return [ideal.clip_backward(gy, saved, prim.low, prim.high)], {}


@register
class DiffPairKernel(Kernel):
    kinds = ("opamp.diffpair",)

    def forward(self, prim, p, xs, save):
        y = ideal.tanh(xs[0]) if prim.function == "tanh" else ideal.sigmoid(xs[0])
        return y, (y if save else None)

    def backward(self, prim, p, saved, gy):
        f = ideal.tanh_backward if prim.function == "tanh" else ideal.sigmoid_backward
        return [f(gy, saved)], {}


@register
class LogKernel(Kernel):
    kinds = ("opamp.log",)

    def forward(self, prim, p, xs, save):
        return ideal.log(xs[0]), (xs[0] if save else None)

    def backward(self, prim, p, saved, gy):
        return [ideal.log_backward(gy, saved)], {}


@register
class ExpKernel(Kernel):
    kinds = ("opamp.exp",)

    def forward(self, prim, p, xs, save):
        y = ideal.exp(xs[0])
        return y, (y if save else None)

    def backward(self, prim, p, saved, gy):
        return [ideal.exp_backward(gy, saved)], {}


class _Binary(Kernel):
    fwd: ClassVar[Any]
    bwd: ClassVar[Any]

    def forward(self, prim, p, xs, save):
        return type(self).fwd(xs[0], xs[1]), ((xs[0], xs[1]) if save else None)

    def backward(self, prim, p, saved, gy):
        ga, gb = type(self).bwd(gy, *saved)
        return [ga, gb], {}


@register
class MultiplyKernel(_Binary):
    kinds = ("opamp.multiplier",)
    fwd, bwd = staticmethod(ideal.multiply), staticmethod(ideal.multiply_backward)


@register
class DivideKernel(_Binary):
    kinds = ("opamp.divider",)
    fwd, bwd = staticmethod(ideal.divide), staticmethod(ideal.divide_backward)


@register
class MatMulKernel(_Binary):
    kinds = ("opamp.matmul",)
    fwd, bwd = staticmethod(ideal.matmul), staticmethod(ideal.matmul_backward)


@register
class SoftmaxKernel(Kernel):
    kinds = ("opamp.softmax", "current.softmax")

    def forward(self, prim, p, xs, save):
        y = ideal.softmax(xs[0], prim.axes)
        return y, (y if save else None)

    def backward(self, prim, p, saved, gy):
        return [ideal.softmax_backward(gy, saved, prim.axes)], {}


@register
class WindowMaxKernel(Kernel):
    kinds = ("opamp.max", "current.wta")

    def forward(self, prim, p, xs, save):
        y = ideal.window_max(xs[0], prim.axes, prim.keepdims)
        return y, ((xs[0], y) if save else None)

    def backward(self, prim, p, saved, gy):
        x, y = saved
        return [ideal.window_max_backward(gy, x, y, prim.axes, prim.keepdims)], {}


@register
class WindowSumKernel(Kernel):
    kinds = ("opamp.average", "current.average")

    def forward(self, prim, p, xs, save):
        return ideal.window_sum(xs[0], prim.axes, prim.gain, prim.keepdims), (xs[0].shape if save else None)

    def backward(self, prim, p, saved, gy):
        return [ideal.window_sum_backward(gy, saved, prim.axes, prim.gain, prim.keepdims)], {}


@register
class IntegratorKernel(Kernel):
    kinds = ("opamp.integrator",)

    def forward(self, prim, p, xs, save):
        return ideal.integrate(xs[0], prim.tau_s, prim.y0, prim.dt_s), None

    def backward(self, prim, p, saved, gy):
        return [ideal.integrate_backward(gy, prim.tau_s, prim.dt_s)], {}


@register
class DifferentiatorKernel(Kernel):
    kinds = ("opamp.differentiator",)

    def forward(self, prim, p, xs, save):
        return ideal.differentiate(xs[0], prim.tau_s, prim.dt_s), None

    def backward(self, prim, p, saved, gy):
        return [ideal.differentiate_backward(gy, prim.tau_s, prim.dt_s)], {}


class ChipSynapseKernel(Kernel):
    """One chip's synapse array (`sim.chip.InstanceSynapseArray`): mismatch-folded weights and the
    mirrors' Early-effect drift, to first order (its docstring gives the terms):

        i0 = v·W_lᵀ + b_l,  i = i0 + (v∘ln v)·(W_l∘pre)ᵀ + ln(i0)∘(v·(W_l∘post)ᵀ + b_l∘bpost)
        y  = rg∘i (read-out), or rg∘max(0, i)∘(1 + soma·(ln(G∘i) + ln i)) (a soma)

    with W_l = W/rg the weights in line units and ln a = 0 where a ≤ 0. The folded matrices are built
    once per primitive and the two products with v share one GEMM; the logarithms and everything after
    the products run in `sim.engine.chip_loops`. Inference only."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str], tuple] = {}

    def _folded(self, prim, dtype):
        key = (id(prim), np.dtype(dtype).str)
        if key not in self._cache:
            w = np.asarray(prim.weights, np.float64)
            rg = np.ones(w.shape[0]) if prim.row_gain is None else np.asarray(prim.row_gain, np.float64)
            wl = w / rg[:, None]
            bl = np.zeros(len(rg)) if prim.bias is None else np.asarray(prim.bias, np.float64) / rg
            bq = np.zeros(len(rg)) if prim.bias_post_log is None else bl * prim.bias_post_log
            pre = None if prim.pre_log is None else np.ascontiguousarray(wl * prim.pre_log, dtype)
            g = np.ones(len(rg)) if prim.line_gain is None else np.asarray(prim.line_gain, np.float64)
            both = np.ascontiguousarray(wl if prim.post_log is None else np.vstack([wl, wl * prim.post_log]), dtype)
            self._cache[key] = (both, pre, bl.astype(dtype), bq.astype(dtype), rg.astype(dtype),
                                np.log(np.where(g > 0, g, 1.0)).astype(dtype), prim, len(rg))
        return self._cache[key]

    def forward(self, prim, p, xs, save):
        v = xs[0]
        both, pre, bl, bq, rg, log_g, _, rows = self._folded(prim, v.dtype)
        lead, v2 = v.shape[:-1], v.reshape(-1, v.shape[-1])
        a = both @ v2.T  # products with the batch along the last axis, which the loops run along
        c = pre @ xlnx(v2).T if pre is not None else None
        y = epilogue(a, c, bl, bq, rg, log_g, prim.soma_log if prim.rectify else 0.0, rows,
                     prim.post_log is not None, bool(prim.rectify)).T
        return y.reshape(*lead, rows), None

    def backward(self, prim, p, saved, gy):
        raise UnsupportedError("--hardware chip at inference includes the mirrors' Early-effect drift, which has no "
                               "gradient here; training for a chip uses the mismatch map (kelvin train --hardware chip)")


CHIP_SYNAPSES = ChipSynapseKernel()


class ChipSoftmaxKernel(Kernel):
    """One chip's differential-pair softmax (`sim.chip.InstanceSoftmax`): per input the gate slopes of its
    positive and negative copies, its pair device's offset, per output the drain-to-soma chain's gain,

        u = a⁺∘pos − a⁻∘neg + o,   y = g∘softmax(u)

    with ``pos``/``neg`` the input's positive and negative somas (columns 0..N−1 and N..2N−1 of a
    signed layer; a rectified input has no ``neg``). The softmax and its gradient are `circuits.ideal`'s."""

    def forward(self, prim, p, xs, save):
        x = xs[0]
        n = len(prim.a_pos)
        u = x[..., :n] * prim.a_pos + prim.shift
        if x.shape[-1] == 2 * n:
            u = u - x[..., n:] * prim.a_neg
        s = ideal.softmax(u, (-1,))
        return (s * prim.out_gain).astype(x.dtype), ((s, x.shape) if save else None)

    def backward(self, prim, p, saved, gy):
        s, shape = saved
        n = len(prim.a_pos)
        gu = ideal.softmax_backward(gy * prim.out_gain, s, (-1,))
        parts = [gu * prim.a_pos] + ([-gu * prim.a_neg] if shape[-1] == 2 * n else [])
        return [np.concatenate(parts, axis=-1).astype(gy.dtype)], {}


CHIP_SOFTMAX = ChipSoftmaxKernel()