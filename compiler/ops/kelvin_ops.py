"""Kelvin's own IR ops, produced by the lowering passes: Dense, Im2Col, ColToImage.

Dense is a linear layer over the last axis (optionally grouped); Im2Col gathers each
sliding window of an image into a vector (pure wiring), ColToImage puts per-position
vectors back in NCHW order. Conv = Im2Col → Dense → ColToImage; pools reduce Im2Col windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from circuits import ideal
from compiler.ops._window import Window, im2col_2d, windows
from compiler.ops.registry import register


def window_from_attrs(attrs: Mapping[str, Any]) -> Window:
    """The Window an Im2Col node was built with."""
    return Window(*(tuple(attrs[f]) for f in Window.__slots__))


def window_attrs(win: Window) -> dict[str, list[int]]:
    """A Window as plain node attributes (JSON friendly)."""
    return {f: list(getattr(win, f)) for f in Window.__slots__}


@register("kelvin.Dense", [1])
def dense(inputs: Sequence[np.ndarray | None], attrs: Mapping[str, Any], version: int) -> list[np.ndarray]:
    """y = x·Wᵀ + b over the last axis; W (out, in) or grouped (G, out, in) over x[..., G, in]."""
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    return [ideal.dense(x, w, b)]


@register("kelvin.Im2Col", [1])
def im2col(inputs: Sequence[np.ndarray | None], attrs: Mapping[str, Any], version: int) -> list[np.ndarray]:
    """(N, C, *spatial) -> (N, P, G, C/G·prod(kernel)), windows padded with ``fill``."""
    x = inputs[0]
    win = window_from_attrs(attrs)
    groups = int(attrs.get("groups", 1))
    fill = attrs.get("fill", 0.0)
    n, c = x.shape[:2]
    positions = int(np.prod(win.out_shape, dtype=np.int64))
    if len(win.kernel) == 2 and x.dtype.kind in "fiu" and x.dtype.itemsize >= 4 and x.size:
        return [im2col_2d(x, win, fill).reshape(n, positions, groups, -1)]
    view = windows(x, win, fill)  # (N, C, *out, *kernel)
    d = len(win.kernel)
    order = (0, *range(2, 2 + d), 1, *range(2 + d, 2 + 2 * d))
    cols = np.transpose(view, order)
    positions = int(np.prod(win.out_shape, dtype=np.int64))
    return [np.ascontiguousarray(cols).reshape(n, positions, groups, -1)]


@register("kelvin.ColToImage", [1])
def col_to_image(inputs: Sequence[np.ndarray | None], attrs: Mapping[str, Any], version: int) -> list[np.ndarray]:
    """(N, P, G, K/G) -> (N, K, *out_shape), as a view: the data stay position-major (NHWC in
    memory), NumPy's elementwise ops keep that order, and the next Im2Col reads it in place."""
    x = inputs[0]
    n, p = x.shape[:2]
    y = x.reshape(n, p, -1)
    return [np.swapaxes(y, 1, 2).reshape(n, -1, *attrs["out_shape"])]


@register("kelvin.WindowMax", [1])
def window_max(inputs: Sequence[np.ndarray | None], attrs: Mapping[str, Any], version: int) -> list[np.ndarray]:
    """max over the (negative) ``axes``: the reduction half of a max pool."""
    return [ideal.window_max(inputs[0], tuple(attrs["axes"]), bool(attrs.get("keepdims", 1)))]


@register("kelvin.WindowSum", [1])
def window_sum(inputs: Sequence[np.ndarray | None], attrs: Mapping[str, Any], version: int) -> list[np.ndarray]:
    """gain·Σ over ``axes``, gain from input 1: the reduction half of an average pool or mean."""
    return [ideal.window_sum(inputs[0], tuple(attrs["axes"]), inputs[1], bool(attrs.get("keepdims", 1)))]
