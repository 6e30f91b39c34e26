"""Program: the inference fast path for convolutions, named parameters, buffer freeing."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from compiler.pipeline import compile_model
from sim.engine.program import TAPS_FIRST_MIN_CHANNELS, Program


def _conv_model(c_in: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((TAPS_FIRST_MIN_CHANNELS + 8, c_in, 3, 3)).astype(np.float32) * 0.2
    w2 = rng.standard_normal((8, TAPS_FIRST_MIN_CHANNELS + 8, 3, 3)).astype(np.float32) * 0.2
    nodes = [helper.make_node("Conv", ["x", "w1"], ["h"], pads=[1, 1, 1, 1], strides=[2, 1]),
             helper.make_node("Relu", ["h"], ["h2"]),
             helper.make_node("MaxPool", ["h2"], ["r"], kernel_shape=[2, 2], pads=[0, 0, 1, 1]),
             helper.make_node("Conv", ["r", "w2"], ["y"], pads=[0, 1, 2, 1], dilations=[1, 2])]
    g = helper.make_graph(nodes, "c", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c_in, 9, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [onnx.numpy_helper.from_array(w1, "w1"), onnx.numpy_helper.from_array(w2, "w2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return onnx.shape_inference.infer_shapes(m)


def test_taps_first_convolution_equals_onnxruntime_and_the_training_path():
    m = _conv_model(TAPS_FIRST_MIN_CHANNELS + 4)
    c = compile_model(m, "opamp")
    prog = Program(c.graph)
    assert any(s.taps_first is not None for s in prog.steps) and any(s.taps_view for s in prog.steps)
    x = np.random.default_rng(1).standard_normal((3, TAPS_FIRST_MIN_CHANNELS + 4, 9, 10)).astype(np.float32)
    fast = prog.run({"x": x})["y"]
    slow = prog.forward({"x": x}, train=True)[0]["y"]
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    scale = np.abs(ref).max()
    assert np.abs(fast - ref).max() <= 1e-5 * scale
    assert np.abs(fast - slow).max() <= 1e-5 * scale


def test_sibling_convolutions_share_the_scratch_buffer_safely():
    """Two convolutions read one tensor: each gather runs just before its bank, so the one scratch buffer
    they share never holds a gather its bank has not read yet (batch sizes change between runs)."""
    c_in, rng = TAPS_FIRST_MIN_CHANNELS + 4, np.random.default_rng(0)
    w1 = rng.standard_normal((12, c_in, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((6, c_in, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["y1"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "w2"], ["y2"], strides=[2, 2])]
    g = helper.make_graph(nodes, "siblings", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c_in, 8, 8])],
                          [helper.make_tensor_value_info("y1", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("y2", TensorProto.FLOAT, None)],
                          [onnx.numpy_helper.from_array(w1, "w1"), onnx.numpy_helper.from_array(w2, "w2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    m = onnx.shape_inference.infer_shapes(m)
    prog = Program(compile_model(m, "opamp").graph)
    gathers = [s for s in prog.steps if s.taps_first is not None]
    assert len(gathers) == 2 and all(s.taps_first.index == s.index + 1 for s in gathers)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    for n in (4, 2, 5):
        x = rng.standard_normal((n, c_in, 8, 8)).astype(np.float32)
        got = prog.run({"x": x})
        for name, ref in zip(("y1", "y2"), sess.run(None, {"x": x})):
            assert np.abs(got[name] - ref).max() <= 1e-5 * np.abs(ref).max(), (n, name)


def test_named_parameters_round_trip_into_the_graph():
    c = compile_model("models/examples/digits_mlp.onnx", "opamp")
    prog = Program(c.graph)
    assert sorted(prog.params) == ["fc1.bias", "fc1.weights", "logits.bias", "logits.weights"]
    prog.params["fc1.bias"][:] = 0.5
    g = prog.graph_with_params()
    assert np.all(g.node("fc1").primitive.bias == 0.5)
    assert not np.all(c.graph.node("fc1").primitive.bias == 0.5)  # the original graph is untouched


def test_backward_refuses_a_missing_tape_and_misshapen_gradients():
    """backward(None, ...) was AttributeError 'entries'; a wrong-shape gradient broadcast silently."""
    import pytest

    from circuits.errors import InputError
    prog = Program(compile_model("models/examples/digits_mlp.onnx", "current").graph)
    outs, tape = prog.forward({"x": np.ones((2, 64), np.float32)}, train=True)
    out = prog.outputs[0]
    for tape_, grads, match in ((None, {out: np.ones((2, 10))}, "the tape of forward"),
                                (tape, None, "output gradients by name"),
                                (tape, {out: "abc"}, f"gradient of {out!r} is not an array"),
                                (tape, {out: np.ones((3, 10))}, r"shape \(3, 10\), its output \(2, 10\)")):
        with pytest.raises(InputError, match=match):
            prog.backward(tape_, grads)
    assert set(prog.backward(tape, {out: np.ones((2, 10))})) == set(prog.params)
