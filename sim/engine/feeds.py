"""Checking what a caller feeds a graph: one statement for the ideal executor and every `Program`.

A feed must be a real numeric array of the input's declared rank and fixed dimensions; a float
feed is cast to the engine's dtype only when it fits (1e300 into float32 would become Inf and
every output NaN). Each refusal is one line naming the input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from circuits.errors import InputError
from compiler.ir import Graph

NUMERIC_KINDS = "biuf"


def check_graph(graph: Any) -> Graph:
    """``graph`` if it is a Kelvin Graph; a Python caller's anything else is one InputError, not an
    AttributeError from deep inside."""
    if not isinstance(graph, Graph):
        raise InputError(f"graph: a Kelvin Graph (compile_model(...).graph), got {type(graph).__name__}")
    return graph


def check_feed(graph: Graph, name: str, value: Any, dtype: Any = None) -> np.ndarray:
    """``value`` as an array of ``graph``'s input ``name``, shape and kind checked. Float feeds, and
    integer feeds of a float input, are cast to ``dtype`` (the engine's float dtype; default the
    input's declared one) within range; integer feeds of integer inputs stay as they are."""
    if value is None:
        raise InputError(f"input {name!r}: no value (None)")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise InputError(f"input {name!r}: not an array ({exc})") from None
    if arr.dtype.kind not in NUMERIC_KINDS:
        kind = "complex; analog signals are real" if arr.dtype.kind == "c" else f"of dtype {arr.dtype}, not numbers"
        raise InputError(f"input {name!r} is {kind}")
    info = graph.info(name)
    if info is not None and info.shape is not None:
        if arr.ndim != len(info.shape):
            raise InputError(f"input {name!r}: expected rank {len(info.shape)} {_fmt(info.shape)}, got shape {arr.shape}")
        for want, got in zip(info.shape, arr.shape):
            if isinstance(want, int) and want != got:
                raise InputError(f"input {name!r}: expected shape {_fmt(info.shape)}, got {arr.shape}")
    declared_float = info is not None and info.dtype.kind == "f"
    target = np.dtype(dtype) if dtype is not None else (info.dtype if declared_float else None)
    if target is not None and arr.dtype != target and (arr.dtype.kind == "f" or (declared_float and arr.dtype.kind in "biu")):
        arr = cast_checked(name, arr, target)
    return arr


def cast_checked(name: str, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``x`` in ``dtype``; a finite value beyond that dtype's range is an input error naming the
    tensor and index (it would become Inf)."""
    if x.dtype.kind == "f" and dtype.kind == "f":
        top = np.finfo(dtype).max
        if np.finfo(x.dtype).max > top:
            big = np.abs(x) > top
            if big.any():
                index = [int(i) for i in np.argwhere(big)[0]]
                raise InputError(f"input {name!r} holds {x[tuple(index)]:g} at index {index}, beyond the "
                                 f"engine's {dtype.name} range (±{top:.3g}); rescale the input")
    return x.astype(dtype)


def _fmt(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
