"""Every pass leaves the graph's outputs unchanged (ideal execution before == after == onnxruntime)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from circuits.data import model_file
from compiler.ir import OpNode, PrimitiveNode
from compiler.onnx_import import import_model
from compiler.passes import (
    ConstantFold, ConvToMatrix, EliminateDead, EliminateIdentity, FoldBatchNorm, FuseBiasAdd,
    GemmToDense, MapToPrimitives, PoolToWindows,
)
from compiler.pipeline import normalize_passes, run_passes
from sim import zoo
from tests.helpers import fvi, init, make_model, ort_run, rel_err, run_graph

RNG = np.random.default_rng(7)


def _rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def check_pass(model, feeds, pass_, before=(), expect_change=True, tol=1e-5):
    """Import, run ``before`` passes, then check ``pass_`` preserves outputs (and matches ORT)."""
    g = import_model(model)
    run_passes(g, list(before))
    ref = run_graph(g, feeds)
    changed = pass_.run(g)
    g.check()
    assert changed is expect_change
    got = run_graph(g, feeds)
    oracle = ort_run(model, feeds)
    for a, b, o in zip(got, ref, oracle):
        assert rel_err(a, b) < tol
        assert rel_err(a, o) < 1e-4
    return g


def test_eliminate_identity_chains_dropout_and_output_identity():
    nodes = [
        helper.make_node("Identity", ["x"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Dropout", ["b"], ["c"], ratio=0.3),
        helper.make_node("Identity", ["c"], ["d"]),
        helper.make_node("Identity", ["d"], ["y"]),
        helper.make_node("Identity", ["x"], ["z"]),  # graph output copying a graph input: kept
    ]
    model = make_model(nodes, [fvi("x", ["N", 4])], [fvi("y", ["N", 4]), fvi("z", ["N", 4])], opset=11)
    g = check_pass(model, {"x": _rand(3, 4)}, EliminateIdentity())
    assert [n.kind for n in g.nodes] == ["Relu", "Identity"]
    assert g.outputs == ["y", "z"]


def test_constant_fold_resolves_symbolic_reshape_of_legacy_export():
    model = onnx.load(model_file("examples", "torch_cnn_legacy_nofold.onnx"))
    g = check_pass(model, {model.graph.input[0].name: _rand(2, 3, 16, 16)}, ConstantFold())
    EliminateDead().run(g)
    assert not any(n.kind in ("Shape", "Gather", "Unsqueeze", "Concat") for n in g.nodes)
    reshape = next(n for n in g.nodes if n.kind == "Reshape")
    assert reshape.inputs[1] in g.constants
    assert 0 in g.constants[reshape.inputs[1]].tolist() or -1 in g.constants[reshape.inputs[1]].tolist()


def test_constant_fold_evaluates_constant_subgraph():
    nodes = [helper.make_node("Add", ["c1", "c2"], ["c3"]), helper.make_node("Mul", ["x", "c3"], ["y"])]
    model = make_model(nodes, [fvi("x", ["N", 3])], [fvi("y", ["N", 3])],
                       [init("c1", _rand(3)), init("c2", _rand(3))])
    g = check_pass(model, {"x": _rand(5, 3)}, ConstantFold())
    assert [n.kind for n in g.nodes] == ["Mul"]


def test_eliminate_dead_removes_unused_branch():
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Exp", ["x"], ["unused"])]
    model = make_model(nodes, [fvi("x", ["N", 3])], [fvi("y", ["N", 3])])
    g = check_pass(model, {"x": _rand(2, 3)}, EliminateDead())
    assert [n.kind for n in g.nodes] == ["Relu"]


@pytest.mark.parametrize("trans_a,trans_b,alpha,beta,c_shape", [
    (0, 1, 1.0, 1.0, (4,)), (0, 0, 0.5, 2.0, (1, 4)), (1, 1, 1.5, 0.0, ()), (1, 0, 1.0, 1.0, None),
])
def test_gemm_to_dense(trans_a, trans_b, alpha, beta, c_shape):
    a_shape = (5, 3) if trans_a else ("N", 5)
    b = _rand(4, 5) if trans_b else _rand(5, 4)
    inits = [init("B", b)]
    inputs = ["A", "B"]
    if c_shape is not None:
        inits.append(init("C", _rand(*c_shape)))
        inputs.append("C")
    node = helper.make_node("Gemm", inputs, ["Y"], transA=trans_a, transB=trans_b, alpha=alpha, beta=beta)
    model = make_model([node], [fvi("A", list(a_shape))], [fvi("Y", None)], inits)
    feeds = {"A": _rand(5, 3) if trans_a else _rand(3, 5)}
    g = check_pass(model, feeds, GemmToDense())
    assert "kelvin.Dense" in {n.kind for n in g.nodes}


def test_matmul_and_bias_add_fuse_into_dense():
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["b", "h"], ["y"])]
    model = make_model(nodes, [fvi("x", ["N", 7, 6])], [fvi("y", ["N", 7, 3])],
                       [init("W", _rand(6, 3)), init("b", _rand(3))])
    feeds = {"x": _rand(2, 7, 6)}
    g = check_pass(model, feeds, FuseBiasAdd(), before=[GemmToDense()])
    assert [n.kind for n in g.nodes] == ["kelvin.Dense"]


def _conv_bn_model():
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["y"], epsilon=1e-3)]
    inits = [init("W", _rand(4, 2, 3, 3)), init("B", _rand(4)), init("s", _rand(4)), init("bb", _rand(4)),
             init("m", _rand(4)), init("v", np.abs(_rand(4)) + 0.5)]
    return make_model(nodes, [fvi("x", ["N", 2, 6, 6])], [fvi("y", ["N", 4, 6, 6])], inits, opset=13)


def test_fold_batchnorm_into_conv():
    g = check_pass(_conv_bn_model(), {"x": _rand(2, 2, 6, 6)}, FoldBatchNorm())
    assert [n.kind for n in g.nodes] == ["Conv"]


def test_fold_batchnorm_into_gemm():
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1),
             helper.make_node("BatchNormalization", ["h", "s", "bb", "m", "v"], ["y"])]
    inits = [init("W", _rand(4, 3)), init("B", _rand(4)), init("s", _rand(4)), init("bb", _rand(4)),
             init("m", _rand(4)), init("v", np.abs(_rand(4)) + 0.5)]
    model = make_model(nodes, [fvi("x", ["N", 3])], [fvi("y", ["N", 4])], inits, opset=13)
    g = check_pass(model, {"x": _rand(5, 3)}, FoldBatchNorm(), before=[GemmToDense()])
    assert [n.kind for n in g.nodes] == ["kelvin.Dense"]


@pytest.mark.parametrize("attrs,xshape,wshape", [
    ({"pads": [1, 1, 1, 1]}, (2, 3, 7, 7), (4, 3, 3, 3)),
    ({"strides": [2, 1], "dilations": [1, 2], "pads": [0, 2, 1, 0]}, (1, 2, 9, 8), (3, 2, 3, 2)),
    ({"group": 2, "auto_pad": "SAME_LOWER", "strides": [2, 2]}, (2, 4, 6, 5), (6, 2, 2, 3)),
    ({"group": 4}, (1, 4, 5, 5), (4, 1, 3, 3)),
    ({"pads": [2, 1], "strides": [3]}, (2, 3, 11), (5, 3, 4)),
])
def test_conv_to_matrix(attrs, xshape, wshape):
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], **attrs)
    model = make_model([node], [fvi("x", ["N", *xshape[1:]])], [fvi("y", None)],
                       [init("W", _rand(*wshape)), init("B", _rand(wshape[0]))])
    g = check_pass(model, {"x": _rand(*xshape)}, ConvToMatrix())
    assert [n.kind for n in g.nodes] == ["kelvin.Im2Col", "kelvin.Dense", "kelvin.ColToImage"]


@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("MaxPool", {"kernel_shape": [2, 3], "strides": [2, 2], "ceil_mode": 1, "dilations": [2, 1]}),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 0}),
    ("AveragePool", {"kernel_shape": [3, 2], "pads": [1, 0, 1, 1], "count_include_pad": 1, "strides": [2, 1]}),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("GlobalAveragePool", {}),
    ("ReduceMean", {"axes": [2, 3], "keepdims": 0}),
])
def test_pool_to_windows(op, attrs):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    model = make_model([node], [fvi("x", ["N", 3, 7, 8])], [fvi("y", None)], opset=13)
    g = check_pass(model, {"x": _rand(2, 3, 7, 8)}, PoolToWindows())
    assert op not in {n.kind for n in g.nodes}


@pytest.mark.parametrize("target", ["opamp", "current", "crossbar"])
@pytest.mark.parametrize("builder", [zoo.mlp, zoo.cnn])
def test_map_to_primitives(target, builder):
    model = builder()
    shape = [3 if d.dim_param else d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    g = check_pass(model, {model.graph.input[0].name: _rand(*shape)}, MapToPrimitives(target),
                   before=normalize_passes())
    assert any(isinstance(n, PrimitiveNode) for n in g.nodes)
    assert not any(isinstance(n, OpNode) and n.op == "kelvin.Dense" for n in g.nodes)


def test_current_target_fuses_relu_into_neurons():
    model = zoo.mlp((8, 6, 3))
    g = check_pass(model, {"x": _rand(4, 8)}, MapToPrimitives("current"), before=normalize_passes())
    kinds = [n.kind for n in g.nodes]
    assert kinds == ["current.synapse_array", "current.synapse_array"]
    assert g.nodes[0].primitive.rectify and not g.nodes[1].primitive.rectify
