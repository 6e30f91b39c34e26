"""ONNX file -> Kelvin IR: load, check, infer shapes, turn initializers into NumPy, fill attribute defaults."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from circuits.errors import InputError, ModelError, UnsupportedError
from compiler.import_checks import check_node_shapes
from compiler.import_checks import first_line as _first_line
from compiler.ir import Dim, Graph, OpNode, TensorInfo
from compiler.ops import implied_attributes, lookup

log = logging.getLogger(__name__)

MIN_OPSET = 8
MAX_OPSET = onnx.defs.onnx_opset_version()

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

COMPUTE_OPS = frozenset(
    {
        "Gemm", "MatMul", "Conv", "BatchNormalization", "Relu", "LeakyRelu", "Sigmoid", "Tanh",
        "Clip", "Softmax", "LogSoftmax", "MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean", "Add",
        "Sub", "Mul", "Div", "Sum", "Exp", "Log", "ReduceSum", "Sqrt", "Pow", "Erf", "Gelu",
        "LayerNormalization", "Abs", "Neg", "Elu", "Celu", "Selu", "Softplus", "Softsign", "HardSigmoid",
        "HardSwish", "PRelu",
    }
)
"""Ops that compute on signal values: analog signals are real, so they need float tensors."""

OUTPUT_LIMIT = {"MaxPool": 1, "BatchNormalization": 1}
"""Ops whose extra outputs (indices, training statistics) Kelvin does not produce."""


def load_model(source: str | os.PathLike[str] | bytes | onnx.ModelProto) -> onnx.ModelProto:
    """Read and check an ONNX model, raising InputError/ModelError with the file named."""
    if not isinstance(source, (str, os.PathLike, bytes, onnx.ModelProto)):
        raise InputError(f"model: a path, bytes or an onnx.ModelProto, got {type(source).__name__}")
    if isinstance(source, onnx.ModelProto):
        model, where = source, "<model>"
    else:
        where = "<bytes>" if isinstance(source, bytes) else str(source)
        if isinstance(source, bytes):
            data = source
        else:
            path = Path(source)
            if not path.is_file():
                raise InputError(f"{where}: no such model file")
            data = path.read_bytes()
        model = onnx.ModelProto()
        try:
            model.ParseFromString(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{where}: not an ONNX model, or truncated ({exc})") from exc
        if not model.HasField("graph") or model.ir_version <= 0:
            raise ModelError(f"{where}: not an ONNX model (no graph or IR version)")
        if not isinstance(source, bytes) and _has_external_data(model):
            _load_external_data(model, Path(source), where)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{where}: invalid ONNX model: {first}") from exc
    return model


def _load_external_data(model: onnx.ModelProto, path: Path, where: str) -> None:
    """Read every external tensor into the model, naming the first data file that is unusable."""
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in t.external_data}.get("location", "")
        if not location:
            raise ModelError(f"{where}: tensor {t.name!r} is stored as external data but names no data file "
                             "(no 'location'); save the model again")
        data = path.parent / location
        if not data.is_file():
            raise ModelError(f"{where}: tensor {t.name!r} stores its data in {str(data)!r}, {_not_a_file(data)}")
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError, onnx.checker.ValidationError) as exc:
        raise ModelError(f"{where}: cannot load external tensor data ({exc})") from exc


def _not_a_file(data: Path) -> str:
    """Why an external data path that is not a regular file cannot be read (the end of the message):
    missing, or a directory, a device, a FIFO or a socket, which exist but hold no tensor bytes."""
    if not data.exists():
        return "which is missing; copy the data file next to the model"
    what = ("a directory" if data.is_dir() else "a device" if data.is_char_device() or data.is_block_device()
            else "a FIFO (named pipe)" if data.is_fifo() else "a socket" if data.is_socket() else "not a regular file")
    return f"which is {what}, not a data file; point its 'location' at the tensor's data file"


def _has_external_data(model: onnx.ModelProto) -> bool:
    return any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer
    )


def model_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset, checked against the range Kelvin supports."""
    versions = {o.domain: o.version for o in model.opset_import}
    opset = versions.get("", versions.get("ai.onnx"))
    if opset is None:
        raise UnsupportedError("model imports no default ONNX opset")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UnsupportedError(f"opset {opset} is not supported (supported: {MIN_OPSET}..{MAX_OPSET})")
    return opset


