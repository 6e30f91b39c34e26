"""Whole networks, lowered to each target, match onnxruntime within 1e-4 relative."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from compiler.pipeline import compile_model
from sim import zoo
from sim.engine import execute
from tests.helpers import ort_run, rel_err

TOL = 1e-4


@pytest.mark.parametrize("target", ["opamp", "current", "crossbar"])
def test_mlp(target):
    model = zoo.mlp((64, 32, 16, 10))
    x = np.random.default_rng(1).standard_normal((9, 64)).astype(np.float32)
    out = execute(compile_model(model, target).graph, {"x": x})
    assert rel_err(next(iter(out.values())), ort_run(model, {"x": x})[0]) < TOL


@pytest.mark.parametrize("target", ["opamp", "current", "crossbar"])
def test_cnn(target):
    model = zoo.cnn()
    x = np.random.default_rng(2).standard_normal((5, 1, 8, 8)).astype(np.float32)
    out = execute(compile_model(model, target).graph, {model.graph.input[0].name: x})
    assert rel_err(next(iter(out.values())), ort_run(model, {model.graph.input[0].name: x})[0]) < TOL


@pytest.mark.slow
def test_resnet18_matches_onnxruntime():
    """11.7 M parameters; the last feature map is also compared (the random net's logits vary little)."""
    model = zoo.resnet18()
    assert zoo.param_count(model) == 11_689_512
    gap = next(n for n in model.graph.node if n.op_type == "GlobalAveragePool")
    probe = gap.input[0]
    model.graph.output.append(onnx.helper.make_tensor_value_info(probe, onnx.TensorProto.FLOAT, ["N", 512, 7, 7]))
    name = model.graph.input[0].name
    x = np.random.default_rng(3).standard_normal((1, 3, 224, 224)).astype(np.float32)
    want = ort_run(model, {name: x})
    compiled = compile_model(model, "opamp")
    got = execute(compiled.graph, {name: x})
    for out_name, w in zip([o.name for o in model.graph.output], want):
        assert rel_err(got[out_name], w) < TOL, out_name
    kinds = {n.kind for n in compiled.graph.nodes}
    assert "Conv" not in kinds and "BatchNormalization" not in kinds
