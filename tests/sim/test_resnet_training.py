"""The small ResNet trains through the engine: its gradients (Add residual, 1×1 stride-2 shortcut,
GlobalAveragePool, with and without the noise map) against float64 central differences, and the
pipelined update's error path moves the weights by exactly one step in every hardware mode."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from compiler.pipeline import compile_model
from sim.engine.prepare import HardwareOptions, build_program
from sim.engine.program import Program
from sim.zoo import mlp, resnet_small

RTOL = 1e-6


def _ce(z: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    g = p.copy()
    g[np.arange(len(labels)), labels] -= 1
    return float(-np.log(p[np.arange(len(labels)), labels]).sum()), g


def test_resnet_small_matches_onnxruntime():
    model = resnet_small(seed=1)
    x = np.random.default_rng(0).uniform(0, 1, (5, 1, 8, 8)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    c = compile_model(model, "opamp")
    got = Program(c.graph).run({"x": x})["y"]
    assert np.max(np.abs(got - ref)) <= 1e-5 * np.max(np.abs(ref))


@pytest.mark.parametrize("modes", [("ideal",), ("noise",)])
def test_resnet_small_gradient_matches_finite_differences(modes):
    c = compile_model(resnet_small(seed=2), "opamp")
    prog = build_program(c, HardwareOptions(modes=modes, noise=1e-2), trainable=True, dtype=np.float64)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (3, 1, 8, 8))
    labels = rng.integers(0, 10, 3)

    def run(train: bool):  # the same noise draw on every call: the loss is a smooth function of the weights
        out, tape = prog.forward({"x": x}, rng=np.random.default_rng(7), train=train)
        value, g = _ce(out["y"], labels)
        return (value, prog.backward(tape, {"y": g})) if train else value

    _, grads = run(True)
    keys = sorted(prog.params)
    assert set(grads) == set(keys) and any(k.startswith("layer3.shortcut") for k in keys)
    pick = np.random.default_rng(1)
    for k in keys:
        a, g = prog.params[k], grads[k]
        for i in pick.choice(a.size, size=min(3, a.size), replace=False):
            old = a.flat[i]
            a.flat[i] = old + 1e-6
            up = run(False)
            a.flat[i] = old - 1e-6
            dn = run(False)
            a.flat[i] = old
            num = (up - dn) / 2e-6
            assert num == pytest.approx(g.flat[i], rel=RTOL, abs=RTOL * max(1.0, abs(num))), (k, i)


@pytest.mark.parametrize("modes", [("ideal",), ("noise",)])
def test_pipelined_error_uses_weights_moved_by_one_step(modes):
    """One Gemm y = W·x + b, update p ← p − η·g: the input gradient is gyᵀ·(W_eff − η·g_W), in ideal
    mode (no weight map: the stored array is the one the kernel read) as with a σ = 0 noise map."""
    c = compile_model(mlp((4, 3), seed=0), "opamp")
    prog = build_program(c, HardwareOptions(modes=modes, noise=0.0), trainable=True, dtype=np.float64)
    rng = np.random.default_rng(0)
    x, gy = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    (wkey,) = [k for k in prog.params if k.endswith("weights")]
    w0 = prog.params[wkey].copy()
    eta = 0.1
    _, tape = prog.forward({"x": x}, rng=np.random.default_rng(1), train=True)

    def update(key, g):
        prog.params[key] -= eta * g

    grads = prog.backward(tape, {"y": gy}, input_grads=True, update=update)
    gw = gy.T @ x
    np.testing.assert_allclose(prog.params[wkey], w0 - eta * gw, rtol=1e-12)
    np.testing.assert_allclose(grads["input:x"], gy @ (w0 - eta * gw), rtol=1e-12)


@pytest.mark.parametrize("target, modes", [("current", ("chip",)), ("current", ("quantized",))])
def test_pipelined_error_through_a_fixed_weight_map(target, modes):
    """A chip's map turns a signed row into its two somas (the mapped weights have another shape than the
    stored ones), which the pipelined update used to add its step to (a broadcast error): with a fixed map
    the error path now maps the moved weights again, so it equals a plain backward after the update."""
    c = compile_model(mlp((4, 3), seed=0), target)
    prog = build_program(c, HardwareOptions(modes=modes, chip_seed=1), trainable=True, dtype=np.float64)
    rng = np.random.default_rng(0)
    x, gy = rng.uniform(0.2, 1, size=(5, 4)), rng.normal(size=(5, 3))

    def update(key, g):
        prog.params[key] -= 1e-4 * g

    _, tape = prog.forward({"x": x}, train=True)
    piped = prog.backward(tape, {"y": gy}, input_grads=True, update=update)["input:x"]
    _, tape = prog.forward({"x": x}, train=True)  # the moved weights, read afresh
    plain = prog.backward(tape, {"y": gy}, input_grads=True)["input:x"]
    np.testing.assert_allclose(piped, plain, rtol=1e-9, atol=1e-12)
