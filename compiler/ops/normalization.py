"""LayerNormalization (opset 17): normalize over the trailing axes from ``axis``, then scale and shift.

Y = (X - mean) / sqrt(var + epsilon) · Scale + B, mean and (biased) variance over axes
[axis, rank); Mean and InvStdDev come back with those axes kept as size 1. Statistics are
computed in float64 and returned as float32 (``stash_type`` 1, the only type the schema's U allows besides bfloat16).
"""

from __future__ import annotations

import numpy as np

from circuits.errors import UnsupportedError

from ._args import Attrs, Inputs, axis, optional
from .registry import register


@register("LayerNormalization", (17,))
def layer_normalization(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Y, Mean, InvStdDev (see module docstring)."""
    x, scale, bias = inputs[0], inputs[1], optional(inputs, 2)
    if int(attrs["stash_type"]) != 1:
        raise UnsupportedError(f"LayerNormalization: stash_type={attrs['stash_type']} is not supported (float only)")
    first = axis("LayerNormalization", int(attrs["axis"]), x.ndim)
    red = tuple(range(first, x.ndim))
    xf = x.astype(np.float64)
    mean = xf.mean(axis=red, keepdims=True)
    inv_std = 1.0 / np.sqrt(((xf - mean) ** 2).mean(axis=red, keepdims=True) + float(attrs["epsilon"]))
    y = (xf - mean) * inv_std * scale.astype(np.float64)
    if bias is not None:
        y = y + bias.astype(np.float64)
    return [y.astype(x.dtype), mean.astype(np.float32), inv_std.astype(np.float32)]
