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
def _im2col_rows(xp, kh, kw, sh, sw, dh, dw, oh, ow, r0, r1, out):  # pragma: no cover - compiled
    # rows r0..r1-1 of the (N·oh·ow, C·kh·kw) im2col of the padded xp (N, C, Hp, Wp) into out[0:r1-r0]
    c_ = xp.shape[1]
    for r in range(r0, r1):
        n = r // (oh * ow)
        i = (r - n * oh * ow) // ow
        j = r - n * oh * ow - i * ow
        row = out[r - r0]
        col = 0
        for c in range(c_):
            for a in range(kh):
                src = xp[n, c, i * sh + a * dh]
                for b in range(kw):
                    row[col] = src[j * sw + b * dw]
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
    _im2col_rows(x, kh, kw, sh, sw, dh, dw, oh, ow, 0, x.shape[0] * oh * ow, out.reshape(-1, out.shape[2]))
    return out


@njit(cache=True, nogil=True)
def _im2col_rows_nhwc(xh, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow, fill, r0, r1, out):  # pragma: no cover - compiled
    # rows r0..r1-1 of the (N·oh·ow, kh·kw·C) taps-first im2col of xh (N, H, W, C) into out[0:r1-r0]
    n_, h_, w_, c_ = xh.shape
    for r in range(r0, r1):
        n = r // (oh * ow)
        i = (r - n * oh * ow) // ow
        j = r - n * oh * ow - i * ow
        col = 0
        for a in range(kh):
            y = i * sh + a * dh - ph
            for b in range(kw):
                x = j * sw + b * dw - pw
                if 0 <= y < h_ and 0 <= x < w_:
                    out[r - r0, col:col + c_] = xh[n, y, x, :]
                else:
                    for c in range(c_):
                        out[r - r0, col + c] = fill
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
    _im2col_rows_nhwc(xh, kh, kw, sh, sw, dh, dw, win.pads_begin[0], win.pads_begin[1], oh, ow,
                      x.dtype.type(fill), 0, x.shape[0] * oh * ow, out.reshape(-1, out.shape[2]))
    return out


