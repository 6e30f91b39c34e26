"""The one statement of each primitive's math: forward and backward side by side.

The same math (a weighted sum, a rectifier, a window max) is built as an op-amp circuit, a
current-mode circuit or a crossbar; every primitive's ``ideal``, the block circuits, the
behavioral engine's kernels (`sim.engine.kernels`), the fitted families and the chip model
call the functions here instead of restating them.

Conventions:
- Forward functions compute in the input's floating dtype (float32 by default in the engine,
  float64 for gradient checks and SPICE comparisons); integer inputs are promoted to float64.
- ``*_backward`` functions take the upstream gradient ``gy`` and only what the forward saved
  (named in each docstring) and return the gradients of the inputs (and of the parameters,
  where the math has any), in the same order.
- Broadcasting ops reduce gradients back to their operand's shape with `unbroadcast`.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


def float_dtype(x: Array) -> np.dtype:
    """The dtype a computation on ``x`` runs in: x's own float dtype, else float64."""
    return x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)


def as_float(x: Array) -> Array:
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def unbroadcast(g: Array, shape: tuple[int, ...]) -> Array:
    """Sum ``g`` over the axes that broadcasting added or stretched to reach it from ``shape``."""
    if g.shape == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


# --- linear ---------------------------------------------------------------------------------
def dense(x: Array, weights: Array, bias: Array | None) -> Array:
    """y = x·Wᵀ + b over the last axis; with 3-D weights (G, out, in), per group over x[..., G, in]."""
    x = as_float(x)
    w = weights if weights.dtype == x.dtype else weights.astype(x.dtype)
    if w.ndim == 2:  # one GEMM over every leading axis (a stack of row-vector products is far slower)
        y = (x.reshape(-1, x.shape[-1]) @ w.T).reshape(*x.shape[:-1], w.shape[0])
    else:
        y = np.einsum("...gi,goi->...go", x, w, optimize=True)
    if bias is not None:
        y += bias if bias.dtype == y.dtype else bias.astype(y.dtype)
    return y


def dense_backward(gy: Array, x: Array, weights: Array, has_bias: bool,
                   need_x: bool = True) -> tuple[Array | None, Array, Array | None]:
    """Saved: x, W. Returns (∂x, ∂W, ∂b): ∂x = gy·W, ∂W = Σ_batch gyᵀ·x, ∂b = Σ_batch gy."""
    w = weights if weights.dtype == gy.dtype else weights.astype(gy.dtype)
    if w.ndim == 2:
        g2, x2 = gy.reshape(-1, gy.shape[-1]), x.reshape(-1, x.shape[-1])
        gx = (g2 @ w).reshape(x.shape) if need_x else None
        gw = g2.T @ x2
        gb = g2.sum(axis=0) if has_bias else None
    else:
        gx = np.einsum("...go,goi->...gi", gy, w, optimize=True) if need_x else None
        g3 = gy.reshape(-1, *gy.shape[-2:])
        x3 = x.reshape(-1, *x.shape[-2:])
        gw = np.einsum("ngo,ngi->goi", g3, x3, optimize=True)
        gb = g3.sum(axis=0) if has_bias else None
    return gx, gw, gb


def weighted_sum(inputs: tuple[Array, ...], gains: tuple, bias, into: int | None = None) -> Array:
    """y = Σ gᵢ·xᵢ + b with NumPy broadcasting (Kirchhoff's current law, or an inverting summer).

    ``into``: y is written over ``inputs[into]`` (the engine at inference, for an array nobody else
    reads; it must have y's dtype and shape), its term first. The values are the same: two terms
    commute exactly, so with three or more only ``into = 0`` keeps the order, and x·1 is x."""
    dtype = np.result_type(*[float_dtype(np.asarray(x)) for x in inputs])
    if into is not None:
        y = inputs[into]
        for j in [into, *(j for j in range(len(inputs)) if j != into)]:
            g = np.asarray(gains[j], dtype)
            unit = g.ndim == 0 and g == 1
            if j == into:
                if not unit:
                    np.multiply(y, g, out=y)
            else:
                np.add(y, np.asarray(inputs[j], dtype) if unit else np.asarray(inputs[j], dtype) * g, out=y)
        if bias is not None:
            np.add(y, np.asarray(bias, dtype), out=y)
        return y
    y = None
    for x, g in zip(inputs, gains, strict=True):
        term = np.asarray(x, dtype) * np.asarray(g, dtype)
        y = term if y is None else y + term
    assert y is not None
    if bias is not None:
        y = y + np.asarray(bias, dtype)
    return np.asarray(y, dtype)


def weighted_sum_backward(gy: Array, shapes: tuple[tuple[int, ...], ...], gains: tuple,
                          bias_shape: tuple[int, ...] | None) -> tuple[list[Array], Array | None]:
    """Saved: input shapes. ∂xᵢ = gᵢ·gy (reduced to xᵢ's shape), ∂b = gy (reduced to b's shape)."""
    gxs = [unbroadcast(gy * np.asarray(g, gy.dtype), s) for g, s in zip(gains, shapes, strict=True)]
    gb = None if bias_shape is None else unbroadcast(gy, bias_shape)
    return gxs, gb


