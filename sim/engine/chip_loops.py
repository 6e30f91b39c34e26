"""Compiled inner loops of the chip synapse kernel (`sim.engine.kernels.ChipSynapseKernel`).

The chip model takes a logarithm of every signal it drifts with (each input line, each soma's
drift-free and drifted sum). NumPy's float32 log runs one value at a time on AVX2 machines (about
2.3 ns each here), which made ``--hardware chip`` some 15× slower than ``ideal`` on the digits MLP;
these loops take them in SIMD and fuse the drift/soma arithmetic into one pass over the output.

Float32 logarithm: x = m·2^e with m ∈ [√½, √2), ln x = e·ln 2 + 2·atanh(t), t = (m−1)/(m+1),
|t| ≤ 0.1716, the series summed to t⁹ (truncation < 3e-9); float32 rounding leaves about 1e-7
absolute, far below what the drift terms (slopes of a few 1e-3 per e-fold) can show.
`tests/sim/test_chip_engine.py` checks it against np.log. Float64 signals use math.log.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_F = {"fastmath": True, "error_model": "numpy", "cache": True, "nogil": True}


@njit(inline="always", **_F)
def _ln32(bits):  # pragma: no cover - compiled
    """ln of the positive normal float32 whose bit pattern is ``bits``."""
    e = np.float32(((bits >> 23) & 0xFF) - 127)
    m = np.float32(1.0) + np.float32(bits & 0x7FFFFF) * np.float32(1.1920928955078125e-07)
    big = m > np.float32(1.4142135)
    m = m * np.float32(0.5) if big else m
    e = e + np.float32(1.0) if big else e
    t = (m - np.float32(1.0)) / (m + np.float32(1.0))
    t2 = t * t
    s = np.float32(1.0) + t2 * (np.float32(1 / 3) + t2 * (np.float32(0.2) + t2 * (np.float32(1 / 7)
                                                                                   + t2 * np.float32(1 / 9))))
    return e * np.float32(0.6931471805599453) + np.float32(2.0) * t * s


@njit(**_F)
def _xlnx32(x, out):  # pragma: no cover - compiled
    bits = x.view(np.int32)
    for k in range(x.size):
        out[k] = x[k] * _ln32(bits[k]) if x[k] > 0 else np.float32(0.0)


@njit(**_F)
def _xlnx64(x, out):  # pragma: no cover - compiled
    for k in range(x.size):
        out[k] = x[k] * math.log(x[k]) if x[k] > 0 else 0.0


def xlnx(x: np.ndarray) -> np.ndarray:
    """x·ln x, 0 where x ≤ 0 (a line without current carries no drift); x's shape and dtype."""
    if x.ndim == 2 and x.flags.f_contiguous and not x.flags.c_contiguous:
        return xlnx(x.T).T  # a transposed chip output: elementwise in memory order
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    (_xlnx32 if flat.dtype == np.float32 else _xlnx64)(flat, out)
    return out.reshape(x.shape)


@njit(**_F)
def _epilogue32(a, c, bl, bq, rg, log_g, soma, rows, has_pre, has_post, rectify, out):  # pragma: no cover
    """Transposed: a (2·rows × B), c (rows × B), out (rows × B); the long inner loops run in SIMD."""
    n = a.shape[1]
    buf = np.empty(n, np.float32)  # a row of currents whose logarithms are needed, and its bits
    bits = buf.view(np.int32)
    zero, one, two = np.float32(0.0), np.float32(1.0), np.float32(2.0)
    for r in range(rows):
        o, ar, br, g = out[r], a[r], bl[r], rg[r]
        for k in range(n):
            buf[k] = ar[k] + br
        if has_pre:
            cr = c[r]
            for k in range(n):
                o[k] = buf[k] + cr[k]
        else:
            for k in range(n):
                o[k] = buf[k]
        if has_post:
            ap, bp = a[rows + r], bq[r]
            for k in range(n):
                ln0 = _ln32(bits[k])
                o[k] += (ln0 if buf[k] > zero else zero) * (ap[k] + bp)
        if not rectify:
            for k in range(n):
                o[k] *= g
            continue
        for k in range(n):
            buf[k] = max(o[k], zero)
        lg = log_g[r]
        for k in range(n):
            i = buf[k]
            ln_i = _ln32(bits[k])
            o[k] = i * g * (one + soma * (lg + two * ln_i)) if i > zero else zero


@njit(**_F)
def _epilogue64(a, c, bl, bq, rg, log_g, soma, rows, has_pre, has_post, rectify, out):  # pragma: no cover
    for r in range(rows):
        for k in range(a.shape[1]):
            i0 = a[r, k] + bl[r]
            i = i0 + c[r, k] if has_pre else i0
            if has_post and i0 > 0:
                i += math.log(i0) * (a[rows + r, k] + bq[r])
            if not rectify:
                out[r, k] = i * rg[r]
            elif i > 0:
                out[r, k] = i * rg[r] * (1.0 + soma * (log_g[r] + 2.0 * math.log(i)))
            else:
                out[r, k] = 0.0


def epilogue(a: np.ndarray, c: np.ndarray | None, bl: np.ndarray, bq: np.ndarray, rg: np.ndarray,
             log_g: np.ndarray, soma: float, rows: int, has_post: bool, rectify: bool) -> np.ndarray:
    """The chip kernel after its products, batch along the last axis: ``a`` = [W_l; W_l∘post]·vᵀ
    (2·rows × B), ``c`` the pre-drift product (rows × B, or None); returns yᵀ (rows × B) as
    `ChipSynapseKernel` states it."""
    out = np.empty((rows, a.shape[1]), a.dtype)
    a = np.ascontiguousarray(a)
    pre = np.ascontiguousarray(c) if c is not None else a[:0]
    kernel = _epilogue32 if a.dtype == np.float32 else _epilogue64
    kernel(a, pre, bl, bq, rg, log_g, a.dtype.type(soma), rows, c is not None, has_post, rectify, out)
    return out
