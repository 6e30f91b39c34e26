"""ONNX Split (opsets 11, 13, 18) against onnxruntime: imported, lowered and differentiated like the other
routing ops, a torch-style q/k/v split, whole in ngspice on the opamp target, and bad split sizes."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper

from circuits.errors import ModelError
from compiler.onnx_import import import_model
from compiler.pipeline import compile_model
from sim.engine.program import Program
from tests.helpers import fvi, init, make_model, ort_run, rel_err, run_graph

X = np.random.default_rng(5).standard_normal((2, 6, 4)).astype(np.float32)

# (opset, attributes, split sizes given as an input or None, number of outputs)
CASES: list[tuple[int, dict[str, Any], list[int] | None, int]] = [
    (11, {"axis": 1, "split": [1, 2, 3]}, None, 3),  # sizes as an attribute
    (11, {"axis": -1}, None, 2),  # equal parts, as many as the outputs
    (13, {"axis": 1}, [3, 1, 2], 3),  # sizes as an input
    (13, {"axis": 2}, None, 4),
    (13, {}, [1, 1], 2),  # default axis 0 (the batch)
    (18, {"axis": 1, "num_outputs": 3}, None, 3),
    (18, {"axis": 2, "num_outputs": 3}, None, 3),  # uneven: 2, 2, 0
    (18, {"axis": -2, "num_outputs": 4}, None, 4),  # uneven: 2, 2, 2, 0
    (18, {"axis": 1}, [4, 0, 2], 3),  # a zero-size part
]


def _split_model(opset: int, attrs: dict[str, Any], sizes: list[int] | None, outputs: int) -> onnx.ModelProto:
    ins = ["x"] + (["s"] if sizes is not None else [])
    outs = [f"y{i}" for i in range(outputs)]
    node = helper.make_node("Split", ins, outs, name="my_split", **attrs)
    inits = [init("s", np.array(sizes, np.int64))] if sizes is not None else []
    return make_model([node], [fvi("x", [2, 6, 4])], [helper.make_empty_tensor_value_info(o) for o in outs],
                      inits, opset=opset)


@pytest.mark.parametrize("opset, attrs, sizes, outputs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_split_matches_onnxruntime_imported_and_lowered(opset, attrs, sizes, outputs):
    model = _split_model(opset, attrs, sizes, outputs)
    want = ort_run(model, {"x": X})
    for graph in (import_model(model), compile_model(model, "opamp").graph):
        got = run_graph(graph, {"x": X})
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)


def qkv_attention(opset: int) -> onnx.ModelProto:
    """torch-style self-attention head: qkv = x·W (one Linear to 3·d), q, k, v = qkv.split(d, -1)
    (opset 13: sizes as an input; opset 18: num_outputs=3, as the dynamo exporter writes it),
    softmax(q·kᵀ/√d)·v. d = 4, sequence 3."""
    d = 4
    w = np.random.default_rng(7).normal(0, 0.5, (d, 3 * d)).astype(np.float32)
    split = (helper.make_node("Split", ["qkv", "sizes"], ["q", "k", "v"], name="qkv_split", axis=-1)
             if opset < 18 else
             helper.make_node("Split", ["qkv"], ["q", "k", "v"], name="qkv_split", axis=-1, num_outputs=3))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["qkv"]), split,
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]),
             helper.make_node("Mul", ["s", "scale"], ["ss"]),
             helper.make_node("Softmax", ["ss"], ["a"], axis=-1),
             helper.make_node("MatMul", ["a", "v"], ["y"])]
    inits = [init("w", w), init("scale", np.array(1 / np.sqrt(d), np.float32))]
    if opset < 18:
        inits.append(init("sizes", np.array([d, d, d], np.int64)))
    return make_model(nodes, [fvi("x", ["N", 3, d])], [fvi("y", ["N", 3, d])], inits, opset=opset)


@pytest.mark.parametrize("opset", [13, 18])
def test_torch_style_qkv_split_matches_onnxruntime(opset):
    model = qkv_attention(opset)
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    (want,) = ort_run(model, {"x": x})
    (got,) = run_graph(import_model(model), {"x": x})
    assert rel_err(got, want) < 1e-5
    compiled = compile_model(model, "opamp")
    assert "Split" in {n.kind for n in compiled.graph.nodes}
    (lowered,) = run_graph(compiled.graph, {"x": x})
    assert rel_err(lowered, want) < 1e-5


def test_split_gradient_is_the_routing_scatter():
    """Every output's gradient lands where its elements came from (central differences, float64)."""
    model = qkv_attention(18)
    prog = Program(import_model(model), dtype=np.float64)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4))
    out, tape = prog.forward({"x": x}, train=True)
    r = rng.standard_normal(out["y"].shape)
    grads = prog.backward(tape, {"y": r}, input_grads=True)

    def loss(xv, w=None):
        if w is not None:
            prog.params["w"] = w
        return float(np.sum(prog.run({"x": xv})["y"] * r))

    eps = 1e-6
    for i in rng.choice(x.size, 8, replace=False):
        up, dn = x.copy(), x.copy()
        up.flat[i] += eps
        dn.flat[i] -= eps
        assert (loss(up) - loss(dn)) / (2 * eps) == pytest.approx(grads["input:x"].flat[i], rel=1e-6, abs=1e-9)


