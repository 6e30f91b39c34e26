"""ONNX import: errors name the problem; opsets, symbolic batch, defaults; property test vs onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from circuits.data import model_file
from circuits.errors import InputError, ModelError, UnsupportedError
from compiler.ir import OpNode
from compiler.onnx_import import import_model
from compiler.pipeline import compile_model
from sim import zoo
from tests.helpers import fvi, init, make_model, ort_run, rel_err, run_graph


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such model file"):
        import_model(tmp_path / "nope.onnx")


def test_not_onnx(tmp_path):
    p = tmp_path / "notes.onnx"
    p.write_text("this is not a model\n" * 20)
    with pytest.raises(ModelError, match="notes.onnx"):
        import_model(p)


def test_truncated(tmp_path):
    data = zoo.mlp().SerializeToString()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cut.onnx"):
        import_model(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    with pytest.raises(ModelError, match="empty.onnx"):
        import_model(p)


def test_unsupported_op_names_node_and_op():
    node = helper.make_node("Cos", ["x"], ["y"], name="my_cos")
    model = make_model([node], [fvi("x", [2])], [fvi("y", [2])])
    with pytest.raises(UnsupportedError, match=r"my_cos.*Cos is not supported"):
        import_model(model)


def test_integer_compute_rejected():
    node = helper.make_node("Add", ["x", "x"], ["y"], name="adder")
    vi = helper.make_tensor_value_info("x", onnx.TensorProto.INT32, [2])
    vo = helper.make_tensor_value_info("y", onnx.TensorProto.INT32, [2])
    with pytest.raises(UnsupportedError, match="adder.*int32"):
        import_model(make_model([node], [vi], [vo]))


def test_opset_too_old():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [fvi("x", [2])], [fvi("y", [2])], opset=7)
    with pytest.raises(UnsupportedError, match="opset 7"):
        import_model(model)


def test_attribute_defaults_come_from_schema():
    node = helper.make_node("LeakyRelu", ["x"], ["y"])
    g = import_model(make_model([node], [fvi("x", [2])], [fvi("y", [2])]))
    (n,) = g.nodes
    assert isinstance(n, OpNode) and n.attrs["alpha"] == pytest.approx(0.01)


def test_symbolic_batch_runs_any_batch():
    g = import_model(zoo.mlp())
    assert g.shape(g.inputs[0])[0] == "N"
    for batch in (1, 7):
        (y,) = run_graph(g, {"x": np.ones((batch, 64), np.float32)})
        assert y.shape == (batch, 10)


def test_initializer_inputs_are_constants():
    """Old model-zoo style: weights listed as graph inputs with initializers."""
    node = helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)
    model = make_model([node], [fvi("x", ["N", 3]), fvi("W", [2, 3]), fvi("b", [2])], [fvi("y", ["N", 2])],
                       [init("W", np.ones((2, 3), np.float32)), init("b", np.ones(2, np.float32))], opset=9)
    g = import_model(model)
    assert g.inputs == ["x"] and "W" in g.constants and "b" in g.constants


@pytest.mark.parametrize("opset", [8, 9, 11, 13, 17, 21])
def test_mlp_across_opsets(opset):
    rng = np.random.default_rng(opset)
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "W2", "b2"], ["z"], transB=1),
             helper.make_node("Softmax", ["z"], ["y"], axis=1)]
    inits = [init("W1", rng.standard_normal((5, 4)).astype(np.float32)), init("b1", np.zeros(5, np.float32)),
             init("W2", rng.standard_normal((3, 5)).astype(np.float32)), init("b2", np.ones(3, np.float32))]
    model = make_model(nodes, [fvi("x", ["N", 4])], [fvi("y", ["N", 3])], inits, opset=opset)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    compiled = compile_model(model, "opamp")
    (y,) = run_graph(compiled.graph, {"x": x})
    assert rel_err(y, ort_run(model, {"x": x})[0]) < 1e-5


@pytest.mark.parametrize("name", ["torch_cnn_legacy", "torch_cnn_legacy_nofold", "torch_cnn_dynamo",
                                  "torch_mlp_legacy", "torch_mlp_dynamo"])
@pytest.mark.parametrize("target", ["opamp", "current", "crossbar"])
def test_torch_exports_both_exporters(name, target):
    data = np.load(model_file("examples", f"{name}.io.npz"))
    compiled = compile_model(model_file("examples", f"{name}.onnx"), target)
    (y,) = run_graph(compiled.graph, {compiled.graph.inputs[0]: data["x"]})
    assert rel_err(y, data["y"]) < 1e-4


@settings(max_examples=25, deadline=None)
@given(
    channels=st.integers(1, 4),
    size=st.integers(5, 9),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 2),
    pad=st.integers(0, 1),
    pool=st.sampled_from(["MaxPool", "AveragePool", "GlobalAveragePool"]),
    act=st.sampled_from(["Relu", "Sigmoid", "Tanh", "LeakyRelu"]),
    hidden=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    target=st.sampled_from(["opamp", "current", "crossbar"]),
)
def test_random_cnn_matches_onnxruntime(channels, size, kernel, stride, pad, pool, act, hidden, seed, target):
    """Property: any small Conv→act→pool→Flatten→Gemm network compiles to the same function."""
    rng = np.random.default_rng(seed)
    out_ch = 2 * channels
    conv_out = (size + 2 * pad - kernel) // stride + 1
    pool_attrs = {} if pool == "GlobalAveragePool" else {"kernel_shape": [2, 2], "strides": [2, 2]}
    spatial = 1 if pool == "GlobalAveragePool" else conv_out // 2
    if spatial < 1:
        return
    flat = out_ch * spatial * spatial
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], kernel_shape=[kernel, kernel], strides=[stride, stride],
                         pads=[pad] * 4),
        helper.make_node(act, ["c"], ["a"]),
        helper.make_node(pool, ["a"], ["p"], **pool_attrs),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "W2", "B2"], ["y"], transB=1),
    ]
    inits = [init("W", rng.standard_normal((out_ch, channels, kernel, kernel)).astype(np.float32)),
             init("B", rng.standard_normal(out_ch).astype(np.float32)),
             init("W2", rng.standard_normal((hidden, flat)).astype(np.float32)),
             init("B2", rng.standard_normal(hidden).astype(np.float32))]
    model = make_model(nodes, [fvi("x", ["N", channels, size, size])], [fvi("y", ["N", hidden])], inits)
    x = rng.standard_normal((2, channels, size, size)).astype(np.float32)
    (y,) = run_graph(compile_model(model, target).graph, {"x": x})
    assert rel_err(y, ort_run(model, {"x": x})[0]) < 1e-4