# --- elementwise nonlinearities ---------------------------------------------------------------
def rectify(x: Array, negative_slope: float, in_place: bool = False) -> Array:
    """max(0, x) + slope·min(0, x): a precision rectifier, or leaky with slope ≠ 0. ``in_place``: y is
    written over x (a floating-point array nobody else reads; the engine at inference)."""
    x = as_float(x)
    if negative_slope == 0.0:
        return np.maximum(x, 0, out=x if in_place else None)
    if in_place:
        return np.multiply(x, x.dtype.type(negative_slope), out=x, where=~(x >= 0))
    return np.where(x >= 0, x, x * x.dtype.type(negative_slope))


def rectify_backward(gy: Array, y: Array, negative_slope: float) -> Array:
    """Saved: y (its sign is x's). ∂x = gy where x > 0, slope·gy elsewhere."""
    if negative_slope == 0.0:
        return gy * (y > 0)
    return np.where(y > 0, gy, gy * gy.dtype.type(negative_slope))


def clip(x: Array, low: float, high: float) -> Array:
    """min(max(x, low), high); infinite bounds are no bound."""
    x = as_float(x)
    y = x if not np.isfinite(low) else np.maximum(x, x.dtype.type(low))
    return y if not np.isfinite(high) else np.minimum(y, x.dtype.type(high))


def clip_backward(gy: Array, x: Array, low: float, high: float) -> Array:
    """Saved: x. ∂x = gy inside [low, high], 0 outside."""
    return gy * ((x >= low) & (x <= high))


def tanh(x: Array) -> Array:
    return np.tanh(as_float(x))


def tanh_backward(gy: Array, y: Array) -> Array:
    """Saved: y. ∂x = gy·(1 − y²)."""
    return gy * (1 - y * y)


