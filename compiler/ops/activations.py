"""Pointwise activations PyTorch models export beyond ReLU/Sigmoid/Tanh (ONNX operator definitions).

Abs, Neg, Elu, Celu, Selu, Softplus, Softsign, HardSigmoid, HardSwish and PRelu. No Kelvin target
has a circuit for them, so they run in the digital periphery: a model using one runs, trains and
evaluates in the engine (their gradients are in `sim.engine.ops`) but gets no netlist. Each keeps
its input's dtype; the exponentials are taken where they cannot overflow.
"""

from __future__ import annotations

import numpy as np

from ._args import Attrs, Inputs
from .registry import register


def _negative_exp(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """exp(x/scale) − 1 on x ≤ 0 (0 elsewhere), without overflow warnings from the other branch."""
    return np.expm1(np.minimum(x, 0) / x.dtype.type(scale))


@register("Abs", (6, 13))
def abs_(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """|x|."""
    return [np.abs(inputs[0])]


@register("Neg", (6, 13))
def neg(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """−x."""
    return [np.negative(inputs[0])]


@register("Elu", (6, 22))
def elu(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """x for x > 0, α·(eˣ − 1) otherwise."""
    x = inputs[0]
    return [np.where(x > 0, x, x.dtype.type(attrs["alpha"]) * _negative_exp(x))]


@register("Celu", (12, 28))
def celu(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """max(0, x) + min(0, α·(e^(x/α) − 1))."""
    x, alpha = inputs[0], float(attrs["alpha"])
    return [np.where(x > 0, x, x.dtype.type(alpha) * _negative_exp(x, alpha))]


@register("Selu", (6, 22))
def selu(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """γ·x for x > 0, γ·α·(eˣ − 1) otherwise."""
    x = inputs[0]
    gamma, alpha = x.dtype.type(attrs["gamma"]), x.dtype.type(attrs["alpha"])
    return [gamma * np.where(x > 0, x, alpha * _negative_exp(x))]


@register("Softplus", (1, 22))
def softplus(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """ln(1 + eˣ), as logaddexp(0, x) so large x give x rather than inf."""
    x = inputs[0]
    return [np.logaddexp(x.dtype.type(0), x)]


@register("Softsign", (1, 22))
def softsign(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """x / (1 + |x|)."""
    x = inputs[0]
    return [x / (1 + np.abs(x))]


@register("HardSigmoid", (6, 22))
def hard_sigmoid(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """max(0, min(1, α·x + β))."""
    x = inputs[0]
    return [np.clip(x.dtype.type(attrs["alpha"]) * x + x.dtype.type(attrs["beta"]), 0, 1).astype(x.dtype)]


@register("HardSwish", (14, 22))
def hard_swish(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """x · max(0, min(1, x/6 + 1/2))."""
    x = inputs[0]
    return [x * np.clip(x / x.dtype.type(6) + x.dtype.type(0.5), 0, 1).astype(x.dtype)]


@register("PRelu", (7, 9, 16))
def prelu(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """x for x ≥ 0, slope·x otherwise (slope broadcast to x, e.g. one per channel)."""
    x, slope = inputs[0], inputs[1]
    return [np.where(x >= 0, x, slope.astype(x.dtype) * x)]
