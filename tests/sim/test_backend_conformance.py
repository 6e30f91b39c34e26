"""onnx's own backend node test cases, driven through sim.backend (the ideal engine).

Every case whose ops are all in Kelvin's op list must pass, or be rejected with a clear
UnsupportedError for a reason listed here. No case may return a wrong answer. Each case
also runs a second time with every input but the first turned into a constant, so the
lowering maps it onto analog primitives and their ideal functions are checked too.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import sim.backend as kelvin_backend
from circuits.errors import UnsupportedError

OPS = {
    "Gemm", "MatMul", "Conv", "BatchNormalization", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip",
    "Softmax", "LogSoftmax", "MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean", "Add", "Sub", "Mul", "Div",
    "Sum", "Exp", "Log", "Flatten", "Reshape", "Transpose", "Concat", "Identity", "Dropout",
    "Abs", "Neg", "Elu", "Celu", "Selu", "Softplus", "Softsign", "HardSigmoid", "HardSwish", "PRelu",
}
HELPERS = {"Constant"}  # constants are folded at import

# name pattern -> why Kelvin rejects the case (UnsupportedError expected)
REJECTED = {
    r"_(u?int\d+)(_|$)|_int32_trunc": "integer arithmetic: analog signals are real-valued",
    r"^test_training_dropout": "Dropout in training mode: Kelvin is inference only",
    r"^test_identity_(sequence|opt)$": "sequence/optional values: only tensors are supported",
    r"^test_maxpool_with_argmax": "MaxPool Indices output",
    r"^test_batchnorm_.*training_mode": "BatchNormalization in training mode",
    r"_bfloat16$": "bfloat16 tensors: analog signals are float16/32/64",
}


def _cases():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.loader import load_model_tests

        cases = load_model_tests(kind="node")
    picked = []
    for case in cases:
        ops = {n.op_type for n in case.model.graph.node}
        if ops & OPS and ops <= OPS | HELPERS:
            picked.append(case)
    return picked


CASES = _cases()
REJECTIONS: list[str] = []


def _expected_rejection(name: str) -> str | None:
    for pattern, why in REJECTED.items():
        if re.search(pattern, name):
            return why
    return None


def _check(case, model, feeds_list):
    for inputs, expected in case.data_sets:
        outputs = kelvin_backend.prepare(model).run(feeds_list(inputs))
        assert len(outputs) >= len(expected)
        for got, want in zip(outputs, expected):
            want = np.asarray(want)
            assert got.shape == want.shape, (got.shape, want.shape)
            assert got.dtype == want.dtype, (got.dtype, want.dtype)
            np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    why = _expected_rejection(case.name)
    if why is None:
        _check(case, case.model, list)
        return
    try:  # a listed case may be rejected, or may pass (e.g. integers only flowing through wires)
        _check(case, case.model, list)
    except UnsupportedError:
        REJECTIONS.append(case.name)


def _constantized(case, inputs):
    """The same model with inputs 1.. baked in as initializers (weights, bounds, shapes)."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    g = model.graph
    keep = g.input[0]
    for vi, value in list(zip(g.input, inputs))[1:]:
        g.initializer.append(numpy_helper.from_array(np.asarray(value), vi.name))
    del g.input[1:]
    g.input[0].CopyFrom(keep)
    return model


MULTI = [c for c in CASES if len(c.model.graph.input) > 1 and _expected_rejection(c.name) is None]


@pytest.mark.parametrize("case", MULTI, ids=[c.name for c in MULTI])
def test_node_case_with_constant_parameters(case):
    for inputs, expected in case.data_sets:
        if any(isinstance(v, (list, dict)) or v is None for v in inputs):
            continue
        model = _constantized(case, inputs)
        outputs = kelvin_backend.prepare(model).run([inputs[0]])
        for got, want in zip(outputs, expected):
            np.testing.assert_allclose(got, np.asarray(want), rtol=case.rtol, atol=case.atol)


def test_cases_cover_every_listed_op():
    seen = {n.op_type for c in CASES for n in c.model.graph.node}
    assert OPS <= seen, OPS - seen


def test_lowering_reaches_primitives():
    """The constant-parameter variants really exercise analog primitives, not just ONNX kernels."""
    kinds = set()
    for case in CASES:
        inputs = case.data_sets[0][0]
        if _expected_rejection(case.name) or any(isinstance(v, (list, dict)) or v is None for v in inputs):
            continue
        for model in (case.model, _constantized(case, inputs)):
            kinds |= {n.kind for n in kelvin_backend.prepare(model).graph.nodes}
    expected = {"opamp.summer", "opamp.elementwise_summer", "opamp.max", "opamp.average",
                "opamp.clipper", "opamp.multiplier", "opamp.divider", "opamp.rectifier",
                "opamp.diffpair", "opamp.softmax", "opamp.exp", "opamp.log", "opamp.matmul"}
    assert expected <= kinds, expected - kinds


