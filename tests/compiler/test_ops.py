"""The NumPy op kernels against independent oracles.

1. Every single-node ONNX backend test case whose op Kelvin registers (expected outputs from
   the ONNX test suite); cases Kelvin deliberately does not support are listed by reason.
2. Older schema versions (opset 7..15 semantics) and the bundled example models, against
   onnxruntime.
3. Property tests of Conv, MaxPool, AveragePool and Gemm geometry against onnxruntime.
"""

from __future__ import annotations

import fnmatch
import functools
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from circuits.errors import UnsupportedError
from compiler.ops import OPS, implied_attributes, lookup

EXAMPLES = Path(__file__).resolve().parents[2] / "models" / "examples"
ONNX_OPS = frozenset(op for op in OPS if "." not in op)

# Backend cases Kelvin does not support on purpose: each must raise UnsupportedError or pass.
EXPECTED_UNSUPPORTED: dict[str, tuple[str, ...]] = {
    "exotic element type (bfloat16, float8, float4, int4, int2)": (
        "test_cast*BFLOAT16*", "test_cast*FLOAT8*", "test_cast*FLOAT4E2M1*",
        "test_cast*INT4*", "test_cast*INT2*", "test_range_bfloat16_*",
    ),
    "string tensor": ("test_cast*STRING*", "test_equal_string*"),
    "training-mode Dropout with a non-zero ratio": (
        "test_training_dropout", "test_training_dropout_mask",
        "test_training_dropout_default", "test_training_dropout_default_mask",
    ),
    "BatchNormalization training mode": ("test_batchnorm_*_training_mode",),
    "MaxPool Indices output": ("test_maxpool_with_argmax_*",),
    "non-tensor value (sequence, optional)": ("test_identity_sequence", "test_identity_opt"),
}


def _expected_unsupported(name: str) -> str | None:
    """The reason a backend case is expected to be unsupported, or None."""
    for reason, patterns in EXPECTED_UNSUPPORTED.items():
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return reason
    return None


def _tensor(value: Any) -> np.ndarray:
    """A test value as a numpy array; sequences and optionals are out of scope."""
    if isinstance(value, np.ndarray | np.generic):
        return np.asarray(value)
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    raise UnsupportedError(f"non-tensor value of type {type(value).__name__}")


def _attr_value(attr: onnx.AttributeProto) -> Any:
    """An attribute as a python value: strings decoded, tensors as numpy arrays."""
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


def _attrs(node: onnx.NodeProto, schema: onnx.defs.OpSchema) -> dict[str, Any]:
    """The node's attributes over the schema defaults."""
    attrs = {
        name: _attr_value(a.default_value)
        for name, a in schema.attributes.items()
        if a.default_value.type != 0
    }
    attrs.update((a.name, _attr_value(a)) for a in node.attribute)
    return attrs


