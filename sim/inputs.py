"""Input files for a model: .npy, .npz (arrays keyed by input name) or .csv (one sample per row).

Shared by ``kelvin run``, ``validate --input`` and ``stimulus``; kept apart from the CLI helpers so
the SPICE side can read inputs without importing the command layer.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from circuits.errors import InputError
from circuits.files import read_npy, read_npz
from compiler.ir import Graph


def load_inputs(path: str | os.PathLike[str], graph: Graph) -> dict[str, np.ndarray]:
    """Read input arrays for ``graph`` from .npy, .npz (by input name) or .csv (one sample per row)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory; give an input file (.npy, .npz or .csv)")
    if not p.is_file():
        raise InputError(f"{p}: no such input file")
    if not graph.inputs:
        raise InputError(f"{p}: the model has no inputs (its outputs are constants); there is nothing to drive")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            arrays = {graph.inputs[0]: read_npy(p)} if len(graph.inputs) == 1 else None
            if arrays is None:
                raise InputError(f"{p}: the model has {len(graph.inputs)} inputs "
                                 f"({', '.join(graph.inputs)}); give an .npz keyed by those names")
        elif suffix == ".npz":
            data = read_npz(p)
            missing = [n for n in graph.inputs if n not in data]
            if missing:
                raise InputError(f"{p}: no array named {', '.join(map(repr, missing))} (the file holds "
                                 f"{', '.join(map(repr, data)) or 'nothing'}); key arrays by input name")
            extra = [n for n in data if n not in graph.inputs]
            if extra:
                raise InputError(f"{p}: {unexpected_feed(graph, extra[0])}")
            arrays = {n: data[n] for n in graph.inputs}
        elif suffix == ".csv":
            if len(graph.inputs) != 1:
                raise InputError(f"{p}: CSV input needs a single-input model")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data": said below
                rows = np.atleast_2d(np.loadtxt(p, delimiter=",", dtype=np.float64))
            if rows.size == 0:
                raise InputError(f"{p}: holds no numbers; give one sample per row")
            arrays = {graph.inputs[0]: rows}
        else:
            raise InputError(f"{p}: unknown input format {suffix or '(none)'}; use .npy, .npz or .csv")
    except (ValueError, OSError) as exc:
        raise InputError(f"{p}: cannot read input ({exc})") from exc
    for name, arr in arrays.items():
        check_values(p, name, arr)
    return arrays


def unexpected_feed(graph: Graph, name: str) -> str:
    """Why a value named ``name`` cannot be fed: not an input, or an initializer (ONNX lets a graph
    input's initializer be overridden; Kelvin compiles every initializer into the circuit)."""
    if name in graph.constants or (name in graph.values and graph.producer(name) is None):  # folded in, or kept
        return (f"array {name!r} names an initializer, which Kelvin compiles into the circuit as a fixed value "
                f"(a weight), not an input it drives; the model's inputs are {', '.join(map(repr, graph.inputs))}")
    return f"array {name!r} is not an input of the model (its inputs: {', '.join(map(repr, graph.inputs))})"


def check_values(path: Path, name: str, arr: np.ndarray) -> None:
    """Analog signals are finite real numbers: reject complex, non-numeric and NaN/Inf inputs."""
    if arr.dtype.kind == "c":
        raise InputError(f"{path}: input {name!r} is complex ({arr.dtype}); analog signals are real, "
                         "give real values")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{path}: input {name!r} has dtype {arr.dtype}; give numbers")
    bad = ~np.isfinite(arr)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{path}: input {name!r} has a non-finite value ({arr[index]}) at index "
                         f"{list(index)}; replace NaN/Inf before running")


def reshape_rows(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Let a flat (samples, features) array feed a (N, C, H, W) input, as CSV rows do; then every
    input must have the model's rank and static dims (one clear error, whichever engine runs it)."""
    out = {}
    for name, arr in feeds.items():
        shape = graph.shape(name)
        if shape and arr.ndim == 2 and len(shape) > 2 and all(isinstance(d, int) for d in shape[1:]):
            per = int(np.prod(shape[1:]))
            if arr.shape[1] == per:
                arr = arr.reshape(arr.shape[0], *shape[1:])
        if shape is not None and (arr.ndim != len(shape) or any(
                isinstance(want, int) and want != got for want, got in zip(shape, arr.shape))):
            want_text = "[" + ", ".join(str(d) if isinstance(d, int) else "?" for d in shape) + "]"
            raise InputError(f"input {name!r}: expected shape {want_text}, got {list(arr.shape)}")
        out[name] = arr
    return out
