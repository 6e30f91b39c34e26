"""Fill in tensor shapes that ONNX shape inference left unknown, by running the graph twice.

Exporters build Reshape targets from Shape→Gather→Concat subgraphs; ONNX inference cannot see
through them when the batch is symbolic, so every tensor downstream loses its shape, and the
passes that need one (softmax axes, reductions, matmul inner size) skip those nodes. After
constant folding the targets are constants, so the shapes are fixed: running the graph on
two batch sizes shows which dimensions are static and which follow the batch.
"""

from __future__ import annotations

import numpy as np

from compiler.evaluate import evaluate_graph
from compiler.ir import Dim, Graph, TensorInfo

_PROBE_BATCHES = (2, 3)


def _known(shape: tuple[Dim, ...] | None, batch: str | None) -> bool:
    return shape is not None and all(isinstance(d, int) or d == batch for d in shape)


def _probe(g: Graph, batch: str | None, size: int) -> dict[str, tuple[tuple[int, ...], np.dtype]] | None:
    """Every computed tensor's (shape, dtype) on a zero batch of ``size``; None when the graph cannot run."""
    feeds = {}
    for name in g.inputs:
        info = g.info(name)
        dims = [size if d == batch else d for d in info.shape]  # type: ignore[union-attr]
        feeds[name] = np.zeros(dims, dtype=info.dtype)  # type: ignore[union-attr]
    env = evaluate_graph(g, feeds)
    if env is None:
        return None
    return {t: (env[t].shape, env[t].dtype) for node in g.nodes for t in node.outputs if t}


class InferShapes:
    """Record the shape of every tensor whose shape is unknown (see module docstring)."""

    name = "infer-shapes"

    def run(self, g: Graph) -> bool:
        ok, batch = _batch_symbol(g)
        unknown = [t for n in g.nodes for t in n.outputs if t and not _known(g.shape(t), batch)]
        if not ok or not unknown:
            return False
        runs = [_probe(g, batch, size) for size in (_PROBE_BATCHES if batch else _PROBE_BATCHES[:1])]
        if any(r is None for r in runs):
            return False
        small, large = runs[0], runs[-1]
        changed = False
        for t in unknown:
            if t not in small or len(small[t][0]) != len(large[t][0]):
                continue
            dims: list[Dim] = []
            for a, b in zip(small[t][0], large[t][0]):
                if a == b:
                    dims.append(int(a))
                elif (a, b) == _PROBE_BATCHES:
                    dims.append(batch)
                else:
                    dims.append(None)
            info = g.info(t)
            if info is not None and info.shape == tuple(dims):
                continue
            g.values[t] = TensorInfo(t, tuple(dims), info.dtype if info is not None else small[t][1])
            changed = True
        return changed


def _batch_symbol(g: Graph) -> tuple[bool, str | None]:
    """(probe-able, the one symbolic dimension the graph inputs share or None if all static).

    Not probe-able when an input has an unknown rank or dimension, or several symbols.
    """
    symbols = set()
    for name in g.inputs:
        shape = g.shape(name)
        if shape is None or any(d is None for d in shape):
            return False, None
        symbols |= {d for d in shape if isinstance(d, str)}
    return len(symbols) <= 1, (symbols.pop() if len(symbols) == 1 else None)