def sigmoid(x: Array) -> Array:
    """1 / (1 + e^-x), from e^-|x| so it neither overflows nor loses the tiny values far below 0."""
    x = as_float(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(gy: Array, y: Array) -> Array:
    """Saved: y. ∂x = gy·y·(1 − y)."""
    return gy * y * (1 - y)


def log(x: Array) -> Array:
    """ln x (a transdiode log amplifier in model units); NaN/−inf outside its domain, as NumPy."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(as_float(x))


def log_backward(gy: Array, x: Array) -> Array:
    """Saved: x. ∂x = gy / x."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return gy / x


def exp(x: Array) -> Array:
    """eˣ (an antilog amplifier in model units)."""
    with np.errstate(over="ignore"):
        return np.exp(as_float(x))


def exp_backward(gy: Array, y: Array) -> Array:
    """Saved: y. ∂x = gy·y."""
    return gy * y


# --- products ---------------------------------------------------------------------------------
def multiply(a: Array, b: Array) -> Array:
    """a·b with broadcasting (log-add-antilog multiplier)."""
    return np.multiply(as_float(a), as_float(b))


def multiply_backward(gy: Array, a: Array, b: Array) -> tuple[Array, Array]:
    """Saved: a, b. ∂a = gy·b, ∂b = gy·a (each reduced to its operand's shape)."""
    return unbroadcast(gy * b, a.shape), unbroadcast(gy * a, b.shape)


def divide(a: Array, b: Array) -> Array:
    """a / b with broadcasting (log-subtract-antilog divider)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(as_float(a), as_float(b))


def divide_backward(gy: Array, a: Array, b: Array) -> tuple[Array, Array]:
    """Saved: a, b. ∂a = gy/b, ∂b = −gy·a/b²."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ga = gy / b
        return unbroadcast(ga, a.shape), unbroadcast(-ga * a / b, b.shape)


def matmul(a: Array, b: Array) -> Array:
    """a @ b of two signals (NumPy matmul broadcasting)."""
    a, b = as_float(a), as_float(b)
    dtype = np.result_type(a, b)
    return np.matmul(a.astype(dtype, copy=False), b.astype(dtype, copy=False))


def matmul_backward(gy: Array, a: Array, b: Array) -> tuple[Array, Array]:
    """Saved: a, b. ∂a = gy·bᵀ, ∂b = aᵀ·gy (1-D operands promoted as matmul does)."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g = gy
    if a.ndim == 1:
        g = np.expand_dims(g, -2)
    if b.ndim == 1:
        g = np.expand_dims(g, -1)
    ga = g @ np.swapaxes(b2, -1, -2)
    gb = np.swapaxes(a2, -1, -2) @ g
    ga = unbroadcast(ga, a2.shape).reshape(a.shape)
    gb = unbroadcast(gb, b2.shape).reshape(b.shape)
    return ga, gb


def softmax(x: Array, axes: tuple[int, ...]) -> Array:
    """exp(x − max) / Σ exp(x − max) jointly over ``axes`` (an empty input stays empty)."""
    x = as_float(x)
    if x.size == 0:
        return x.copy()
    e = np.exp(x - np.max(x, axis=axes, keepdims=True))
    return e / np.sum(e, axis=axes, keepdims=True)


def softmax_backward(gy: Array, y: Array, axes: tuple[int, ...]) -> Array:
    """Saved: y. ∂x = y·(gy − Σ_axes gy·y)."""
    return y * (gy - np.sum(gy * y, axis=axes, keepdims=True))


def log_softmax(x: Array, axes: tuple[int, ...]) -> Array:
    """x − max − ln Σ exp(x − max) jointly over ``axes``: ln(softmax(x)) without its underflow to −∞
    (ONNX LogSoftmax; a PyTorch classifier's usual head)."""
    x = as_float(x)
    if x.size == 0:
        return x.copy()
    z = x - np.max(x, axis=axes, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axes, keepdims=True))


def log_softmax_backward(gy: Array, y: Array, axes: tuple[int, ...]) -> Array:
    """Saved: y. ∂x = gy − exp(y)·Σ_axes gy."""
    return gy - np.exp(y) * np.sum(gy, axis=axes, keepdims=True)


# --- windows ----------------------------------------------------------------------------------
def window_sum(x: Array, axes: tuple[int, ...], gain, keepdims: bool) -> Array:
    """Σ over ``axes`` times ``gain`` (1/count for an average)."""
    x = as_float(x)
    y = np.sum(x, axis=axes, keepdims=keepdims)
    return np.asarray(y * np.asarray(gain, y.dtype))


def window_sum_backward(gy: Array, shape: tuple[int, ...], axes: tuple[int, ...], gain, keepdims: bool) -> Array:
    """Saved: x's shape. ∂x = gain·gy, broadcast back over the summed axes."""
    g = gy * np.asarray(gain, gy.dtype)
    if not keepdims:
        g = np.expand_dims(g, tuple(a % len(shape) for a in axes))
    return np.broadcast_to(g, shape)


def window_max(x: Array, axes: tuple[int, ...], keepdims: bool) -> Array:
    """max over ``axes``."""
    return np.max(as_float(x), axis=axes, keepdims=keepdims)


def window_max_backward(gy: Array, x: Array, y: Array, axes: tuple[int, ...], keepdims: bool) -> Array:
    """Saved: x, y. The gradient goes to the window's maximum (shared equally between ties)."""
    axes_pos = tuple(a % x.ndim for a in axes)
    yk = y if keepdims else np.expand_dims(y, axes_pos)
    gk = gy if keepdims else np.expand_dims(gy, axes_pos)
    hit = x == yk
    count = np.sum(hit, axis=axes_pos, keepdims=True)
    return np.where(hit, gk / count, 0).astype(gy.dtype, copy=False)


# --- time-domain blocks (sampled along the last axis) -----------------------------------------
def integrate(x: Array, tau_s: float, y0: float, dt_s: float) -> Array:
    """y(t) = y0 − (1/τ)·∫₀ᵗ x dt, trapezoidal on samples dt_s apart along the last axis."""
    x = as_float(x)
    steps = 0.5 * (x[..., 1:] + x[..., :-1]) * dt_s
    area = np.concatenate([np.zeros_like(x[..., :1]), np.cumsum(steps, axis=-1)], axis=-1)
    return x.dtype.type(y0) - area / x.dtype.type(tau_s)


def integrate_backward(gy: Array, tau_s: float, dt_s: float) -> Array:
    """Saved: nothing (linear). Step s adds ½·dt·(x_s + x_{s+1}) to every y_t with t > s, so
    ∂x_j = −(dt/2τ)·(G_j + G_{j−1}) with G_s = Σ_{t>s} gy_t (G_{−1} = G_{T−1} = 0)."""
    tail = np.cumsum(gy[..., ::-1], axis=-1)[..., ::-1]  # tail[s] = Σ_{t≥s} gy_t
    g = np.zeros_like(gy)
    g[..., :-1] = tail[..., 1:]  # G_s = Σ_{t>s}
    gx = g.copy()
    gx[..., 1:] += g[..., :-1]
    return -gx * gy.dtype.type(0.5 * dt_s / tau_s)


def differentiate(x: Array, tau_s: float, dt_s: float) -> Array:
    """y = −τ·dx/dt: central differences inside, one-sided at the ends (numpy.gradient)."""
    x = as_float(x)
    return -x.dtype.type(tau_s) * np.gradient(x, dt_s, axis=-1)


def differentiate_backward(gy: Array, tau_s: float, dt_s: float) -> Array:
    """Saved: nothing (linear): the transpose of numpy.gradient's stencil, times −τ."""
    gx = np.zeros_like(gy)
    c = gy[..., 1:-1] / (2 * dt_s)
    gx[..., 2:] += c
    gx[..., :-2] -= c
    e0, e1 = gy[..., 0] / dt_s, gy[..., -1] / dt_s
    gx[..., 1] += e0
    gx[..., 0] -= e0
    gx[..., -1] += e1
    gx[..., -2] -= e1
    return -gx * gy.dtype.type(tau_s)
