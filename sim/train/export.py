"""Write trained parameters back into the original ONNX graph.

Each trained linear bank carries the name of the ONNX node it was lowered from (Gemm, MatMul by a
constant, or Conv); what the lowering passes absorbed into it follows that node as a chain of
single-consumer nodes: a bias ``Add`` of a constant and a ``BatchNormalization``. The export sets
the node's weight initializer to the trained W (in the node's own layout: Gemm's transB and
alpha, MatMul's (in, out), Conv's kernel shape), puts the trained bias on Gemm's C / Conv's B or
on the absorbed Add's constant, and turns an absorbed BatchNormalization into the identity
(scale 1, B 0, mean 0, var 1 − ε), since its effect is already in the trained weights. Names,
opset, inputs and outputs stay those of the original. The result is then checked: Kelvin's ideal
engine on the exported file must reproduce the trained program's outputs, or the export fails
with a clear error instead of writing a wrong model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import metadata

import numpy as np
import onnx
from onnx import numpy_helper

from circuits.errors import OutputError, UnsupportedError
from circuits.files import write_bytes

Array = np.ndarray


def kelvin_version() -> str:
    try:
        return metadata.version("kelvin-analog")
    except metadata.PackageNotFoundError:
        return "0+checkout"


class _Inits:
    """Initializers by name, with copy-on-write for ones shared by several nodes."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.by_name = {t.name: t for t in model.graph.initializer}
        self.uses: dict[str, int] = {}
        for n in model.graph.node:
            for i in n.input:
                self.uses[i] = self.uses.get(i, 0) + 1

    def get(self, name: str) -> Array | None:
        t = self.by_name.get(name)
        return None if t is None else numpy_helper.to_array(t)

    def _forwarded(self, name: str) -> onnx.TensorProto | None:
        """The initializer an Identity chain forwards as ``name``: torch.onnx writes one tensor for equal
        ones (a fresh BatchNorm's weight and running_var) and Identity nodes for the others."""
        producers = {o: n for n in self.model.graph.node for o in n.output}
        for _ in range(len(producers)):
            node = producers.get(name)
            if node is None or node.op_type != "Identity":
                return None
            name = node.input[0]
            if name in self.by_name:
                return self.by_name[name]
        return None

    def set(self, node: onnx.NodeProto, slot: int, value: Array) -> None:
        name = node.input[slot]
        old = self.by_name.get(name)
        if old is None and (old := self._forwarded(name)) is not None:
            name = f"{name}__{node.name}"  # this node gets its own initializer; the Identity stays for others
            node.input[slot] = name
        if old is None:
            raise UnsupportedError(f"export: input {slot} of node {node.name!r} ({name!r}) is not an initializer")
        before = numpy_helper.to_array(old)
        if self.uses.get(name, 0) > 1:  # shared: give this node its own copy
            name = f"{name}__{node.name}"
            node.input[slot] = name
        value = np.asarray(value, dtype=before.dtype)  # same layout, or a broadcastable one of its own
        t = numpy_helper.from_array(value.reshape(before.shape) if value.size == before.size else value, name)
        if name in self.by_name:
            self.by_name[name].CopyFrom(t)
        else:
            self.model.graph.initializer.append(t)
            self.by_name[name] = self.model.graph.initializer[-1]


def _consumers(model: onnx.ModelProto, tensor: str) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if tensor in n.input]


def _absorbed_chain(model: onnx.ModelProto, node: onnx.NodeProto, inits: _Inits) -> tuple[onnx.NodeProto | None,
                                                                                           onnx.NodeProto | None]:
    """(bias Add, BatchNormalization) that follow ``node`` and were folded into its bank."""
    add = bn = None
    out = node.output[0]
    outputs = {o.name for o in model.graph.output}
    for _ in range(2):
        users = _consumers(model, out)
        if len(users) != 1 or out in outputs:
            break
        u = users[0]
        if u.op_type == "Add" and add is None and bn is None and any(i in inits.by_name for i in u.input):
            add = u
        elif u.op_type == "BatchNormalization" and bn is None:
            bn = u
        else:
            break
        out = u.output[0]
    return add, bn


def export_trained(original: str | os.PathLike[str] | onnx.ModelProto, banks: Mapping[str, Mapping[str, Array]],
                   metadata_props: Mapping[str, str] | None = None) -> onnx.ModelProto:
    """The original model with each bank's trained ``weights``/``bias`` (keyed by ONNX node name)."""
    model = onnx.load(original) if not isinstance(original, onnx.ModelProto) else original
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = _Inits(model)
    nodes = {n.name or f"{n.op_type}_{i}": n for i, n in enumerate(model.graph.node)}  # the importer's names
    for name, p in banks.items():
        node = nodes.get(name)
        if node is None:
            raise UnsupportedError(f"export: trained layer {name!r} has no node of that name in the original model")
        w = np.asarray(p["weights"], np.float64)
        b = None if p.get("bias") is None else np.asarray(p["bias"], np.float64)
        add, bn = _absorbed_chain(model, node, inits)
        if node.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("transA", 0):
                raise UnsupportedError(f"export: Gemm {name!r} with transA is not supported")
            alpha = float(attrs.get("alpha", 1.0))
            inits.set(node, 1, (w if attrs.get("transB", 0) else w.T) / alpha)
            if b is not None and len(node.input) > 2 and node.input[2]:
                beta = float(attrs.get("beta", 1.0))
                c = inits.get(node.input[2])
                inits.set(node, 2, np.broadcast_to(b / beta, c.shape if c is not None and c.size == b.size else b.shape))
                b = None
        elif node.op_type == "MatMul":
            inits.set(node, 1, w.T)
        elif node.op_type == "Conv":
            shape = inits.get(node.input[1]).shape
            inits.set(node, 1, w.reshape(shape))  # (out, C/G, *kernel), grouped (G, out/G, …) in order
            if b is not None and len(node.input) > 2 and node.input[2]:
                inits.set(node, 2, b.reshape(-1))
                b = None
        else:
            raise UnsupportedError(f"export: layer {name!r} is a {node.op_type}; Gemm, MatMul and Conv are exported")
        if b is not None:
            if add is None:
                if np.any(b != 0):
                    raise UnsupportedError(f"export: layer {name!r} learned a bias but has no bias input to hold it")
            else:
                slot = next(i for i, t in enumerate(add.input) if t in inits.by_name)
                old = inits.get(add.input[slot])
                inits.set(add, slot, b.reshape(old.shape) if old.size == b.size else b)
        elif add is not None:  # bias lives on the node now: the absorbed Add adds zero
            slot = next(i for i, t in enumerate(add.input) if t in inits.by_name)
            inits.set(add, slot, np.zeros_like(inits.get(add.input[slot])))
        if bn is not None:
            eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
            c = inits.get(bn.input[1]).shape
            for slot, value in ((1, 1.0), (2, 0.0), (3, 0.0), (4, 1.0 - eps)):
                inits.set(bn, slot, np.full(c, value))
    props = dict(metadata_props or {})
    props.setdefault("kelvin.version", kelvin_version())
    existing = {p.key: p for p in model.metadata_props}
    for k, v in props.items():
        if k in existing:
            existing[k].value = str(v)
        else:
            model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=str(v)))
    return model


def write_model(path: str | os.PathLike[str], model: onnx.ModelProto) -> None:
    if not str(path).endswith(".onnx"):
        raise OutputError(f"{path}: the trained model is written as an .onnx file")
    write_bytes(path, model.SerializeToString())
