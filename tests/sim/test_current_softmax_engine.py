"""The current-mode softmax in the engine: same forward, gradients and training step as the op-amp softmax,
and a chip instance's softmax (its draws folded into gate slopes, pair offsets, output gains) against ngspice."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.pipeline import compile_model
from sim.chip import ChipInstance
from sim.engine.kernels import kernel_for
from sim.engine.program import Program


def softmax_mlp():
    """Gemm(4→5) → ReLU → Gemm(5→3) → Softmax."""
    rng = np.random.default_rng(4)
    w1, w2 = rng.normal(0, 0.7, (5, 4)).astype(np.float32), rng.normal(0, 0.7, (3, 5)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["z"], transB=1),
             helper.make_node("Softmax", ["z"], ["y"], name="head", axis=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
                               numpy_helper.from_array(rng.normal(0, 0.1, 5).astype(np.float32), "b1"),
                               numpy_helper.from_array(rng.normal(0, 0.1, 3).astype(np.float32), "b2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _step(target: str, x: np.ndarray, labels: np.ndarray):
    """Forward, the NLL loss's gradients (inputs and parameters, by shape), on ``target``."""
    compiled = compile_model(softmax_mlp(), target)
    prog = Program(compiled.graph, dtype=np.float64)
    out, tape = prog.forward({"x": x}, train=True)
    y = out["y"]
    g = np.zeros_like(y)
    g[np.arange(len(labels)), labels] = -1.0 / y[np.arange(len(labels)), labels]
    grads = prog.backward(tape, {"y": g}, input_grads=True)
    params = sorted((v.shape, np.round(v.ravel(), 12).tolist()) for k, v in grads.items() if k != "input:x")
    return compiled, y, grads["input:x"], params


def test_current_softmax_computes_and_trains_like_the_opamp_softmax():
    rng = np.random.default_rng(0)
    x, labels = rng.uniform(0, 1, (6, 4)), rng.integers(0, 3, 6)
    cur, y_c, gx_c, gp_c = _step("current", x, labels)
    opa, y_o, gx_o, gp_o = _step("opamp", x, labels)
    assert "current.softmax" in {n.kind for n in cur.graph.nodes}
    assert "opamp.softmax" in {n.kind for n in opa.graph.nodes}
    np.testing.assert_allclose(y_c, y_o, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx_c, gx_o, rtol=1e-9, atol=1e-12)
    assert [s for s, _ in gp_c] == [s for s, _ in gp_o]
    for (_, a), (_, b) in zip(gp_c, gp_o):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_chip_softmax_gradient_matches_finite_differences():
    """The chip's softmax (slopes, offsets, gains of one draw) differentiates like any kernel."""
    compiled = compile_model(softmax_mlp(), "current")
    prim = ChipInstance.draw(compiled, 7).softmaxes["head"]
    assert not np.allclose(prim.shift, 0.0) and not np.allclose(prim.a_neg, 1.0)
    kernel = kernel_for(prim)
    rng = np.random.default_rng(3)
    x, r = rng.uniform(0, 2, (4, 6)), rng.standard_normal((4, 3))
    _, saved = kernel.forward(prim, {}, [x], True)
    (gx,), _ = kernel.backward(prim, {}, saved, r)
    eps = 1e-6
    for i in range(x.size):
        up, dn = x.copy(), x.copy()
        up.flat[i] += eps
        dn.flat[i] -= eps
        num = np.sum((kernel.forward(prim, {}, [up], False)[0] - kernel.forward(prim, {}, [dn], False)[0]) * r)
        assert num / (2 * eps) == pytest.approx(gx.flat[i], rel=1e-6, abs=1e-9)


@pytest.mark.ngspice
def test_chip_model_tracks_the_seeded_netlist():
    """Chip seed 7 in ngspice against the engine's chip model and the nominal engine, 4 inputs.

    Measured once on 8 inputs: chip model 0.55 % FS max, 0.35 % FS RMS; nominal engine 3.9 % / 1.9 %."""
    from sim.engine import execute
    from sim.spice_commands import run_network_spice
    from sim.validate import realized_graph

    compiled = compile_model(softmax_mlp(), "current")
    x = np.random.default_rng(1).uniform(0, 1, (4, 4)).astype(np.float32)
    spice = run_network_spice(compiled, {"x": x}, scale=10e-9, workers=2, progress=False, chip_seed=7)["y"]
    chip = execute(ChipInstance.draw(compiled, 7, 10e-9).engine_graph(), {"x": x})["y"]
    nominal = execute(realized_graph(compiled), {"x": x})["y"]
    assert np.max(np.abs(spice - chip)) < 0.01
    assert np.max(np.abs(spice - chip)) < 0.5 * np.max(np.abs(spice - nominal))


def test_cross_entropy_on_a_current_softmax_head_is_its_nll():
    from sim.train.commands import loss_for

    assert loss_for(compile_model(softmax_mlp(), "current"), "ce") == "nll"


def test_training_for_a_chip_runs_through_its_softmax():
    """`kelvin train --hardware chip`'s program: the chip's softmax passes gradients to every bank."""
    from sim.engine.prepare import HardwareOptions, build_program

    compiled = compile_model(softmax_mlp(), "current")
    prog = build_program(compiled, HardwareOptions(modes=("chip",), chip_seed=7), dtype=np.float64, trainable=True)
    out, tape = prog.forward({"x": np.random.default_rng(0).uniform(0, 1, (5, 4))}, train=True)
    grads = prog.backward(tape, {"y": np.eye(3)[[0, 1, 2, 0, 1]]})
    assert set(grads) == set(prog.params)
    assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in grads.values())
