"""Shared test helpers: onnxruntime as the oracle, small model builders."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from compiler.ir import Graph
from sim.engine import execute


def ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run ``model`` in onnxruntime (IR version capped at 10, which it accepts)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.ir_version = min(m.ir_version, 10)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_graph(g: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    out = execute(g, feeds)
    return [out[name] for name in g.outputs]


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want|: the "relative" error of a whole tensor."""
    scale = float(np.max(np.abs(want))) or 1.0
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) / scale


def make_model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = onnx.helper.make_graph(nodes, "test", inputs, outputs, list(initializers))
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    model.ir_version = 8
    if any(not o.type.tensor_type.HasField("shape") for o in model.graph.output):
        model = onnx.shape_inference.infer_shapes(model)  # fills the output shapes left open
    onnx.checker.check_model(model)
    return model


def fvi(name: str, shape) -> onnx.ValueInfoProto:
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)


def init(name: str, value: np.ndarray) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.asarray(value), name)
