"""The ops a transformer block needs, one node at a time, against onnxruntime.

Each case is a one-node model on random inputs. It is checked twice: as imported (the op's
NumPy kernel) and lowered to the opamp target (where x², ReduceSum, Softmax on any axis and
activation × activation MatMul become analog primitives), both within 1e-5 relative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper

from compiler.onnx_import import import_model
from compiler.pipeline import compile_model
from tests.helpers import init, make_model, ort_run, rel_err, run_graph

_R = np.random.default_rng(11)
X3 = _R.standard_normal((2, 4, 6)).astype(np.float32)
X4 = _R.standard_normal((2, 3, 4, 5)).astype(np.float32)
K4 = _R.standard_normal((2, 3, 5, 4)).astype(np.float32)
G6 = (_R.random(6) + 0.5).astype(np.float32)
B6 = _R.standard_normal(6).astype(np.float32)
G45 = (_R.random((4, 6)) + 0.5).astype(np.float32)


def _vi(name: str, value: np.ndarray) -> onnx.ValueInfoProto:
    shape = ["N", *value.shape[1:]] if value.ndim else []
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), shape)


# (op, opset, signal inputs, constant inputs, attributes, primitive kind expected on opamp or None)
CASES: list[tuple[str, int, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any], str | None]] = [
    ("LayerNormalization", 17, {"x": X3}, {"g": G6, "b": B6}, {}, None),
    ("LayerNormalization", 17, {"x": X3}, {"g": G45}, {"axis": 1, "epsilon": 1e-3}, None),
    ("Sqrt", 13, {"x": np.abs(X3) + 0.01}, {}, {}, None),
    ("Sqrt", 8, {"x": np.abs(X3)}, {}, {}, None),
    ("Pow", 13, {"x": X3}, {"e": np.array(2.0, np.float32)}, {}, "opamp.multiplier"),
    ("Pow", 15, {"x": np.abs(X3)}, {"e": np.array([0.5, 1.5, 3.0, -1.0, 2.0, 0.0], np.float32)}, {}, None),
    ("Pow", 8, {"x": np.abs(X3) + 0.1, "e": X3}, {}, {}, None),
    ("ReduceSum", 13, {"x": X4}, {"axes": np.array([-1, 2], np.int64)}, {"keepdims": 0}, "opamp.average"),
    ("ReduceSum", 11, {"x": X4}, {}, {"axes": [1]}, "opamp.average"),
    ("ReduceSum", 13, {"x": X4}, {"axes": np.array([], np.int64)}, {"noop_with_empty_axes": 1}, None),
    ("ReduceMean", 18, {"x": X4}, {"axes": np.array([-1], np.int64)}, {}, "opamp.average"),
    ("Erf", 13, {"x": X3 * 2}, {}, {}, None),
    ("Gelu", 20, {"x": X3 * 3}, {}, {}, None),
    ("Gelu", 20, {"x": X3 * 3}, {}, {"approximate": "tanh"}, None),
    ("Where", 16, {"x": X3}, {"c": np.triu(np.ones((4, 6), bool), 1), "y": np.array(-1e4, np.float32)}, {}, None),
    ("Expand", 13, {"x": X3[:, :1]}, {"s": np.array([1, 4, 6], np.int64)}, {}, None),
    ("Softmax", 13, {"x": X3}, {}, {"axis": 1}, "opamp.softmax"),
    ("Softmax", 13, {"x": X4}, {}, {"axis": -2}, "opamp.softmax"),
    ("Softmax", 11, {"x": X4}, {}, {"axis": 2}, "opamp.softmax"),
    ("MatMul", 13, {"q": X4, "k": K4}, {}, {}, "opamp.matmul"),
    ("MatMul", 13, {"a": X3[:, :, :4], "b": X3[:, :4, :]}, {}, {}, "opamp.matmul"),
]


def _model(op: str, opset: int, signals: dict, consts: dict, attrs: dict) -> onnx.ModelProto:
    """One node; Where takes (condition, x, y) so its condition constant goes first."""
    names = list(signals) + list(consts)
    if op == "Where":
        names = ["c", "x", "y"]
    node = helper.make_node(op, names, ["out"], name=f"my_{op.lower()}", **attrs)
    return make_model([node], [_vi(k, v) for k, v in signals.items()],
                      [helper.make_empty_tensor_value_info("out")],
                      [init(k, v) for k, v in consts.items()], opset=opset)


@pytest.mark.parametrize(("op", "opset", "signals", "consts", "attrs", "kind"), CASES,
                         ids=[f"{c[0]}@{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_op_matches_onnxruntime_imported_and_lowered(op, opset, signals, consts, attrs, kind):
    model = _model(op, opset, signals, consts, attrs)
    (want,) = ort_run(model, signals)
    (got,) = run_graph(import_model(model), signals)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert rel_err(got, want) < 1e-5
    compiled = compile_model(model, "opamp")
    (lowered,) = run_graph(compiled.graph, signals)
    assert rel_err(lowered, want) < 1e-5
    kinds = {n.kind for n in compiled.graph.nodes}
    if kind is not None:
        assert kind in kinds, kinds


def test_layer_norm_returns_mean_and_inverse_std_like_onnxruntime():
    node = helper.make_node("LayerNormalization", ["x", "g"], ["y", "mean", "inv"], axis=-2)
    model = make_model([node], [_vi("x", X4)], [helper.make_empty_tensor_value_info(t) for t in ("y", "mean", "inv")],
                       [init("g", G45[:, :5])], opset=17)
    want = ort_run(model, {"x": X4})
    got = run_graph(import_model(model), {"x": X4})
    for g, w in zip(got, want):
        assert g.shape == w.shape and rel_err(g, w) < 1e-5


def test_activation_matmul_bill_counts_a_multiplier_per_term():
    """(N, 3, 4, 5) @ (N, 3, 5, 4): 48 outputs per sample, 5 products each."""
    model = _model("MatMul", 13, {"q": X4, "k": K4}, {}, {})
    (node,) = [n for n in compile_model(model, "opamp").graph.nodes if n.kind == "opamp.matmul"]
    assert node.lanes == 48 and node.primitive.inner == 5
    assert node.primitive.devices(node.lanes)["bjt"] >= 48 * 5  # a log-domain multiplier per term


def test_other_powers_and_gelu_stay_digital():
    for op, consts, attrs in (("Pow", {"e": np.array(3.0, np.float32)}, {}), ("Gelu", {}, {})):
        model = _model(op, 20, {"x": X3}, consts, attrs)
        (node,) = compile_model(model, "opamp").graph.nodes
        assert node.placement == "digital" and node.kind == op


@pytest.mark.parametrize("op", ["ReduceSum", "Pow"])  # Sqrt, Erf: ONNX inference rejects ints
def test_integer_signals_are_rejected_naming_the_node(op):
    from circuits.errors import UnsupportedError

    inputs = ["x", "x"] if op == "Pow" else ["x"]
    node = helper.make_node(op, inputs, ["y"], name=f"int_{op.lower()}")
    vi = helper.make_tensor_value_info("x", onnx.TensorProto.INT32, [2, 3])
    model = make_model([node], [vi], [helper.make_empty_tensor_value_info("y")], opset=13)
    with pytest.raises(UnsupportedError, match=f"int_{op.lower()}.*int32"):
        import_model(model)
