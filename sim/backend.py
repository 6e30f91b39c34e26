"""Kelvin as a standard ONNX backend (``onnx.backend.base.Backend``), executing with ideal devices.

    import sim.backend as kb
    rep = kb.prepare(model, device="CPU", target="opamp")
    outputs = rep.run([x])

Options: ``target`` (opamp | current | crossbar, default opamp), ``lower`` (False runs
the imported graph without lowering, for debugging a pass) and the engine's hardware choice:
``hardware="quantized,noise"`` (or a `sim.engine.prepare.HardwareOptions`) with the same
options as ``kelvin run`` (``noise``, ``chip_seed``, ``pcm_time_s``, ``drift_compensation``,
``weight_bits``, ``dac_bits``, ``adc_bits``, ``sizing``, ``seed``):

    rep = kb.prepare(model, target="crossbar", hardware="pcm", pcm_time_s=3600)
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from circuits.errors import InputError, ParameterError
from compiler.ir import Graph
from compiler.onnx_import import MAX_OPSET, import_model
from compiler.pipeline import compile_model
from sim.inputs import unexpected_feed
from sim.engine import execute


class KelvinRep(BackendRep):
    """A prepared model: the lowered graph, run with ideal device models."""

    def __init__(self, graph: Graph, program: Any = None, seed: int = 0) -> None:
        self.graph = graph
        self.program = program  # a hardware Program; None: ideal devices in the feeds' dtype
        self.rng = np.random.default_rng(seed)
        self._outputs = namedtuple("Outputs", [f"o{i}" for i in range(len(graph.outputs))])  # type: ignore[misc]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Run on a list of arrays (graph input order), a dict by name, or a single array."""
        if isinstance(inputs, Mapping):
            feeds = dict(inputs)
            extra = [n for n in feeds if n not in self.graph.inputs]
            if extra:
                raise InputError(f"run: {unexpected_feed(self.graph, str(extra[0]))}")
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            if not isinstance(inputs, (list, tuple)):
                raise InputError(f"run: a list of arrays (one per graph input), a dict by name or an array, "
                                 f"got {type(inputs).__name__}")
            seq: Sequence[np.ndarray] = list(inputs)
            if len(seq) != len(self.graph.inputs):
                raise InputError(f"run: {len(seq)} array(s) for the graph's {len(self.graph.inputs)} input(s) "
                                 f"({', '.join(self.graph.inputs)})")
            feeds = dict(zip(self.graph.inputs, seq))
        result = execute(self.graph, feeds) if self.program is None else self.program.run(feeds, rng=self.rng)
        return self._outputs(*(result[name] for name in self.graph.outputs))


class KelvinBackend(Backend):
    """ONNX backend API over Kelvin's compiler and ideal engine (CPU only)."""

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> KelvinRep:
        """Import, lower to ``target`` (default opamp) unless ``lower=False``, and wrap."""
        if not cls.supports_device(device):
            raise ParameterError(f"device: Kelvin runs on CPU only, not {device!r}")
        target = kwargs.pop("target", "opamp")
        lower = kwargs.pop("lower", True)
        hardware = kwargs.pop("hardware", None)
        if hardware is None and kwargs:
            raise ParameterError(f"prepare: {', '.join(sorted(kwargs))} without hardware=...; give hardware "
                                 "(e.g. hardware='noise', noise=1e-2) or drop them")
        from sim.engine.prepare import HardwareOptions, build_program
        if hardware is not None and not isinstance(hardware, (str, HardwareOptions)):
            raise ParameterError(f"hardware: a mode string such as 'quantized,noise' or a HardwareOptions, "
                                 f"got {type(hardware).__name__}")
        if hardware is None:
            graph = compile_model(model, target).graph if lower else import_model(model)
            return KelvinRep(graph)
        if isinstance(hardware, HardwareOptions):
            opts = hardware
        else:
            known = {f.name for f in dataclasses.fields(HardwareOptions)} - {"modes"}
            if unknown := sorted(set(kwargs) - known):
                raise ParameterError(f"prepare: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
            opts = HardwareOptions.parse(hardware, **kwargs)
        compiled = compile_model(model, target)
        return KelvinRep(compiled.graph, build_program(compiled, opts), seed=opts.seed)

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Any, device: str = "CPU",
                 outputs_info: Sequence[tuple[np.dtype, tuple[int, ...]]] | None = None, **kwargs: Any):
        """Run a single node by wrapping it in a one-node model (inputs are graph inputs)."""
        if not isinstance(node, onnx.NodeProto):
            raise InputError(f"run_node: a NodeProto, got {type(node).__name__}")
        arrays = [a if isinstance(a, np.ndarray) else np.asarray(a, np.float32)  # a list: the engine's float32
                  for a in (inputs.values() if isinstance(inputs, Mapping) else inputs)]
        vi = [onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
              for n, a in zip(node.input, arrays)]
        opset = onnx.helper.make_opsetid("", min(onnx.defs.onnx_opset_version(), MAX_OPSET))
        bare = onnx.helper.make_model(onnx.helper.make_graph(
            [node], "run_node", vi, [onnx.helper.make_empty_tensor_value_info(n) for n in node.output]),
            opset_imports=[opset])
        try:  # the outputs' types and shapes, which the importer's checker wants declared
            typed = {v.name: v for v in onnx.shape_inference.infer_shapes(bare).graph.value_info}
        except (onnx.shape_inference.InferenceError, RuntimeError) as exc:
            raise InputError(f"run_node: node {node.name or node.op_type!r}: {exc}") from exc
        outs = [typed[n] if n in typed else onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                for n in node.output]
        model = onnx.helper.make_model(onnx.helper.make_graph([node], "run_node", vi, outs), opset_imports=[opset])
        model.ir_version = min(model.ir_version, 10)
        return cls.run_model(model, arrays, device, **kwargs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        try:
            return Device(device).type == DeviceType.CPU
        except (AttributeError, TypeError, ValueError, KeyError):  # None, 3, "TPU": not a device onnx knows
            return False


prepare = KelvinBackend.prepare
run_model = KelvinBackend.run_model
run_node = KelvinBackend.run_node
supports_device = KelvinBackend.supports_device
is_compatible = KelvinBackend.is_compatible
