"""Sliding-window geometry shared by Conv, MaxPool and AveragePool.

One function turns kernel_shape/strides/dilations/pads/auto_pad/ceil_mode into pads and an
output size, and one builds the strided, dilated window view, so the three ops cannot
disagree about where a window sits. Output size (ONNX Conv/MaxPool/AveragePool docs):
    explicit pads: out = floor_or_ceil((in + pad_begin + pad_end - dk) / stride) + 1,
                   dk = (kernel - 1) * dilation + 1; in ceil mode a window that would start
                   in the end padding is dropped;
    SAME_*:        out = ceil(in / stride) in floor and ceil mode alike,
                   pad total = max((out - 1) * stride + dk - in, 0), the odd pixel going
                   to the end (UPPER) or the beginning (LOWER);
    VALID:         out = floor((in - dk) / stride) + 1, no padding (ceil mode is unsupported).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from circuits.errors import ModelError, UnsupportedError


@dataclass(frozen=True, slots=True)
class Window:
    """Geometry of a sliding window over the spatial axes (one entry per axis)."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]
    pads_end: tuple[int, ...]
    overhang: tuple[int, ...]  # extra end cells a ceil-mode window reaches past pads_end
    out_shape: tuple[int, ...]


def _spatial_ints(
    op: str, attrs: Mapping[str, Any], name: str, n: int, default: int
) -> tuple[int, ...]:
    """Attribute ``name`` as ``n`` ints (absent or empty means ``default`` on every axis)."""
    values = attrs.get(name)
    if values is None or len(values) == 0:
        return (default,) * n
    if len(values) != n:
        raise ModelError(f"{op}: {name}={list(values)} needs {n} entries for {n} spatial axes")
    return tuple(int(v) for v in values)


