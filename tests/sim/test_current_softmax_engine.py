"""The current-mode softmax in the engine: same forward, gradients and training step as the op-amp softmax,
and chip instances that refuse it by name (its mismatch lives in the netlist only)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from circuits.errors import UnsupportedError
from compiler.pipeline import compile_model
from sim.chip import ChipInstance
from sim.engine.program import Program


def softmax_mlp():
    """Gemm(4→5) → ReLU → Gemm(5→3) → Softmax."""
    rng = np.random.default_rng(4)
    w1, w2 = rng.normal(0, 0.7, (5, 4)).astype(np.float32), rng.normal(0, 0.7, (3, 5)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2"], ["z"], transB=1),
             helper.make_node("Softmax", ["z"], ["y"], name="head", axis=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
                               numpy_helper.from_array(rng.normal(0, 0.1, 5).astype(np.float32), "b1")])
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


def test_chip_instance_names_the_softmax_it_does_not_model():
    compiled = compile_model(softmax_mlp(), "current")
    with pytest.raises(UnsupportedError, match=r"node 'head' \(current\.softmax\).*ngspice"):
        ChipInstance.draw(compiled, 3)


def test_cross_entropy_on_a_current_softmax_head_is_its_nll():
    from sim.train.commands import loss_for

    assert loss_for(compile_model(softmax_mlp(), "current"), "ce") == "nll"
