"""Issue 12: malformed models fail at import with one ModelError naming the node/tensor (never deep in a pass)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from circuits.errors import ModelError
from compiler.onnx_import import import_model
from compiler.pipeline import compile_model
from tests.helpers import fvi, init


def _gemm(x_shape, w, b, y_shape):
    node = helper.make_node("Gemm", ["x", "W", "B"], ["y"], name="fc")
    graph = helper.make_graph([node], "t", [fvi("x", x_shape)], [fvi("y", y_shape)],
                              [init("W", np.asarray(w, np.float32)), init("B", np.asarray(b, np.float32))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_declared_input_that_contradicts_the_weight():
    with pytest.raises(ModelError, match=r"fc.*mismatch.*3 and 4"):
        import_model(_gemm(["N", 4], np.ones((3, 5)), np.zeros(5), ["N", 5]))


def test_bias_that_does_not_fit_the_layer():
    with pytest.raises(ModelError, match=r"'fc'.*bias 'B' has shape \[7\].*shape \[3\]"):
        import_model(_gemm(["N", 4], np.ones((4, 3)), np.zeros(7), ["N", 3]))


def test_zero_feature_layer():
    with pytest.raises(ModelError, match=r"'fc'.*'W' has shape \[0, 3\].*zero features"):
        import_model(_gemm(["N", 0], np.ones((0, 3)), np.zeros(3), ["N", 3]))


def test_softmax_axis_out_of_range():
    node = helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=5)
    graph = helper.make_graph([node], "t", [fvi("x", ["N", 4])], [fvi("y", ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ModelError, match=r"sm.*axis"):
        import_model(model)


def test_output_listed_twice():
    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    graph = helper.make_graph([node], "t", [fvi("x", ["N", 4])], [fvi("y", ["N", 4]), fvi("y", ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ModelError, match=r"output 'y' is listed twice"):
        import_model(model)


def test_missing_external_data_names_the_file(tmp_path):
    model = _gemm(["N", 4], np.ones((4, 3)), np.zeros(3), ["N", 3])
    onnx.save_model(model, tmp_path / "m.onnx", save_as_external_data=True, location="m.data", size_threshold=0)
    (tmp_path / "m.data").unlink()
    with pytest.raises(ModelError, match=r"'W'.*m\.data.*missing"):
        import_model(tmp_path / "m.onnx")


@pytest.mark.parametrize("location, what", [(".", "a directory"), ("/dev/zero", "a device")])
def test_external_data_that_is_not_a_file_says_what_it_is(tmp_path, location, what):
    """A location of "." or /dev/zero exists: it is not "missing", it is not a data file."""
    model = _gemm(["N", 4], np.ones((4, 3)), np.zeros(3), ["N", 3])
    onnx.save_model(model, tmp_path / "m.onnx", save_as_external_data=True, location="m.data", size_threshold=0)
    model = onnx.load(tmp_path / "m.onnx", load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=rf"'[WB]'.* which is {what}, not a data file") as info:
        import_model(tmp_path / "m.onnx")
    assert "missing" not in str(info.value)


def test_valid_model_still_compiles():
    compiled = compile_model(_gemm(["N", 4], np.ones((4, 3)), np.zeros(3), ["N", 3]), "opamp")
    assert compiled.graph.outputs == ["y"]


def test_nan_weights_name_the_node_and_tensor():
    with pytest.raises(ModelError, match=r"'fc'.*'W' holds nan at index \[1, 2\]"):
        w = np.ones((4, 3))
        w[1, 2] = np.nan
        import_model(_gemm(["N", 4], w, np.zeros(3), ["N", 3]))


def _one(node, inputs, outputs, inits=()):
    graph = helper.make_graph([node] if node is not None else [], "t", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_conv_channels_that_do_not_fit_the_groups():
    """Issue found by probing: x with 2 channels against group 3 ended in an internal reshape error."""
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="cv", group=3)
    model = _one(node, [fvi("x", [1, 2, 4, 4])], [fvi("y", ["a", "b", "c", "d"])], [init("w", np.ones((3, 1, 2, 2), np.float32))])
    with pytest.raises(ModelError, match=r"'cv' \(Conv\): input 'x' has 2 channels.*group 3.*3 input channels"):
        import_model(model)


@pytest.mark.parametrize("op, attr, value", [("Gemm", "alpha", np.inf), ("Gemm", "beta", np.nan),
                                             ("LeakyRelu", "alpha", np.nan)])
def test_non_finite_attribute_names_the_node(op, attr, value):
    inputs = ["x", "w"] if op == "Gemm" else ["x"]
    node = helper.make_node(op, inputs, ["y"], name="n", **{attr: float(value)}, **({"transB": 1} if op == "Gemm" else {}))
    inits = [init("w", np.ones((4, 4), np.float32))] if op == "Gemm" else []
    with pytest.raises(ModelError, match=rf"'n' \({op}\): attribute '{attr}' is {value}"):
        import_model(_one(node, [fvi("x", ["N", 4])], [fvi("y", ["N", 4])], inits))


@pytest.mark.parametrize("eps, var, match", [(-1.0, 1.0, r"epsilon -1.0 is negative"),
                                             (1e-5, -2.0, r"variance 'v' is -2 at channel 1")])
def test_batchnorm_with_no_real_scale(eps, var, match):
    node = helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="bn", epsilon=eps)
    inits = [init(k, np.ones(2, np.float32)) for k in "gbm"] + [init("v", np.array([1.0, var], np.float32))]
    with pytest.raises(ModelError, match=rf"'bn' \(BatchNormalization\): {match}"):
        import_model(_one(node, [fvi("x", ["N", 2, 3, 3])], [fvi("y", ["N", 2, 3, 3])], inits))


def test_graph_without_outputs():
    with pytest.raises(ModelError, match=r"declares no outputs"):
        import_model(_one(helper.make_node("Relu", ["x"], ["y"], name="r"), [fvi("x", ["N", 4])], []))


def test_pool_window_of_padding_alone_names_the_node():
    node = helper.make_node("AveragePool", ["x"], ["y"], name="ap", kernel_shape=[2, 2], pads=[5, 5, 5, 5])
    with pytest.raises(ModelError, match=r"'ap' \(AveragePool\): pads \(5, 5\).*smaller than the kernel 2"):
        compile_model(_one(node, [fvi("x", [1, 1, 4, 4])], [fvi("y", [1, 1, 13, 13])]), "opamp")
