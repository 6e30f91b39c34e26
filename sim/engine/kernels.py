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

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from circuits import ideal
from circuits.base import Primitive
from circuits.errors import UnsupportedError

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
        y = ideal.dense(x, p["weights"], p.get("bias"))
        if getattr(prim, "rectify", False):
            y = ideal.rectify(y, 0.0)
        return y, ((x, y) if save else None)

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
    kinds = ("opamp.softmax",)

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