def conv2d_shifted(x: np.ndarray, taps: np.ndarray, bias: np.ndarray | None, win: Window, fill: float | int,
                   alloc: Callable[[tuple[int, ...], np.dtype], np.ndarray] = np.empty) -> np.ndarray:
    """(N, C, H, W) -> (N, oh·ow, Cout): a stride-1 convolution with weights ``taps`` (kh·kw, Cout, C),
    tap-major, plus ``bias`` (Cout,) or None, computed without an im2col.

    x is copied once into NHWC order with its pads (``fill``) and viewed flat as X (N·Hp·Wp, C). The
    output at (n, i, j) is row r = n·Hp·Wp + i·Wp + j of Y = Σ_taps X[r + off]·W_tapᵀ, where tap (a, b)
    is the row shift off = a·dh·Wp + b·dw: one BLAS gemm per tap on the shifted view, accumulating into
    Y in place (beta = 1). The rows with j ≥ ow or i ≥ oh straddle the border and are computed only to
    be dropped: Hp·Wp/(oh·ow) times the valid rows' work, paid instead of the kh·kw-fold copy of an
    im2col (`shifted_conv_pays` says when that wins). ``alloc(shape, dtype)`` gives the padded copy
    and Y (one flat array, a scratch buffer in the engine); the result is a fresh array.
    """
    from scipy.linalg.blas import get_blas_funcs
    if win.strides != (1, 1) or any(win.overhang):
        raise ValueError(f"conv2d_shifted: needs stride 1 and no ceil-mode overhang, got {win}")
    n, c, h, w = x.shape
    (kh, kw), (dh, dw), (oh, ow) = win.kernel, win.dilations, win.out_shape
    (pt, pl), (pb, pr) = win.pads_begin, win.pads_end
    hp, wp = h + pt + pb, w + pl + pr
    cout = taps.shape[1]
    if taps.shape != (kh * kw, cout, c):
        raise ValueError(f"conv2d_shifted: weights {taps.shape} do not match {kh}×{kw} taps of {c} channels")
    rows = n * hp * wp
    flat = alloc((rows * (c + cout),), x.dtype)
    xp = flat[:rows * c].reshape(n, hp, wp, c)
    if pt or pb or pl or pr:
        xp[:, :pt] = fill
        xp[:, pt + h:] = fill
        xp[:, pt:pt + h, :pl] = fill
        xp[:, pt:pt + h, pl + w:] = fill
    xp[:, pt:pt + h, pl:pl + w] = x.transpose(0, 2, 3, 1)
    xf = xp.reshape(rows, c)
    y = flat[rows * c:].reshape(rows, cout)
    m = rows - ((kh - 1) * dh * wp + (kw - 1) * dw)  # the last valid output is row rows - 1 - (that shift)
    gemm = get_blas_funcs("gemm", dtype=x.dtype)
    yt = y[:m].T  # Fortran order: BLAS writes Y (row-major) in place
    for t in range(kh * kw):
        off = (t // kw) * dh * wp + (t % kw) * dw
        got = gemm(1.0, taps[t].T, xf[off:off + m].T, beta=1.0 if t else 0.0, c=yt, overwrite_c=1, trans_a=1)
        if not np.may_share_memory(got, y):  # f2py copied c instead of accumulating in place
            raise RuntimeError("conv2d_shifted: BLAS gemm did not write its output in place")
    out = np.empty((n, oh * ow, cout), x.dtype)
    valid, dest = y.reshape(n, hp, wp, cout)[:, :oh, :ow], out.reshape(n, oh, ow, cout)
    if bias is not None:
        np.add(valid, bias.astype(x.dtype, copy=False), out=dest)
    else:
        dest[...] = valid
    return out


SHIFTED_CHANNELS = 32  # shifted_conv_pays: the dropped rows' share a bank of Cout outputs can afford is 32/Cout


def shifted_conv_pays(win: Window, spatial: Sequence[int], out_channels: int) -> bool:
    """Whether `conv2d_shifted` beats the taps-first gather and one GEMM for this convolution: a
    stride-1 window (no ceil-mode overhang) whose padded area Hp·Wp exceeds the output area oh·ow by
    less than a fraction 32/Cout.

    The gather costs about as much as a GEMM with some 32-64 output channels (it writes kh·kw·C values
    per position, the GEMM does Cout multiply-adds with each), so its share falls as Cout grows, while
    the shifted GEMMs do the dropped rows' work too. Measured at batch 8 on one AVX-512 core (OpenBLAS
    0.3.30), 3×3 pads 1, shifted/taps-first time against Hp·Wp/(oh·ow): ResNet-18's 56²×64 0.54-0.63
    (1.07), 28²×128 0.80 (1.15), 14²×256 1.11 (1.31), 7²×512 1.44 (1.65); and 112²×16 0.30, 56²×256
    0.87, 28²×512 1.07, 14²×64 0.91, 14²×128 1.11, 7²×64 1.17, 5×5 28²×64 0.69; Cout ≠ C: 28², 64→256
    1.01, 256→64 0.62. That is shifted ≈ taps-first × waste × f(Cout), f ≈ 0.35, 0.5, 0.6, 0.72, 0.85,
    0.88 at Cout = 16 … 512, so shifted wins while waste < 1/f ≈ 1 + (30…70)/Cout; 32 keeps to the safe
    side (batch 1: 56²×64 0.75, 28²×128 0.88, 14²×256 1.00).
    """
    if win.strides != (1,) * len(win.strides) or any(win.overhang) or len(win.kernel) != 2 or out_channels < 1:
        return False
    padded = np.prod([s + b + e for s, b, e in zip(spatial, win.pads_begin, win.pads_end)], dtype=np.float64)
    waste = float(padded) / float(np.prod(win.out_shape, dtype=np.float64))
    return waste < 1.0 + SHIFTED_CHANNELS / out_channels


@njit(cache=True, nogil=True)
def _max_pool_nhwc(xh, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow, out):  # pragma: no cover - compiled
    n_, h_, w_, c_ = xh.shape
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                p = i * ow + j
                first = True
                for a in range(kh):
                    y = i * sh + a * dh - ph
                    if y < 0 or y >= h_:
                        continue
                    for b in range(kw):
                        x = j * sw + b * dw - pw
                        if x < 0 or x >= w_:
                            continue
                        if first:
                            out[n, p, :] = xh[n, y, x, :]
                            first = False
                            continue
                        for c in range(c_):
                            v = xh[n, y, x, c]
                            if v > out[n, p, c] or v != v:  # NaN wins, as in np.max
                                out[n, p, c] = v
                if first:  # a window of padding alone (geometry refuses it for pools; any Im2Col may have one)
                    out[n, p, :] = -np.inf


def max_pool_2d(x: np.ndarray, win: Window) -> np.ndarray:
    """(N, C, H, W) -> (N, oh·ow, C): the max over each window, padding excluded, written in NHWC
    order; the same values as the max over the taps of ``windows(x, win, -inf)``, without gathering
    them (a gather writes kh·kw values per output; on ResNet-18's 3×3/2 pool at batch 8 the gather
    and its max took 38 ms, this ~3 ms). An x already NHWC in memory (a `ColToImage` view) is read in place."""
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = win.kernel, win.strides, win.dilations, win.out_shape
    out = np.empty((x.shape[0], oh * ow, x.shape[1]), dtype=x.dtype)
    _max_pool_nhwc(xh, kh, kw, sh, sw, dh, dw, win.pads_begin[0], win.pads_begin[1], oh, ow, out)
    return out


GATHER_CHUNK_BYTES = 2 << 20  # conv2d_gathered: the im2col rows gathered at a time stay in a core's L2 cache
GATHER_CHUNK_ROWS = 512  # … but never fewer rows than this, or the GEMM loses speed


def conv2d_gathered(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None, win: Window, fill: float | int,
                    taps_first: bool, alloc: Callable[[tuple[int, ...], np.dtype], np.ndarray] = np.empty
                    ) -> np.ndarray:
    """(N, C, H, W) -> (N, oh·ow, Cout): im2col rows times ``weights``ᵀ (Cout, K) plus ``bias``, the
    rows gathered a chunk at a time into ``alloc``'s buffer, each chunk multiplied while it is still
    in cache. ``taps_first`` orders each row's taps as `im2col_2d_taps_first` (from x in NHWC order,
    for C ≥ 16), else as `im2col_2d` (C, kh, kw) (from a padded copy of x, for few channels).

    The whole im2col would be written to memory and read back: ResNet-18's first layer (7×7/2, C=3,
    batch 8: 59 MB of rows) took 56 ms so (gather and GEMM) against 43 ms in chunks of ~3500 rows; its
    layers with C ≥ 16 take as long as with the whole taps-first gather, in 2 MB instead of up to 58 MB."""
    n, c = x.shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = win.kernel, win.strides, win.dilations, win.out_shape
    cout, k = weights.shape
    if k != c * kh * kw:
        raise ValueError(f"conv2d_gathered: weights {weights.shape} do not match {kh}×{kw} taps of {c} channels")
    rows = n * oh * ow
    chunk = min(rows, max(GATHER_CHUNK_ROWS, GATHER_CHUNK_BYTES // (k * x.dtype.itemsize)))
    buf = alloc((chunk, k), x.dtype)
    out = np.empty((rows, cout), x.dtype)
    wt = weights.astype(x.dtype, copy=False).T
    b = None if bias is None else bias.astype(x.dtype, copy=False)
    if taps_first:
        src, fill_v = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), x.dtype.type(fill)
    else:
        src = np.ascontiguousarray(_padded_2d(x, win, fill))
    for r0 in range(0, rows, chunk):
        r1 = min(rows, r0 + chunk)
        if taps_first:
            _im2col_rows_nhwc(src, kh, kw, sh, sw, dh, dw, win.pads_begin[0], win.pads_begin[1], oh, ow, fill_v,
                              r0, r1, buf)
        else:
            _im2col_rows(src, kh, kw, sh, sw, dh, dw, oh, ow, r0, r1, buf)
        part = out[r0:r1]
        np.matmul(buf[:r1 - r0], wt, out=part)
        if b is not None:
            part += b
    return out.reshape(n, oh * ow, cout)