def _run_node(node: onnx.NodeProto, opset: int, values: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Evaluate one node with Kelvin's kernels; returns its outputs by name."""
    schema = onnx.defs.get_schema(node.op_type, opset)
    spec = lookup(node.op_type, schema.since_version, node.name)
    args = [_tensor(values[name]) if name else None for name in node.input]
    attrs = implied_attributes(node.op_type, _attrs(node, schema), len(node.output))  # as the importer does
    results = spec.kernel(args, attrs, schema.since_version)
    out = {}
    for k, name in enumerate(node.output):
        if not name:
            continue
        if k >= len(results):
            raise UnsupportedError(f"{node.op_type}: output {k} ({name}) is not produced")
        out[name] = results[k]
    return out


def _assert_same(got: np.ndarray, want: np.ndarray, rtol: float, atol: float, what: str) -> None:
    """Same dtype, shape and (within tolerance) values."""
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


@functools.cache
def _node_cases() -> list[Any]:
    """The ONNX backend node cases made of a single node of a registered op."""
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    return [
        c for c in cases
        if len(c.model.graph.node) == 1
        and c.model.graph.node[0].domain in ("", "ai.onnx")
        and c.model.graph.node[0].op_type in ONNX_OPS
    ]


def _run_case(case: Any) -> None:
    """Run a backend case through the kernels and compare every data set."""
    graph = case.model.graph
    opset = next(o.version for o in case.model.opset_import if o.domain in ("", "ai.onnx"))
    for inputs, expected in case.data_sets:
        values = dict(zip((i.name for i in graph.input), inputs))
        got = _run_node(graph.node[0], opset, values)
        for out, want in zip(graph.output, expected):
            _assert_same(got[out.name], _tensor(want), case.rtol, case.atol, f"{case.name}:{out.name}")


@pytest.mark.parametrize("case", _node_cases(), ids=lambda c: c.name)
def test_backend_node_case(case: Any) -> None:
    reason = _expected_unsupported(case.name)
    if reason is None:
        _run_case(case)
        return
    try:  # the case may pass, or be rejected clearly; it may never return a wrong answer
        _run_case(case)
    except UnsupportedError as exc:
        assert str(exc), reason


def test_every_registered_op_has_backend_cases() -> None:
    covered = {c.model.graph.node[0].op_type for c in _node_cases()}
    assert covered == ONNX_OPS


def test_registry_covers_every_schema_version_from_opset_7() -> None:
    history = onnx.defs.get_all_schemas_with_history()
    for op in sorted(ONNX_OPS):
        versions = sorted({s.since_version for s in history if s.name == op and s.domain == ""})
        in_force_at_7 = max((v for v in versions if v <= 7), default=versions[0])
        assert OPS[op].versions == tuple(v for v in versions if v >= in_force_at_7), op


# --- onnxruntime as the oracle -------------------------------------------------------------

def _ort_run(nodes: Sequence[onnx.NodeProto], opset: int, feeds: Mapping[str, np.ndarray],
             outputs: Sequence[str], initializers: Sequence[onnx.TensorProto] = ()) -> list[np.ndarray]:
    """Run a graph in onnxruntime (IR 10, which onnxruntime accepts)."""
    graph = helper.make_graph(
        list(nodes), "g",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for k, v in feeds.items()],
        [helper.make_empty_tensor_value_info(name) for name in outputs],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(list(outputs), dict(feeds))


def _check_against_ort(node: onnx.NodeProto, opset: int, feeds: Mapping[str, np.ndarray],
                       rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """The kernels and onnxruntime agree on every output of one node."""
    outputs = [name for name in node.output if name]
    want = _ort_run([node], opset, feeds, outputs)
    got = _run_node(node, opset, feeds)
    for name, w in zip(outputs, want):
        _assert_same(got[name], np.asarray(w), rtol, atol, f"{node.op_type}@{opset}:{name}")


_R = np.random.default_rng(7)
_X = _R.standard_normal((2, 3, 5, 6)).astype(np.float32)
_V = _R.standard_normal((2, 3, 4)).astype(np.float32)
_POS = np.abs(_V) + 0.1
_C3 = np.abs(_R.standard_normal(3)).astype(np.float32) + 0.5
_I64 = np.array([[0, 2], [1, 1]], dtype=np.int64)

# (opset, op, inputs, attributes): semantics of older schema versions, which the backend cases
# (all at the newest opset) do not reach, and a few shapes they miss (3-D Conv, grouped Conv).
OLD_VERSIONS: list[tuple[int, str, dict[str, np.ndarray], dict[str, Any]]] = [
    (7, "Softmax", {"x": _V}, {}),
    (11, "Softmax", {"x": _V}, {"axis": 1}),
    (13, "Softmax", {"x": _V}, {"axis": 1}),
    (7, "Clip", {"x": _V}, {"min": -0.5, "max": 0.3}),
    (11, "Clip", {"x": _V, "lo": np.array(-0.2, np.float32)}, {}),
    (7, "ReduceMean", {"x": _V}, {}),
    (13, "ReduceMean", {"x": _V}, {"axes": [-1, 0], "keepdims": 0}),
    (18, "ReduceMean", {"x": _V, "axes": np.array([1], np.int64)}, {"keepdims": 0}),
    (11, "Unsqueeze", {"x": _V}, {"axes": [-1, 0]}),
    (7, "Squeeze", {"x": _V[:1, :, :1]}, {}),
    (11, "Squeeze", {"x": _V[:1]}, {"axes": [-3]}),
    (7, "Slice", {"x": _V}, {"starts": [1, -3], "ends": [100, -1], "axes": [2, 1]}),
    (10, "Slice", {"x": _V, "s": np.array([-1, 9], np.int64), "e": np.array([-100, 0], np.int64),
                   "a": np.array([2, 1], np.int64), "st": np.array([-2, -1], np.int64)}, {}),
    (7, "Dropout", {"x": _V}, {"ratio": 0.3}),
    (10, "Dropout", {"x": _V}, {}),
    (12, "Dropout", {"x": _V, "r": np.array(0.2, np.float32), "t": np.array(False)}, {}),
    (12, "Dropout", {"x": _V, "r": np.array(0.2, np.float32)}, {}),
    (7, "MaxPool", {"x": _X}, {"kernel_shape": [2, 3], "pads": [1, 0, 1, 1], "strides": [2, 2]}),
    (8, "MaxPool", {"x": _X}, {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER"}),
    (10, "MaxPool", {"x": _X}, {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
    (7, "AveragePool", {"x": _X},
     {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
    (10, "AveragePool", {"x": _X}, {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
    (7, "BatchNormalization", {"x": _X, "s": _C3, "b": -_C3, "m": _C3 / 3, "v": _C3},
     {"epsilon": 1e-3}),
    (9, "BatchNormalization", {"x": _X[:, :, 0], "s": _C3, "b": _C3, "m": -_C3, "v": _C3}, {}),
    (7, "Flatten", {"x": _X}, {"axis": 0}),
    (11, "Flatten", {"x": _X}, {"axis": -1}),
    (7, "Gemm", {"a": _V[0], "b": _V[1], "c": _V[0, :, 0]}, {"transB": 1, "alpha": 0.5, "beta": 2.0}),
    (9, "Gemm", {"a": _V[0].T, "b": _V[1].T, "c": np.float32([1.5])}, {"transA": 1}),
    (7, "Conv", {"x": _R.standard_normal((1, 4, 7)).astype(np.float32),
                 "w": _R.standard_normal((6, 2, 3)).astype(np.float32)}, {"group": 2, "pads": [2, 0]}),
    (7, "BatchNormalization", {"x": _X, "s": _X[0] + 2, "b": _X[1], "m": _X[1] / 2, "v": _X[0] ** 2},
     {"spatial": 0}),
    (11, "Conv", {"x": _R.standard_normal((2, 2, 5, 6, 7)).astype(np.float32),
                  "w": _R.standard_normal((3, 2, 2, 3, 2)).astype(np.float32),
                  "b": _C3},
     {"strides": [2, 1, 3], "dilations": [1, 2, 1], "pads": [1, 0, 2, 0, 1, 1]}),
    (7, "MatMul", {"a": _V, "b": _V[0].T}, {}),
    (7, "GlobalAveragePool", {"x": _X}, {}),
    (7, "Reshape", {"x": _V, "s": np.array([0, -1], np.int64)}, {}),
    (7, "Shape", {"x": _V}, {}),
    (15, "Shape", {"x": _X}, {"start": 1, "end": -1}),
    (7, "Transpose", {"x": _V}, {"perm": [1, 2, 0]}),
    (7, "Transpose", {"x": _V}, {}),
    (7, "Concat", {"a": _V, "b": _V[:, :1]}, {"axis": 1}),
    (7, "Gather", {"x": _V, "i": _I64}, {"axis": 1}),
    (11, "Gather", {"x": _V, "i": -_I64}, {"axis": -1}),
    (7, "Cast", {"x": _V * 3}, {"to": onnx.TensorProto.INT64}),
    (7, "Sum", {"a": _V, "b": _V, "c": _V}, {}),
    (8, "Sum", {"a": _V, "b": _V[0, 0]}, {}),
    (7, "Add", {"a": _V, "b": _V[0, :, :1]}, {}),
    (7, "Div", {"a": _V, "b": _POS[1]}, {}),
    (7, "LeakyRelu", {"x": _V}, {"alpha": 0.2}),
    (7, "Relu", {"x": _V}, {}),
    (7, "Sigmoid", {"x": _V * 30}, {}),
    (7, "Tanh", {"x": _V}, {}),
    (7, "Exp", {"x": _V}, {}),
    (7, "Log", {"x": _POS}, {}),
    (7, "Equal", {"a": _I64, "b": _I64.T}, {}),
    (9, "Where", {"c": _V[0] > 0, "a": _V[0], "b": _V[1, :1]}, {}),
    (11, "Range", {"a": np.array(10), "b": np.array(-3), "c": np.array(-4)}, {}),
    (8, "Expand", {"x": _V[0, :, :1], "s": np.array([2, 1, 5], np.int64)}, {}),
    (9, "ConstantOfShape", {"s": np.array([2, 3], np.int64)},
     {"value": numpy_helper.from_array(np.array([5], np.int32))}),
    (7, "Constant", {}, {"value": numpy_helper.from_array(_V)}),
    (12, "Constant", {}, {"value_ints": [3, 1, 2]}),
]


@pytest.mark.parametrize(("opset", "op", "feeds", "attrs"), OLD_VERSIONS,
                         ids=[f"{op}@{opset}-{i}" for i, (opset, op, _, _) in enumerate(OLD_VERSIONS)])
def test_older_schema_versions_match_onnxruntime(opset: int, op: str, feeds: dict[str, np.ndarray],
                                                 attrs: dict[str, Any]) -> None:
    # onnxruntime returns an all-zero inference mask for Dropout before opset 12: compare y only.
    n_out = 2 if op == "Dropout" and opset >= 12 else 1
    node = helper.make_node(op, list(feeds), [f"y{k}" for k in range(n_out)], **attrs)
    _check_against_ort(node, opset, feeds)


@pytest.mark.parametrize(("opset", "dtype"), [(7, np.float32), (10, np.bool_), (12, np.bool_)])
def test_inference_dropout_mask_is_all_ones(opset: int, dtype: type) -> None:
    node = helper.make_node("Dropout", ["x"], ["y", "mask"])
    mask = _run_node(node, opset, {"x": _V})["mask"]
    assert mask.dtype == dtype and mask.shape == _V.shape and mask.all()


@pytest.mark.parametrize(("node", "feeds", "match"), [
    (helper.make_node("Dropout", ["x", "r", "t"], ["y"]),
     {"x": _V, "r": np.array(0.1, np.float32), "t": np.array(True)}, "training_mode"),
    (helper.make_node("BatchNormalization", list("xsbmv"), ["y"], training_mode=1),
     {"x": _X, "s": _C3, "b": _C3, "m": _C3, "v": _C3}, "training_mode=1"),
    (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], auto_pad="VALID", ceil_mode=1),
     {"x": _X}, "ceil_mode=1"),
    (helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_MIDDLE"),
     {"x": _X, "w": _X[:1]}, "SAME_MIDDLE"),
    (helper.make_node("Cast", ["x"], ["y"], to=onnx.TensorProto.BFLOAT16), {"x": _V}, "BFLOAT16"),
])
def test_unsupported_features_raise_with_a_named_reason(
    node: onnx.NodeProto, feeds: dict[str, np.ndarray], match: str
) -> None:
    with pytest.raises(UnsupportedError, match=match):
        _run_node(node, 22, feeds)


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.onnx")))
def test_example_models_evaluate_like_onnxruntime(name: str) -> None:
    model = onnx.load(EXAMPLES / f"{name}.onnx")
    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    values: dict[str, Any] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inits = set(values)
    rng = np.random.default_rng(0)
    feeds = {}
    for vi in graph.input:
        if vi.name not in inits:
            dims = [d.dim_value or 2 for d in vi.type.tensor_type.shape.dim]
            feeds[vi.name] = rng.standard_normal(dims).astype(np.float32)
    values.update(feeds)
    for node in graph.node:
        values.update(_run_node(node, opset, values))
    outputs = [o.name for o in graph.output]
    want = _ort_run(graph.node, opset, feeds, outputs, graph.initializer)
    for name, w in zip(outputs, want):
        _assert_same(values[name], w, 1e-4, 1e-5, name)


# --- property tests of the window geometry ------------------------------------------------

_FAST = settings(max_examples=30, deadline=None, derandomize=True)


@st.composite
def _window_attrs(draw: st.DrawFn, pool: bool) -> tuple[list[int], dict[str, Any]]:
    """Random spatial size and kernel_shape/strides/dilations/pads/auto_pad that fit together.

    For pools, stay within onnxruntime's limits: pads below the kernel size, and SAME_* only
    with strides up to the kernel size (it computes negative pads otherwise).
    """
    d = draw(st.sampled_from([1, 2]))
    kernel = draw(st.lists(st.integers(1, 3), min_size=d, max_size=d))
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    strides = [draw(st.integers(1, k if pool and "SAME" in auto_pad else 3)) for k in kernel]
    # onnxruntime rejects dilations with SAME_* padding
    dilations = draw(st.lists(st.integers(1, 1 if "SAME" in auto_pad else 2), min_size=d, max_size=d))
    attrs: dict[str, Any] = {"kernel_shape": kernel, "strides": strides, "dilations": dilations}
    pads = [0] * (2 * d)
    if auto_pad == "NOTSET":
        limit = [k - 1 if pool else 2 for k in kernel * 2]
        pads = [draw(st.integers(0, m)) for m in limit]
        attrs["pads"] = pads
    else:
        attrs["auto_pad"] = auto_pad
    sizes = []
    for i, (k, dl) in enumerate(zip(kernel, dilations)):
        dk = (k - 1) * dl + 1
        sizes.append(draw(st.integers(max(1, dk - pads[i] - pads[i + d]), dk + 6)))
    return sizes, attrs


@_FAST
@given(geo=_window_attrs(pool=False), groups=st.integers(1, 3),
       cg=st.integers(1, 2), mg=st.integers(1, 2), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_conv_matches_onnxruntime(geo: tuple[list[int], dict[str, Any]], groups: int, cg: int, mg: int,
                                  bias: bool, seed: int) -> None:
    sizes, attrs = geo
    rng = np.random.default_rng(seed)
    feeds = {
        "x": rng.standard_normal([2, groups * cg, *sizes]).astype(np.float32),
        "w": rng.standard_normal([groups * mg, cg, *attrs["kernel_shape"]]).astype(np.float32),
    }
    if bias:
        feeds["b"] = rng.standard_normal(groups * mg).astype(np.float32)
    node = helper.make_node("Conv", list(feeds), ["y"], group=groups, **attrs)
    _check_against_ort(node, 17, feeds, rtol=1e-4, atol=1e-5)


@_FAST
@given(geo=_window_attrs(pool=True), ceil=st.booleans(), seed=st.integers(0, 2**16))
def test_max_pool_matches_onnxruntime(geo: tuple[list[int], dict[str, Any]], ceil: bool,
                                      seed: int) -> None:
    sizes, attrs = geo
    x = np.random.default_rng(seed).standard_normal([2, 3, *sizes]).astype(np.float32)
    ceil = ceil and "auto_pad" not in attrs  # onnxruntime's auto_pad + ceil_mode sizes are inconsistent
    node = helper.make_node("MaxPool", ["x"], ["y"], ceil_mode=int(ceil), **attrs)
    _check_against_ort(node, 19, {"x": x})


@_FAST
@given(geo=_window_attrs(pool=True), ceil=st.booleans(), include_pad=st.booleans(),
       seed=st.integers(0, 2**16))
def test_average_pool_matches_onnxruntime(geo: tuple[list[int], dict[str, Any]], ceil: bool,
                                          include_pad: bool, seed: int) -> None:
    sizes, attrs = geo
    x = np.random.default_rng(seed).standard_normal([2, 3, *sizes]).astype(np.float32)
    ceil = ceil and "auto_pad" not in attrs  # onnxruntime's auto_pad + ceil_mode sizes are inconsistent
    node = helper.make_node("AveragePool", ["x"], ["y"], ceil_mode=int(ceil),
                            count_include_pad=int(include_pad), **attrs)
    _check_against_ort(node, 19, {"x": x})


@_FAST
@given(m=st.integers(1, 5), k=st.integers(1, 5), n=st.integers(1, 5), trans_a=st.booleans(),
       trans_b=st.booleans(), alpha=st.floats(-2, 2), beta=st.floats(-2, 2),
       c_shape=st.sampled_from([None, (), (1,), "n", "m1", "1n", "mn"]), seed=st.integers(0, 2**16))
def test_gemm_matches_onnxruntime(m: int, k: int, n: int, trans_a: bool, trans_b: bool, alpha: float,
                                  beta: float, c_shape: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    feeds = {
        "a": rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32),
        "b": rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32),
    }
    if c_shape is not None:
        shape = {"n": (n,), "m1": (m, 1), "1n": (1, n), "mn": (m, n)}.get(c_shape, c_shape)
        feeds["c"] = rng.standard_normal(shape).astype(np.float32)
    node = helper.make_node("Gemm", list(feeds), ["y"], transA=int(trans_a), transB=int(trans_b),
                            alpha=alpha, beta=beta)
    _check_against_ort(node, 17, feeds, rtol=1e-4, atol=1e-5)
