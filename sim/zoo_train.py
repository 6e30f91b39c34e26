"""Train the 64-16-10 digits MLP with plain NumPy (Adam, softmax cross-entropy), offline.

The data is scikit-learn's bundled ``load_digits`` scaled by 1/16 into [0, 1], split 80/20
stratified with the seed; the same seed gives the same weights, model bytes and accuracy.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from circuits.files import ensure_dir, write_bytes
from sim.zoo_builder import GraphBuilder

HIDDEN = 16
EPOCHS = 60
BATCH = 32
LEARNING_RATE = 3e-3


@dataclass(frozen=True, slots=True)
class DigitsSplit:
    """The stratified 80/20 split of ``load_digits``; X is float32 in [0, 1], y int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split(seed: int = 0) -> DigitsSplit:
    """Load scikit-learn's bundled digits (no download) and split them 80/20, stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    return DigitsSplit(x_tr, y_tr, x_te, y_te)


def _forward(params: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hidden ReLU activations and logits of the two-layer net (weights stored [out, in])."""
    w1, b1, w2, b2 = params
    h = np.maximum(x @ w1.T + b1, 0.0)
    return h, h @ w2.T + b2


def _gradients(params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Gradients of the mean softmax cross-entropy with respect to (w1, b1, w2, b2)."""
    w1, _, w2, _ = params
    h, logits = _forward(params, x)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    d_logits = p / len(y)
    d_h = (d_logits @ w2) * (h > 0)
    return [d_h.T @ x, d_h.sum(axis=0), d_logits.T @ h, d_logits.sum(axis=0)]


def _fit(split: DigitsSplit, rng: np.random.Generator) -> list[np.ndarray]:
    """Minibatch Adam on the training split; returns float64 (w1, b1, w2, b2)."""
    n_in, n_out = split.x_train.shape[1], 10
    params = [rng.normal(0.0, np.sqrt(2.0 / n_in), (HIDDEN, n_in)), np.zeros(HIDDEN),
              rng.normal(0.0, np.sqrt(1.0 / HIDDEN), (n_out, HIDDEN)), np.zeros(n_out)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, eps, step = 0.9, 0.999, 1e-8, 0
    x_all, y_all = split.x_train.astype(np.float64), split.y_train
    for _ in range(EPOCHS):
        order = rng.permutation(len(y_all))
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            step += 1
            for p, g, mi, vi in zip(params, _gradients(params, x_all[idx], y_all[idx]), m, v):
                mi *= beta1
                mi += (1 - beta1) * g
                vi *= beta2
                vi += (1 - beta2) * g * g
                m_hat, v_hat = mi / (1 - beta1**step), vi / (1 - beta2**step)
                p -= LEARNING_RATE * m_hat / (np.sqrt(v_hat) + eps)
    return params


def train_digits_mlp(seed: int = 0) -> tuple[onnx.ModelProto, float]:
    """Train the 64-16-10 digits MLP; return its ONNX model and float32 test accuracy."""
    split = load_digits_split(seed)
    params = [p.astype(np.float32) for p in _fit(split, np.random.default_rng(seed))]
    logits = _forward(params, split.x_test)[1]
    accuracy = float(np.mean(np.argmax(logits, axis=1) == split.y_test))
    g = GraphBuilder("digits_mlp")
    h = g.node("Relu", [g.node("Gemm", ["x", g.param("fc1.weight", params[0]),
                                        g.param("fc1.bias", params[1])], "fc1", transB=1)], "relu1")
    g.node("Gemm", [h, g.param("fc2.weight", params[2]), g.param("fc2.bias", params[3])],
           "logits", transB=1)
    doc = (f"64-16-10 MLP (Gemm+Relu, Gemm) trained on sklearn load_digits, inputs X/16 in [0,1]; "
           f"seed {seed}; test accuracy {accuracy:.4f} on the stratified 20% split")
    model = g.build(("x", ["N", 64]), ("logits", ["N", 10]), doc=doc)
    helper.set_model_props(model, {"test_accuracy": repr(accuracy), "seed": str(seed),
                                   "dataset": "sklearn.datasets.load_digits, X/16",
                                   "split": "train_test_split(test_size=0.2, stratify=y, "
                                            f"random_state={seed})"})
    return model, accuracy


def write_digits_examples(out_dir: Path, seed: int = 0) -> float:
    """Write ``digits_mlp.onnx`` and ``digits_test.npz`` into ``out_dir``; return the accuracy."""
    model, accuracy = train_digits_mlp(seed)
    split = load_digits_split(seed)
    ensure_dir(out_dir)
    write_bytes(out_dir / "digits_mlp.onnx", model.SerializeToString(deterministic=True))
    buf = io.BytesIO()  # numpy's npz entries carry a fixed 1980 timestamp: same arrays, same bytes
    np.savez_compressed(buf, X=split.x_test.astype(np.float32), y=split.y_test.astype(np.int64))
    write_bytes(out_dir / "digits_test.npz", buf.getvalue())
    return accuracy