def test_onnx_backend_test_harness_drives_kelvin():
    """onnx's BackendTest runner can drive sim.backend (a few representative ops)."""
    import unittest

    from onnx.backend.test import BackendTest

    bt = BackendTest(kelvin_backend, __name__)
    bt.include(r"^test_(relu|gemm_default_vector_bias|softmax_axis_1|conv_with_strides_padding|"
               r"maxpool_2d_ceil|averagepool_2d_pads)_cpu$")
    suite = unittest.TestSuite()
    for case in bt.test_cases.values():
        suite.addTests(unittest.defaultTestLoader.loadTestsFromTestCase(case))
    result = unittest.TextTestRunner(verbosity=0).run(suite)
    assert result.testsRun >= 6
    assert result.wasSuccessful(), result.failures + result.errors


def test_unsupported_op_error_is_clear():
    node = onnx.helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=2)
    graph = onnx.helper.make_graph(
        [node], "g",
        [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s)
         for n, s in (("x", [1, 1, 2]), ("w", [1, 8, 2]), ("r", [1, 8, 2]))],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 1, 2])])
    with pytest.raises(UnsupportedError, match="LSTM is not supported"):
        kelvin_backend.prepare(onnx.helper.make_model(graph))


def test_run_node_runs_one_node():
    """onnx.backend's run_node wraps a node in a model; its outputs had no type, which the importer
    refused for every node."""
    import sim.backend as kb
    x = np.array([[-1.0, 2.0, -3.0]], np.float32)
    (y,) = kb.run_node(onnx.helper.make_node("Relu", ["a"], ["b"]), [x])
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    (s,) = kb.run_node(onnx.helper.make_node("Add", ["a", "c"], ["b"]), [x, [[1.0, 1.0, 1.0]]])
    np.testing.assert_allclose(s, x + 1)


def test_api_misuse_is_a_kelvin_error():
    """The README's API: wrong types and unknown options were TypeError/AttributeError from deep inside."""
    import sim.backend as kb
    from circuits.errors import KelvinError
    from sim.engine.prepare import HardwareOptions
    from sim.train.commands import train_file
    m = "models/examples/digits_mlp.onnx"
    rep = kb.prepare(m)
    for call, match in ((lambda: kb.prepare(None), "a path, bytes or an onnx.ModelProto"),
                        (lambda: kb.prepare(m, target=None), "target: a name"),
                        (lambda: kb.prepare(m, device="TPU"), "CPU only"),
                        (lambda: kb.prepare(m, hardware=5), "hardware: a mode string"),
                        (lambda: kb.prepare(m, hardware="quantized", bogus=1), "unknown option.*bogus"),
                        (lambda: kb.prepare(m, noise=0.1), "noise without hardware"),
                        (lambda: rep.run(None), "a list of arrays"),
                        (lambda: rep.run([np.ones((1, 64))] * 2), "2 array.*1 input"),
                        (lambda: rep.run([np.ones((1, 64), np.complex64)]), "complex"),
                        (lambda: train_file(m, "digits", "t.onnx", hardware="quantized"), "hardware: a HardwareOptions"),
                        (lambda: train_file(m, "digits", "t.onnx", config={"epochs": 1}), "config: a TrainConfig")):
        with pytest.raises(KelvinError, match=match):
            call()
    assert kb.supports_device(None) is False and kb.supports_device("CPU")
    assert isinstance(HardwareOptions(), HardwareOptions)


@pytest.mark.parametrize("hardware", [{}, {"target": "current", "hardware": "quantized"},
                                      {"target": "current", "hardware": "chip", "chip_seed": 1},
                                      {"target": "crossbar", "hardware": "pcm"}])
def test_every_program_checks_its_feeds_like_the_ideal_engine(hardware):
    """A hardware Program took any array to its first bank: a wrong width was a numpy gufunc error
    named after node fc1, a string 'could not convert', None a TypeError."""
    import sim.backend as kb
    from circuits.errors import InputError
    rep = kb.prepare("models/examples/digits_mlp.onnx", **hardware)
    for bad, match in ((np.zeros((2, 63), np.float32), r"input 'x': expected shape \[N, 64\], got \(2, 63\)"),
                       (np.zeros((2, 64, 1), np.float32), r"input 'x': expected rank 2"),
                       (None, r"input 'x': no value"),
                       (np.array([["a"] * 64]), r"input 'x' is of dtype <U1, not numbers"),
                       (np.ones((1, 64), np.complex64), r"input 'x' is complex"),
                       (np.full((1, 64), 1e300), r"input 'x' holds 1e\+300 at index \[0, 0\].*float32 range")):
        with pytest.raises(InputError, match=match):
            rep.run([bad])
    assert rep.run([np.ones((3, 64), np.int64)])[0].shape == (3, 10)  # integers are cast to the engine's floats


@pytest.mark.parametrize("field, value, match", [("lr", "0.1", "--lr: a number, got '0.1'"),
                                                 ("momentum", "0.5", "--momentum: a number"),
                                                 ("weight_decay", None, "--weight-decay: a number"),
                                                 ("epochs", True, "--epochs: an integer"),
                                                 ("optimizer", None, "--optimizer: a name"),
                                                 ("pipelined", 1, "--pipelined: True or False")])
def test_a_train_config_built_in_python_is_checked_by_name(field, value, match):
    """TrainConfig(lr="0.1") reached numpy as a TypeError: 'ufunc isfinite not supported'."""
    from circuits.errors import InputError
    from sim.train.loop import TrainConfig
    with pytest.raises(InputError, match=match):
        TrainConfig(**{field: value}).check()
