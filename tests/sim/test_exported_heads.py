"""Patterns PyTorch exporters write, trained end to end: the trained file must match onnxruntime.

- a LogSoftmax head (nn.LogSoftmax / F.log_softmax), which runs in the digital periphery;
- a freshly initialized BatchNorm1d, whose equal tensors torch writes once and forwards through
  Identity nodes (weight = running_var = 1, bias = running_mean = 0);
- GELU and LayerNorm, whose backward passes the engine needs to train them.
The oracle is onnxruntime on the exported model (and the training itself must learn something).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from sim.train.commands import evaluate_file, train_file
from sim.train.loop import TrainConfig

rng = np.random.default_rng(7)


def _data(path):
    """A 3-class problem on 4 features in [0, 1] (two separable blobs and a third between)."""
    centers = np.array([[0.2, 0.2, 0.8, 0.5], [0.8, 0.7, 0.2, 0.5], [0.5, 0.9, 0.9, 0.1]])
    y = rng.integers(0, 3, 300)
    x = np.clip(centers[y] + 0.08 * rng.standard_normal((300, 4)), 0, 1).astype(np.float32)
    np.savez(path, x_train=x[:240], y_train=y[:240], x_test=x[240:], y_test=y[240:])
    return x[240:]


def _model(middle, extra_inits=(), head=None, opset=17):
    """Gemm(4→8) → middle nodes (from "h" to "m") → Gemm(8→3) → optional head."""
    inits = [numpy_helper.from_array(rng.normal(0, 0.6, (8, 4)).astype(np.float32), "w1"),
             numpy_helper.from_array(np.zeros(8, np.float32), "b1"),
             numpy_helper.from_array(rng.normal(0, 0.6, (3, 8)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.zeros(3, np.float32), "b2"), *extra_inits]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"), *middle,
             helper.make_node("Gemm", ["m", "w2", "b2"], ["z" if head else "y"], transB=1, name="fc2")]
    if head:
        nodes.append(helper.make_node(head, ["z"], ["y"], axis=1, name="head"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _bn_identity():
    ones, zeros = np.ones(8, np.float32), np.zeros(8, np.float32)
    middle = [helper.make_node("Identity", ["bn.weight"], ["bn.running_var"]),
              helper.make_node("Identity", ["bn.bias"], ["bn.running_mean"]),
              helper.make_node("BatchNormalization", ["h", "bn.weight", "bn.bias", "bn.running_mean",
                                                      "bn.running_var"], ["hb"], name="bn"),
              helper.make_node("Relu", ["hb"], ["m"])]
    return _model(middle, [numpy_helper.from_array(ones, "bn.weight"), numpy_helper.from_array(zeros, "bn.bias")])


CASES = {
    "logsoftmax_head": lambda: _model([helper.make_node("Relu", ["h"], ["m"])], head="LogSoftmax"),
    "logsoftmax_opset11": lambda: _model([helper.make_node("Relu", ["h"], ["m"])], head="LogSoftmax", opset=11),
    "batchnorm_identity_inits": _bn_identity,
    "gelu": lambda: _model([helper.make_node("Gelu", ["h"], ["m"])], opset=20),
    "layernorm": lambda: _model([helper.make_node("LayerNormalization", ["h", "g"], ["n"], axis=-1),
                                 helper.make_node("Relu", ["n"], ["m"])],
                                [numpy_helper.from_array(np.ones(8, np.float32), "g")]),
    "elu": lambda: _model([helper.make_node("Elu", ["h"], ["m"])]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_exported_pattern_trains_and_matches_onnxruntime(case, tmp_path):
    x_test = _data(tmp_path / "d.npz")
    src = tmp_path / "m.onnx"
    onnx.save(CASES[case](), src)
    before = evaluate_file(str(src), str(tmp_path / "d.npz"), progress=False)["test_accuracy"]
    out = tmp_path / "t.onnx"
    doc = train_file(str(src), str(tmp_path / "d.npz"), str(out), config=TrainConfig(epochs=15, lr=0.05, seed=0),
                     progress=False)
    assert doc["test_accuracy"] >= max(0.9, before), (before, doc["test_accuracy"])
    trained = onnx.load(out)
    trained.ir_version = 8
    onnx.save(trained, tmp_path / "t8.onnx")
    from sim.backend import prepare
    ours = prepare(str(out)).run([x_test])[0]
    np.testing.assert_allclose(ours, _ort(tmp_path / "t8.onnx", x_test), rtol=1e-4, atol=1e-5)
