"""`compiler.samples.sample_mixing`: which graphs compute each sample alone, checked against
onnxruntime's own answer on the same question (a batch result equal to its samples run alone)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from compiler.onnx_import import import_model
from compiler.samples import sample_mixing


def _model(nodes, inits=(), out=("N", 4)):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out))], list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _ints(name, values):
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


N = helper.make_node
CASES = {
    "softmax axis 1": ([N("Softmax", ["x"], ["y"], axis=1)], ()),
    "softmax axis 0": ([N("Softmax", ["x"], ["y"], axis=0)], ()),
    "reduce over batch": ([N("ReduceSum", ["x", "ax"], ["y"], keepdims=1)], (_ints("ax", [0]),), (1, 4)),
    "reduce over features": ([N("ReduceSum", ["x", "ax"], ["y"], keepdims=1)], (_ints("ax", [1]),), ("N", 1)),
    "x times its transpose": ([N("Transpose", ["x"], ["t"]), N("MatMul", ["x", "t"], ["y"])], (), ("N", "N")),
    "transpose and back": ([N("Transpose", ["x"], ["t"]), N("Relu", ["t"], ["r"]), N("Transpose", ["r"], ["y"])], ()),
    "concat on the batch": ([N("Concat", ["x", "x"], ["y"], axis=0)], (), ("M", 4)),
    "concat on features": ([N("Concat", ["x", "x"], ["y"], axis=1)], (), ("N", 8)),
    "flatten everything": ([N("Flatten", ["x"], ["y"], axis=0)], (), (1, "M")),
    "slice the batch": ([N("Slice", ["x", "s", "e", "a"], ["y"])], (_ints("s", [0]), _ints("e", [1]), _ints("a", [0])),
                        (1, 4)),
}


def _onnxruntime_mixes(m) -> bool:
    sess = ort.InferenceSession(m.SerializeToString())
    x = np.random.default_rng(1).uniform(0, 1, (3, 4)).astype(np.float32)
    whole = sess.run(None, {"x": x})[0]
    alone = [sess.run(None, {"x": x[i:i + 1]})[0] for i in range(3)]
    return not (whole.shape[:1] == (3,) and all(a.shape == (1, *whole.shape[1:]) for a in alone)
                and np.allclose(whole, np.concatenate(alone), rtol=1e-5, atol=1e-6))


@pytest.mark.parametrize("case", sorted(CASES))
def test_verdict_agrees_with_onnxruntime(case):
    m = _model(*CASES[case])
    reason = sample_mixing(import_model(m))
    assert (reason is not None) == _onnxruntime_mixes(m), reason
    if reason is not None:
        assert "mixes the samples of a batch" in reason and reason.startswith("node '"), reason


def test_digits_mlp_is_per_sample_on_every_target():
    from compiler.pipeline import compile_model
    for target in ("opamp", "current", "crossbar"):
        assert sample_mixing(compile_model("models/examples/digits_mlp.onnx", target).graph) is None


def test_fixed_batch_inputs_are_not_judged():
    g = helper.make_graph([N("Softmax", ["x"], ["y"], axis=0)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    assert sample_mixing(import_model(m)) is None  # the model states its batch: nothing to cut
    onnx.checker.check_model(m)


def test_verdict_is_checked_true_only_when_the_probe_ran():
    from compiler.samples import samples_verdict
    assert samples_verdict(import_model(_model(*CASES["softmax axis 1"]))) == (True, None)
    assert samples_verdict(import_model(_model(*CASES["softmax axis 0"])))[0] is False
    # a LayerNormalization over axis 0 whose scale is shaped for 5 samples: no batch of 2 runs, so no verdict
    ln = _model([N("LayerNormalization", ["x", "s", "b"], ["y"], axis=0)],
                (onnx.numpy_helper.from_array(np.ones((5, 4), np.float32), "s"),
                 onnx.numpy_helper.from_array(np.zeros((5, 4), np.float32), "b")))
    assert samples_verdict(import_model(ln)) == (None, None)
