"""The Python API refuses misuse with one Kelvin error naming the argument (no raw NumPy/Python errors,
no silent integer math)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from circuits.errors import InputError
from compiler.pipeline import compile_model
from sim.engine import Program, execute


@pytest.fixture(scope="module")
def graph():
    w = np.array([[0.5, -1.25], [2.0, 0.75], [-0.3, 1.1]], dtype=np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
                          [onnx.numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return compile_model(m, "opamp").graph


X = np.array([[0.3, -0.7, 0.9], [0.1, 0.2, -0.4]], dtype=np.float32)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, "int64", np.bool_, np.complex64, object])
def test_a_non_float_dtype_is_refused(graph, dtype):
    """Integer dtypes used to run the whole network in integer math (outputs truncated to 0, -1, 1)."""
    with pytest.raises(InputError, match=r"^dtype: must be a floating-point type"):
        execute(graph, {"x": X}, dtype=dtype)
    with pytest.raises(InputError, match=r"^dtype: must be a floating-point type"):
        Program(graph, dtype=dtype)


@pytest.mark.parametrize("dtype", ["banana", [1]])
def test_a_dtype_numpy_does_not_know_is_refused(graph, dtype):
    with pytest.raises(InputError, match=r"^dtype: not a NumPy data type"):
        execute(graph, {"x": X}, dtype=dtype)
    with pytest.raises(InputError, match=r"^dtype: not a NumPy data type"):
        Program(graph, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, "float64", np.float16])
def test_float_dtypes_still_run(graph, dtype):
    y = execute(graph, {"x": X}, dtype=dtype)["y"]
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, X @ np.array([[0.5, -1.25], [2.0, 0.75], [-0.3, 1.1]]), rtol=1e-2, atol=1e-2)
    assert Program(graph, dtype=dtype).dtype == np.dtype(dtype)


@pytest.mark.parametrize("feeds", [[X], X, (("x", X),), None])
def test_feeds_that_are_not_a_mapping_are_refused(graph, feeds):
    with pytest.raises(InputError, match=r"^feeds: a mapping of graph input name to array, e\.g\. \{'x': x\}"):
        execute(graph, feeds)


@pytest.mark.parametrize("bad", [None, "model.onnx", {"x": X}])
def test_a_graph_that_is_not_a_graph_is_refused(bad):
    with pytest.raises(InputError, match=r"^graph: a Kelvin Graph"):
        execute(bad, {"x": X})
    with pytest.raises(InputError, match=r"^graph: a Kelvin Graph"):
        Program(bad)
