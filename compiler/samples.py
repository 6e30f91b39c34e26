"""Does a graph compute each sample of a batch alone? Checked by running it, op-agnostically.

A netlist computes one sample, and the engine's commands cut a batch into chunks (``kelvin run
--batch-size``, training's mini-batches). Both are only right if no sample's outputs depend on
the other samples of its batch. Most models satisfy this, but an ONNX graph may mix the batch
axis: Softmax or LayerNormalization over axis 0, a ReduceSum over it, ``x·xᵀ``, a Transpose that
moves it, a Concat or Slice along it. No list of op rules covers every such case, so the check is
empirical: evaluate the graph (the ops' own kernels, as `compiler.passes.shapes` does) on a batch
of two random samples and on each sample alone. If a float output's batch result is not the two
single results stacked, the graph mixes its samples, and the first float tensor in topological order
that is not names the node. Integer tensors (Shape and
index arithmetic) are not judged; a tensor with no batch axis (a constant) must be the same
whichever batch computed it.
"""

from __future__ import annotations

import numpy as np

from compiler.evaluate import evaluate_graph
from compiler.ir import Graph
from compiler.passes.shapes import _batch_symbol

_BATCH = 2
_RTOL, _ATOL = 1e-4, 1e-6  # float32 kernels may sum in another order for another batch size


def _stacks(batch: np.ndarray, singles: list[np.ndarray]) -> bool:
    """``batch`` is the singles (each with a batch axis of 1) stacked, or, with no batch axis, each of them."""
    if all(s.shape == batch.shape and np.array_equal(s, batch, equal_nan=True) for s in singles):
        return True
    if batch.ndim == 0 or batch.shape[0] != len(singles) or any(s.shape != (1, *batch.shape[1:]) for s in singles):
        return False
    scale = float(np.nanmax(np.abs(np.where(np.isinf(batch), 0, batch)), initial=0.0))
    return bool(np.allclose(batch, np.concatenate(singles), rtol=_RTOL, atol=_ATOL * max(scale, 1.0), equal_nan=True))


def sample_mixing(g: Graph) -> str | None:
    """Why ``g``'s samples are not independent (naming the first node that mixes them), or None if
    they are or the check cannot tell (`samples_verdict`)."""
    return samples_verdict(g)[1]


def samples_verdict(g: Graph) -> tuple[bool | None, str | None]:
    """(True, None): each sample computed alone, checked; (False, reason): mixed, naming the node;
    (None, None): the check cannot tell, for no symbolic batch axis shared by every input on axis 0
    (a fixed-size input is one sample, or the model states its own batch) or a graph that does not
    run on random inputs. Cutting a batch into chunks is safe only on True."""
    ok, batch = _batch_symbol(g)
    if not ok or batch is None:
        return None, None
    rng = np.random.default_rng(0)
    feeds = {}
    for name in g.inputs:
        info = g.info(name)
        shape = info.shape  # type: ignore[union-attr]
        if not shape or shape[0] != batch or batch in shape[1:]:
            return None, None
        dims = (_BATCH, *shape[1:])
        kind = info.dtype.kind  # type: ignore[union-attr]
        feeds[name] = rng.uniform(0.0, 1.0, dims).astype(info.dtype) if kind == "f" else np.zeros(dims, info.dtype)  # type: ignore[union-attr]
    whole = evaluate_graph(g, feeds)
    singles = [evaluate_graph(g, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(_BATCH)]
    if whole is None or any(s is None for s in singles):
        return None, None

    def mixed(t: str) -> bool:
        return whole[t].dtype.kind == "f" and not _stacks(whole[t], [s[t] for s in singles])  # type: ignore[index]

    if not any(mixed(t) for t in g.outputs):  # the verdict is the outputs' (a Transpose may move the batch and back)
        return True, None
    for node in g.topo():
        for t in node.outputs:
            if t and mixed(t):
                return False, (f"node {node.name!r} ({node.kind}) mixes the samples of a batch: its output {t!r} for "
                               f"one sample depends on the others (shape {list(whole[t].shape)} for a batch of "
                               f"{_BATCH})")
    return False, "the model mixes the samples of a batch"