def geometry(
    op: str,
    spatial: Sequence[int],
    kernel: Sequence[int],
    attrs: Mapping[str, Any],
    ceil_mode: bool = False,
) -> Window:
    """The window geometry of ``op`` over an input with spatial shape ``spatial``."""
    n = len(spatial)
    kernel = tuple(int(k) for k in kernel)
    if len(kernel) != n:
        raise ModelError(f"{op}: kernel_shape={list(kernel)} does not match {n} spatial axes")
    strides = _spatial_ints(op, attrs, "strides", n, 1)
    dilations = _spatial_ints(op, attrs, "dilations", n, 1)
    pads = _spatial_ints(op, attrs, "pads", 2 * n, 0)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if min(kernel + strides + dilations, default=1) < 1:
        raise ModelError(f"{op}: kernel_shape, strides and dilations must be positive")
    if min(pads, default=0) < 0:
        raise UnsupportedError(f"{op}: negative pads={list(pads)} are not supported")
    begin, end, over, out = [], [], [], []
    for i, (size, k, s, d) in enumerate(zip(spatial, kernel, strides, dilations)):
        dk = (k - 1) * d + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-size // s)
            total = max((o - 1) * s + dk - size, 0)
            pb = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            pe = total - pb
        elif auto_pad == "VALID":
            if ceil_mode:
                raise UnsupportedError(
                    f"{op}: ceil_mode=1 with auto_pad='VALID' is ambiguous (the ONNX spec and "
                    "onnxruntime disagree on the output size); use explicit pads"
                )
            pb = pe = 0
            o = (size - dk) // s + 1
        elif auto_pad == "NOTSET":
            pb, pe = pads[i], pads[i + n]
            span = size + pb + pe - dk
            o = (-(-span // s) if ceil_mode else span // s) + 1
            if ceil_mode and (o - 1) * s >= size + pb:
                o -= 1
        else:
            raise UnsupportedError(f"{op}: auto_pad={auto_pad!r} is not supported")
        if op.endswith("Pool") and max(pb, pe) >= dk:  # as onnxruntime: a window of padding alone has no value
            raise ModelError(f"{op}: pads ({pb}, {pe}) on spatial axis {i} must be smaller than the "
                             f"{'dilated ' if d > 1 else ''}kernel {dk}; a window would cover only padding")
        if o < 1:
            raise ModelError(
                f"{op}: dilated kernel {dk} does not fit spatial axis {i} of size {size} "
                f"with pads ({pb}, {pe})"
            )
        begin.append(pb)
        end.append(pe)
        over.append(max((o - 1) * s + dk - (size + pb + pe), 0))
        out.append(o)
    return Window(kernel, strides, dilations, tuple(begin), tuple(end), tuple(over), tuple(out))


def windows(x: np.ndarray, win: Window, fill: float | int) -> np.ndarray:
    """View of ``x`` (N, C, *spatial) as (N, C, *out_shape, *kernel), padding with ``fill``."""
    n = len(win.kernel)
    lead = [(0, 0)] * (x.ndim - n)
    widths = lead + [(b, e + o) for b, e, o in zip(win.pads_begin, win.pads_end, win.overhang)]
    if any(b or e for b, e in widths):
        x = np.pad(x, widths, constant_values=fill)
    spans = tuple((k - 1) * d + 1 for k, d in zip(win.kernel, win.dilations))
    view = np.lib.stride_tricks.sliding_window_view(x, spans, axis=tuple(range(x.ndim - n, x.ndim)))
    keep_lead = (slice(None),) * (x.ndim - n)
    keep_out = tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(win.out_shape, win.strides))
    keep_taps = tuple(slice(None, None, d) for d in win.dilations)
    return view[keep_lead + keep_out + keep_taps]


def tap_counts(spatial: Sequence[int], win: Window, include_pad: bool) -> np.ndarray:
    """Per output position, how many window taps land on the input (or on input + pads)."""
    count = np.ones((), dtype=np.int64)
    for size, k, s, d, pb, pe, o in zip(
        spatial, win.kernel, win.strides, win.dilations, win.pads_begin, win.pads_end, win.out_shape
    ):
        pos = np.arange(o)[:, None] * s + np.arange(k)[None, :] * d - pb
        lo, hi = (-pb, size + pe) if include_pad else (0, size)
        axis_count = ((pos >= lo) & (pos < hi)).sum(axis=1)
        count = np.multiply.outer(count, axis_count)
    return count


@njit(cache=True, nogil=True)
def _im2col_2d(xp, kh, kw, sh, sw, dh, dw, oh, ow, out):  # pragma: no cover - compiled
    n_, c_ = xp.shape[0], xp.shape[1]
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                p = i * ow + j
                col = 0
                for c in range(c_):
                    for a in range(kh):
                        y = i * sh + a * dh
                        for b in range(kw):
                            out[n, p, col] = xp[n, c, y, j * sw + b * dw]
                            col += 1


def _padded_2d(x: np.ndarray, win: Window, fill: float | int) -> np.ndarray:
    """(N, C, H, W) with the window's pads (and ceil-mode overhang) filled with ``fill``."""
    widths = [(0, 0), (0, 0)] + [(b, e + o) for b, e, o in zip(win.pads_begin, win.pads_end, win.overhang)]
    return np.pad(x, widths, constant_values=fill) if any(b or e for b, e in widths) else x


def im2col_2d(x: np.ndarray, win: Window, fill: float | int) -> np.ndarray:
    """(N, C, H, W) -> (N, oh·ow, C·kh·kw): every window as a row, taps in (C, kh, kw) order.

    The same values as ``windows(x, win, fill)`` transposed to (N, oh, ow, C, kh, kw), written by a
    Numba loop in output order instead of a strided 6-D NumPy transpose (8-20× faster on ResNet
    layers; `benchmarks/bench_engine.py`).
    """
    x = np.ascontiguousarray(_padded_2d(x, win, fill))
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = win.kernel, win.strides, win.dilations, win.out_shape
    out = np.empty((x.shape[0], oh * ow, x.shape[1] * kh * kw), dtype=x.dtype)
    _im2col_2d(x, kh, kw, sh, sw, dh, dw, oh, ow, out)
    return out


@njit(cache=True, nogil=True)
def _im2col_nhwc(xh, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow, fill, out):  # pragma: no cover - compiled
    n_, h_, w_, c_ = xh.shape
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                p = i * ow + j
                col = 0
                for a in range(kh):
                    y = i * sh + a * dh - ph
                    for b in range(kw):
                        x = j * sw + b * dw - pw
                        if 0 <= y < h_ and 0 <= x < w_:
                            out[n, p, col:col + c_] = xh[n, y, x, :]
                        else:
                            for c in range(c_):
                                out[n, p, col + c] = fill
                        col += c_


def im2col_2d_taps_first(x: np.ndarray, win: Window, fill: float | int,
                         alloc: Callable[[tuple[int, ...], np.dtype], np.ndarray] = np.empty) -> np.ndarray:
    """(N, C, H, W) -> (N, oh·ow, kh·kw·C): the same windows as `im2col_2d` with the taps in
    (kh, kw, C) order, copied as contiguous channel runs from x in NHWC order. 2-5× faster than
    (C, kh, kw) order once C ≥ 16; the engine pairs it with the weight columns permuted alike.

    Taps in the padding are written as ``fill`` by the loop (no padded copy of x), and an x that is
    already NHWC in memory (a `ColToImage` view) is read in place. ``alloc(shape, dtype)`` gives the
    result's array (the engine hands out one buffer reused across layers and runs: fresh pages cost
    ResNet-18 some 15 % of its time)."""
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = win.kernel, win.strides, win.dilations, win.out_shape
    out = alloc((x.shape[0], oh * ow, kh * kw * x.shape[1]), x.dtype)
    _im2col_nhwc(xh, kh, kw, sh, sw, dh, dw, win.pads_begin[0], win.pads_begin[1], oh, ow,
                 x.dtype.type(fill), out)
    return out