def import_model(source: str | os.PathLike[str] | bytes | onnx.ModelProto) -> Graph:
    """Build the IR of an ONNX model: every node an OpNode, every initializer a constant."""
    model = load_model(source)
    where = "" if isinstance(source, (bytes, onnx.ModelProto)) else f"{source}: "
    opset = model_opset(model)
    try:  # strict: a declared shape that contradicts a weight (input 4, W 3x5) is an error here
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, RuntimeError) as exc:
        raise ModelError(f"{where}shape inference failed: {_first_line(exc)}; fix the model's shapes "
                         "or attributes") from exc
    gp = model.graph
    graph = Graph(name=gp.name or "model", opset=opset)
    graph.metadata = {p.key: p.value for p in model.metadata_props}
    if model.producer_name:
        graph.metadata.setdefault("producer", f"{model.producer_name} {model.producer_version}".strip())

    for init in gp.initializer:
        graph.constants[init.name] = numpy_helper.to_array(init)
    for vi in list(gp.value_info) + list(gp.input) + list(gp.output):
        info = _tensor_info(vi)
        if info is not None:
            graph.values[info.name] = info
    for vi in gp.input:
        if vi.name in graph.constants:
            continue  # an old-style input with a default value: a weight, not a signal
        _require_tensor(vi, "graph input")
        graph.inputs.append(vi.name)
    for vi in gp.output:
        _require_tensor(vi, "graph output")
        if vi.name in graph.outputs:
            raise ModelError(f"graph output {vi.name!r} is listed twice; list each output once")
        graph.outputs.append(vi.name)

    for i, proto in enumerate(gp.node):
        name = proto.name or f"{proto.op_type}_{i}"
        if name in graph:
            name = graph.fresh(name)
        if proto.domain not in ("", "ai.onnx"):
            raise UnsupportedError(f"node {name!r}: op {proto.domain}.{proto.op_type} is not supported")
        if proto.op_type == "Constant":
            graph.constants[proto.output[0]] = _constant_value(proto, name)
            continue
        try:
            schema = onnx.defs.get_schema(proto.op_type, opset, "")
        except onnx.defs.SchemaError as exc:
            raise UnsupportedError(f"node {name!r}: unknown op {proto.op_type}") from exc
        lookup(proto.op_type, schema.since_version, name)
        outputs = list(proto.output)
        attrs = implied_attributes(proto.op_type, _attributes(proto, schema), len(outputs))
        limit = OUTPUT_LIMIT.get(proto.op_type)
        if limit is not None and any(outputs[limit:]):
            raise UnsupportedError(
                f"node {name!r}: {proto.op_type} output {outputs[limit]!r} is not supported "
                f"(inference only computes the first {limit} output)"
            )
        node = OpNode(name=name, inputs=list(proto.input), outputs=outputs,
                      op=proto.op_type, attrs=attrs, version=schema.since_version)
        _check_dtypes(graph, node)
        check_node_shapes(graph, node)
        graph.add(node)
    graph.check()
    if not graph.outputs:
        raise ModelError(f"graph {graph.name!r} declares no outputs, so there is nothing to compute")
    log.info("imported %s: %d nodes, %d constants, opset %d", graph.name, len(graph),
             len(graph.constants), opset)
    return graph


def _tensor_info(vi: onnx.ValueInfoProto) -> TensorInfo | None:
    t = vi.type
    if t.WhichOneof("value") != "tensor_type":
        return None
    tt = t.tensor_type
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
    except (KeyError, TypeError, ValueError):
        dtype = np.dtype(object)
    shape: tuple[Dim, ...] | None = None
    if tt.HasField("shape"):
        shape = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim
        )
    return TensorInfo(vi.name, shape, dtype)


def _require_tensor(vi: onnx.ValueInfoProto, what: str) -> None:
    kind = vi.type.WhichOneof("value")
    if kind != "tensor_type":
        raise UnsupportedError(f"{what} {vi.name!r} has type {kind}; only tensors are supported")


def _constant_value(proto: onnx.NodeProto, name: str) -> np.ndarray:
    attr = proto.attribute[0] if proto.attribute else None
    if attr is None:
        raise ModelError(f"node {name!r}: Constant has no value")
    if attr.name == "value":
        return numpy_helper.to_array(attr.t)
    if attr.name in ("value_float", "value_int"):
        return np.array(onnx.helper.get_attribute_value(attr),
                        dtype=np.float32 if attr.name == "value_float" else np.int64)
    if attr.name in ("value_floats", "value_ints"):
        return np.array(onnx.helper.get_attribute_value(attr),
                        dtype=np.float32 if attr.name == "value_floats" else np.int64)
    raise UnsupportedError(f"node {name!r}: Constant attribute {attr.name} is not supported")


def _attributes(proto: onnx.NodeProto, schema: onnx.defs.OpSchema) -> dict:
    """Node attributes as Python/NumPy values, with the schema's defaults for omitted ones."""
    attrs: dict = {}
    for name, spec in schema.attributes.items():
        if spec.default_value.type != 0:
            attrs[name] = _attr_value(spec.default_value)
    for a in proto.attribute:
        if a.ref_attr_name:
            raise UnsupportedError(f"node {proto.name!r}: attribute references are not supported")
        attrs[a.name] = _attr_value(a)
    return attrs


def _attr_value(a: onnx.AttributeProto):
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, onnx.TensorProto):
        return numpy_helper.to_array(v)
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [s.decode("utf-8") for s in v]
    return v


def _check_dtypes(graph: Graph, node: OpNode) -> None:
    """Analog signals are real: compute ops must see float tensors."""
    if node.op not in COMPUTE_OPS:
        return
    # reduction axes are int64 and Pow's exponent may be an integer: only the signal is checked
    for t in node.inputs[:1] if node.op in ("ReduceMean", "ReduceSum", "Pow") else node.inputs:
        if not t:
            continue
        dtype = graph.constants[t].dtype if t in graph.constants else (
            graph.values[t].dtype if t in graph.values else None)
        if dtype is not None and dtype not in FLOAT_DTYPES:
            raise UnsupportedError(
                f"node {node.name!r}: {node.op} on {dtype} tensor {t!r} is not supported "
                "(analog signals are real-valued: use float16/32/64)"
            )
