"""A small CNN with max pooling and a softmax head, whole in ngspice (issue 11).

Conv(2×3×3) → ReLU → MaxPool(2×2, stride 1) → Flatten → Gemm(8→3) → Softmax on 1×5×5 inputs:
on the op-amp target every block is a circuit (superdiode maxima, log-domain softmax), and the
netlist must match the engine within 2 % of full scale with argmax agreement ≥ 95 % on 20
inputs. On the current target the same trunk runs on Lazzaro winner-take-alls (or mirror averages
for AveragePool), and the softmax head on a differential-pair array fed by the signed Gemm's
soma pairs: measured once on 20 inputs, 1.03 % FS max and 0.48 % FS RMS from the engine (with
the realized 3-bit weights), argmax 20/20; the test runs 2 of them. A difference of two
rectified layers runs on a mirror junction.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.pipeline import compile_model
from sim.engine import execute
from sim.spice_commands import run_network_spice
from sim.validate import realized_graph

pytestmark = [pytest.mark.ngspice, pytest.mark.slow]


def small_cnn(head: str = "Softmax", pool: str = "MaxPool") -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.5, (2, 1, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, 2).astype(np.float32)
    w2 = rng.normal(0, 0.8, (3, 8)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node(pool, ["r"], ["p"], kernel_shape=[2, 2], strides=[1, 1]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["g"], transB=1),
             helper.make_node(head, ["g"], ["y"], **({"axis": 1} if head == "Softmax" else {}))]
    graph = helper.make_graph(
        nodes, "small_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"), numpy_helper.from_array(w2, "w2"),
         numpy_helper.from_array(np.zeros(3, np.float32), "b2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def two_branch_difference() -> onnx.ModelProto:
    """y = ReLU(W₁x) − ReLU(W₂x): the Sub becomes a current junction (gains +1, −1)."""
    rng = np.random.default_rng(0)
    w1, w2 = (rng.normal(0, 0.6, (3, 4)).astype(np.float32) for _ in range(2))
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["a"], transB=1), helper.make_node("Relu", ["a"], ["ra"]),
             helper.make_node("Gemm", ["x", "w2"], ["b"], transB=1), helper.make_node("Relu", ["b"], ["rb"]),
             helper.make_node("Sub", ["ra", "rb"], ["y"])]
    graph = helper.make_graph(nodes, "difference", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _inputs(n: int) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 1, (n, 1, 5, 5)).astype(np.float32)


def test_opamp_cnn_with_max_pool_and_softmax_matches_engine():
    compiled = compile_model(small_cnn(), "opamp")
    kinds = {n.kind for n in compiled.graph.nodes}
    assert {"opamp.max", "opamp.softmax"} <= kinds
    x = _inputs(20)
    ideal = execute(compiled.graph, {"x": x})["y"].astype(np.float64)
    spice = run_network_spice(compiled, {"x": x}, scale=0.25, workers=2, progress=False)["y"].astype(np.float64)
    err = np.abs(spice - ideal) / np.max(np.abs(ideal)) * 100
    assert err.max() < 2.0, err.max()
    assert np.mean(spice.argmax(1) == ideal.argmax(1)) >= 0.95


@pytest.mark.parametrize("model, kind, x", [
    (lambda: small_cnn("Relu"), "current.wta", lambda: _inputs(2)),
    (lambda: small_cnn("Relu", "AveragePool"), "current.average", lambda: _inputs(2)),
    (two_branch_difference, "current.junction", lambda: np.random.default_rng(2).uniform(0, 1, (3, 4)).astype(np.float32)),
], ids=["wta", "average", "junction"])
def test_current_networks_with_the_new_blocks_match_engine(model, kind, x):
    compiled = compile_model(model(), "current")
    assert kind in {n.kind for n in compiled.graph.nodes}
    x = x()
    ideal = execute(realized_graph(compiled), {"x": x})["y"].astype(np.float64)
    spice = run_network_spice(compiled, {"x": x}, scale=10e-9, workers=2, progress=False)["y"].astype(np.float64)
    err = np.abs(spice - ideal) / np.max(np.abs(ideal)) * 100
    assert err.max() < 3.0, err.max()


def test_current_cnn_with_max_pool_and_softmax_head_matches_engine():
    """Winner-take-all pooling and the differential-pair softmax head, whole, on the current target."""
    compiled = compile_model(small_cnn(), "current")
    assert {"current.wta", "current.softmax"} <= {n.kind for n in compiled.graph.nodes}
    x = _inputs(2)
    ideal = execute(realized_graph(compiled), {"x": x})["y"].astype(np.float64)
    spice = run_network_spice(compiled, {"x": x}, scale=10e-9, workers=2, progress=False)["y"].astype(np.float64)
    err = np.abs(spice - ideal) * 100  # % of the softmax's full scale, 1
    assert err.max() < 2.0, err.max()
    assert np.array_equal(spice.argmax(1), ideal.argmax(1))
    np.testing.assert_allclose(spice.sum(1), 1.0, atol=0.03)  # the tail current: one unit in all


def test_activation_matmul_network_matches_engine():
    """MatMul of two signal inputs (2×3 @ 3×2) on op-amp multipliers: within 1 % of FS (inner × 1²)."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])], "matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2, 3]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    compiled = compile_model(model, "opamp")
    assert [n.kind for n in compiled.graph.nodes] == ["opamp.matmul"]
    rng = np.random.default_rng(0)
    feeds = {"a": rng.uniform(-1, 1, (3, 2, 3)).astype(np.float32), "b": rng.uniform(-1, 1, (3, 3, 2)).astype(np.float32)}
    ideal = execute(compiled.graph, feeds)["y"].astype(np.float64)
    spice = run_network_spice(compiled, feeds, scale=0.25, workers=2, progress=False)["y"].astype(np.float64)
    assert np.max(np.abs(spice - ideal)) / 3.0 * 100 < 1.0
