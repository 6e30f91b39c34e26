"""Losses with their gradients, on the network's output (batch first).

- ``ce``: mean softmax cross-entropy over the batch, L = −(1/B)·Σ log softmax(z)[y];
  ∂L/∂z = (softmax(z) − onehot(y))/B. The softmax is `circuits.ideal.softmax`.
- ``nll``: the same cross-entropy for a model whose output already is a distribution (it ends in
  Softmax, as many exported classifiers do): L = −(1/B)·Σ log p[y]; ∂L/∂p = −onehot(y)/(B·p[y]).
  `kelvin train` picks it for ``--loss ce`` when the model ends in Softmax.
- ``mse``: mean squared error over every element, L = mean((z − t)²); ∂L/∂z = 2(z − t)/size.
  With integer labels the target is the one-hot vector.
"""

from __future__ import annotations

import numpy as np

from circuits import ideal
from circuits.errors import InputError, ParameterError

LOSSES = ("ce", "nll", "mse")


def loss_and_grad(kind: str, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    z2 = z.reshape(len(z), -1)
    if kind == "ce":
        _check_labels(kind, z2, y)
        p = ideal.softmax(z2, (1,))
        rows = np.arange(len(y))
        picked = p[rows, y]
        loss = -float(np.log(np.maximum(picked, np.finfo(p.dtype).tiny)).sum()) / len(y)
        g = p
        g[rows, y] -= 1
        g *= g.dtype.type(1.0 / len(y))
        return loss, g.reshape(z.shape)
    if kind == "nll":
        _check_labels(kind, z2, y)
        rows = np.arange(len(y))
        picked = np.maximum(z2[rows, y], np.finfo(z2.dtype).tiny)
        g = np.zeros_like(z2)
        g[rows, y] = -1.0 / (len(y) * picked)
        return -float(np.log(picked).sum()) / len(y), g.reshape(z.shape)
    if kind == "mse":
        t = _targets(y, z2)
        d = z2.astype(np.float64) - t
        return float(np.mean(d * d)), (2.0 * d / d.size).astype(z.dtype).reshape(z.shape)
    raise ParameterError(f"--loss: one of {', '.join(LOSSES)}, got {kind!r}")


def _check_labels(kind: str, z2: np.ndarray, y: np.ndarray) -> None:
    if y.dtype.kind not in "iu":
        raise ParameterError(f"--loss {'ce' if kind == 'nll' else kind} needs integer class labels; "
                             "use --loss mse for float targets")
    if y.size and int(y.max()) >= z2.shape[1]:
        raise InputError(f"label {int(y.max())} is out of range for a model with {z2.shape[1]} outputs")


def _targets(y: np.ndarray, z2: np.ndarray) -> np.ndarray:
    if y.dtype.kind in "iu":
        if y.size and int(y.max()) >= z2.shape[1]:
            raise InputError(f"label {int(y.max())} is out of range for a model with {z2.shape[1]} outputs")
        t = np.zeros(z2.shape)
        t[np.arange(len(y)), y] = 1.0
        return t
    t = y.reshape(len(y), -1).astype(np.float64)
    if t.shape != z2.shape:
        raise InputError(f"targets have shape {list(y.shape)} per batch, the model outputs {list(z2.shape)}")
    return t


def accuracy(z: np.ndarray, y: np.ndarray) -> float | None:
    """Top-1 accuracy for integer labels; None for regression targets."""
    if y.dtype.kind not in "iu":
        return None
    return int(np.count_nonzero(np.argmax(z.reshape(len(z), -1), axis=1) == y)) / max(len(y), 1)