def test_split_output_without_a_gradient_counts_as_zero():
    """Only the first and last parts feed the loss: the middle part's input elements get zero."""
    model = _split_model(13, {"axis": 1}, [1, 2, 3], 3)
    prog = Program(import_model(model), dtype=np.float64)
    x = X.astype(np.float64)
    _, tape = prog.forward({"x": x}, train=True)
    g0, g2 = np.ones((2, 1, 4)), np.full((2, 3, 4), 2.0)
    gx = prog.backward(tape, {"y0": g0, "y2": g2}, input_grads=True)["input:x"]
    np.testing.assert_array_equal(gx, np.concatenate([g0, np.zeros((2, 2, 4)), g2], axis=1))


@pytest.mark.ngspice
def test_split_wires_the_netlist():
    """Gemm(4→6) → Split(2, 4) → ReLU each, whole in ngspice on the opamp target (Split is wiring)."""
    from sim.spice_commands import run_network_spice

    w = np.random.default_rng(3).normal(0, 0.5, (6, 4)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], transB=1),
             helper.make_node("Split", ["h", "s"], ["a", "b"], axis=1),
             helper.make_node("Relu", ["a"], ["ya"]), helper.make_node("Relu", ["b"], ["yb"])]
    model = make_model(nodes, [fvi("x", ["N", 4])], [fvi("ya", ["N", 2]), fvi("yb", ["N", 4])],
                       [init("w", w), init("s", np.array([2, 4], np.int64))], opset=13)
    compiled = compile_model(model, "opamp")
    x = np.random.default_rng(4).uniform(-1, 1, (2, 4)).astype(np.float32)
    want = ort_run(model, {"x": x})
    got = run_network_spice(compiled, {"x": x}, scale=0.25, workers=1, progress=False)
    for name, wv in zip(("ya", "yb"), want):
        assert np.max(np.abs(got[name] - wv)) < 0.01 * max(1.0, float(np.max(np.abs(wv))))


def _bad_split(sizes_as_input: bool, sizes: tuple[int, int] = (2, 2)) -> onnx.ModelProto:
    """Sizes 2 + 2 on an axis of length 6: invalid (built without ONNX's checker, which would refuse it)."""
    node = (helper.make_node("Split", ["x", "s"], ["a", "b"], name="bad_split", axis=1) if sizes_as_input else
            helper.make_node("Split", ["x"], ["a", "b"], name="bad_split", axis=1, split=list(sizes)))
    inits = [init("s", np.array(sizes, np.int64))] if sizes_as_input else []
    graph = helper.make_graph([node], "g", [fvi("x", ["N", 6])], [fvi("a", ["N", None]), fvi("b", ["N", None])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13 if sizes_as_input else 11)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("sizes_as_input", [True, False], ids=["input", "attribute"])
def test_split_sizes_that_miss_the_axis_length_name_the_node(sizes_as_input, tmp_path, capsys):
    """ONNX's shape inference or Kelvin's own check (`import_checks`), whichever sees it first: one line
    with the node, the sizes' sum and the axis length."""
    with pytest.raises(ModelError, match=r"bad_split.*\b4\b.*\b6\b"):
        import_model(_bad_split(sizes_as_input))
    from sim.cli import main

    onnx.save(_bad_split(sizes_as_input), tmp_path / "bad.onnx")
    assert main(["compile", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "c"), "-q"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad_split" in err and "(4)" in err and "(6)" in err, err


def test_negative_split_size_names_the_node():
    """ONNX's shape inference lets [7, -1] through (it sums to 6); Kelvin's import check does not."""
    with pytest.raises(ModelError, match=r"node 'bad_split' \(Split\).*\[7, -1\] include a negative size"):
        import_model(_bad_split(True, (7, -1)))
