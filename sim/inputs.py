"""Input files for a model: .npy, .npz (arrays keyed by input name) or .csv (one sample per row).

Shared by ``kelvin run``, ``validate --input`` and ``stimulus``; kept apart from the CLI helpers so
the SPICE side can read inputs without importing the command layer.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from circuits.errors import InputError
from compiler.ir import Graph


def load_inputs(path: str | os.PathLike[str], graph: Graph) -> dict[str, np.ndarray]:
    """Read input arrays for ``graph`` from .npy, .npz (by input name) or .csv (one sample per row)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such input file")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            arrays = {graph.inputs[0]: np.load(p, allow_pickle=False)} if len(graph.inputs) == 1 else None
            if arrays is None:
                raise InputError(f"{p}: the model has {len(graph.inputs)} inputs "
                                 f"({', '.join(graph.inputs)}); give an .npz keyed by those names")
        elif suffix == ".npz":
            with np.load(p, allow_pickle=False) as data:
                if len(graph.inputs) == 1 and graph.inputs[0] not in data and len(data.files) == 1:
                    arrays = {graph.inputs[0]: data[data.files[0]]}
                else:
                    missing = [n for n in graph.inputs if n not in data]
                    if missing:
                        raise InputError(f"{p}: missing array(s) for input(s) {', '.join(missing)}")
                    arrays = {n: data[n] for n in graph.inputs}
        elif suffix == ".csv":
            if len(graph.inputs) != 1:
                raise InputError(f"{p}: CSV input needs a single-input model")
            arrays = {graph.inputs[0]: np.atleast_2d(np.loadtxt(p, delimiter=",", dtype=np.float64))}
        else:
            raise InputError(f"{p}: unknown input format {suffix or '(none)'}; use .npy, .npz or .csv")
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{p}: cannot read input ({exc})") from exc
    return arrays


def reshape_rows(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Let a flat (samples, features) array feed a (N, C, H, W) input, as CSV rows do."""
    out = {}
    for name, arr in feeds.items():
        shape = graph.shape(name)
        if shape and arr.ndim == 2 and len(shape) > 2 and all(isinstance(d, int) for d in shape[1:]):
            per = int(np.prod(shape[1:]))
            if arr.shape[1] == per:
                arr = arr.reshape(arr.shape[0], *shape[1:])
        out[name] = arr
    return out
