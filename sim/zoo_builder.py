"""`GraphBuilder`: seeded ONNX graphs from ``onnx.helper``, shared by the zoo and the digits trainer.

Kept apart from `zoo` so `zoo_train` (which `zoo.digits_mlp` calls to train) can build models
without importing `zoo` back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from circuits.errors import ParameterError

IR_VERSION = 10
DEFAULT_OPSET = 17
MIN_OPSET = 13  # Softmax/Flatten/BatchNormalization semantics used here are stable from 13 on


class GraphBuilder:
    """Collects nodes and float32 initializers, then emits a checked ``ModelProto``."""

    def __init__(self, name: str, rng: np.random.Generator | None = None) -> None:
        self.name = name
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def param(self, name: str, value: np.ndarray) -> str:
        """Add a float32 initializer and return its name."""
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: Sequence[str], output: str, **attrs: object) -> str:
        """Add one single-output node named after its output; return the output name."""
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=output, **attrs))
        return output

    def conv(self, x: str, name: str, c_in: int, c_out: int, k: int, *, stride: int = 1,
             pad: int = 0, groups: int = 1, bias: bool = False, gain: float = 2.0) -> str:
        """Conv with He-style weights N(0, gain / fan_in); a bias only if asked."""
        fan_in = c_in // groups * k * k
        w = self.rng.normal(0.0, np.sqrt(gain / fan_in), (c_out, c_in // groups, k, k))
        inputs = [x, self.param(f"{name}.weight", w)]
        if bias:
            inputs.append(self.param(f"{name}.bias", self.rng.normal(0.0, 0.1, c_out)))
        return self.node("Conv", inputs, name, kernel_shape=[k, k], strides=[stride, stride],
                         pads=[pad] * 4, group=groups)

    def batchnorm(self, x: str, name: str, c: int, scale: tuple[float, float] = (0.5, 1.0)) -> str:
        """Inference BatchNormalization with random scale, bias, running mean and variance."""
        gamma = self.rng.uniform(*scale, c)
        beta = self.rng.normal(0.0, 0.1, c)
        mean = self.rng.normal(0.0, 0.1, c)
        var = self.rng.uniform(0.5, 1.5, c)
        inputs = [x] + [self.param(f"{name}.{p}", v) for p, v in
                        (("weight", gamma), ("bias", beta), ("running_mean", mean),
                         ("running_var", var))]
        return self.node("BatchNormalization", inputs, name, epsilon=1e-5)

    def gemm(self, x: str, name: str, n_in: int, n_out: int, gain: float = 1.0,
             out: str | None = None) -> str:
        """Fully connected layer y = x W^T + b (Gemm, transB=1), W ~ N(0, gain / n_in)."""
        w = self.param(f"{name}.weight", self.rng.normal(0.0, np.sqrt(gain / n_in), (n_out, n_in)))
        b = self.param(f"{name}.bias", self.rng.normal(0.0, 0.1, n_out))
        return self.node("Gemm", [x, w, b], out or name, transB=1)

    def build(self, inp: tuple[str, Sequence[int | str]], out: tuple[str, Sequence[int | str]],
              opset: int = DEFAULT_OPSET, doc: str = "") -> onnx.ModelProto:
        """Assemble, shape-infer and check the model; the last node must produce ``out``."""
        _check_opset(opset)
        x = helper.make_tensor_value_info(inp[0], TensorProto.FLOAT, list(inp[1]))
        y = helper.make_tensor_value_info(out[0], TensorProto.FLOAT, list(out[1]))
        graph = helper.make_graph(self.nodes, self.name, [x], [y], self.inits, doc_string=doc)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                  producer_name="kelvin.sim.zoo", doc_string=doc)
        model.ir_version = IR_VERSION
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        onnx.checker.check_model(model, full_check=True)
        return model


def _check_opset(opset: int) -> None:
    """Reject opsets whose op semantics differ from what the builders assume."""
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ParameterError(
            f"zoo: opset {opset} is outside {MIN_OPSET}..{newest}; pick one in that range")
