"""Kelvin's IR: a networkx graph of typed nodes joined by named tensors.

A node is either an ONNX-level op (`OpNode`, executed with the op's NumPy semantics) or a
bank of analog primitives (`PrimitiveNode`, executed with the primitive's ideal function).
Edges run producer -> consumer and carry the tensor name; the `Graph` class keeps them in
step with each node's input/output lists, so passes only call its helpers.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import networkx as nx
import numpy as np

from circuits.errors import ModelError

if TYPE_CHECKING:
    from circuits.base import Primitive

Dim = int | str | None
"""A tensor dimension: a size, a symbolic name (e.g. the batch "N"), or unknown."""

Placement = Literal["analog", "wiring", "digital"]


@dataclass(slots=True)
class TensorInfo:
    """Static facts about one tensor: shape (None when the rank is unknown) and dtype."""

    name: str
    shape: tuple[Dim, ...] | None
    dtype: np.dtype

    @property
    def static(self) -> bool:
        """True when every dimension is a known integer."""
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)


@dataclass(slots=True, eq=False)
class Node:
    """Common part of every IR node: a unique name and its input/output tensor names.

    An empty input name stands for an omitted optional ONNX input.
    """

    name: str
    inputs: list[str]
    outputs: list[str]

    @property
    def kind(self) -> str:
        raise NotImplementedError

    @property
    def placement(self) -> Placement:
        raise NotImplementedError


WIRING_OPS = frozenset(
    {
        "Flatten", "Reshape", "Transpose", "Concat", "Split", "Identity", "Dropout", "Squeeze",
        "Unsqueeze", "Shape", "Gather", "Slice", "Cast", "Constant", "ConstantOfShape",
        "Expand", "kelvin.Im2Col", "kelvin.ColToImage",
    }
)
"""Ops that only route or relabel signals: wires, no devices."""


@dataclass(slots=True, eq=False)
class OpNode(Node):
    """An ONNX (or kelvin-internal) op, not lowered to a primitive.

    ``version`` is the op schema's since_version that the model's opset resolves to;
    ``attrs`` holds every attribute with the schema defaults filled in.
    """

    op: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    version: int = 1

    @property
    def kind(self) -> str:
        return self.op

    @property
    def placement(self) -> Placement:
        return "wiring" if self.op in WIRING_OPS else "digital"


@dataclass(slots=True, eq=False)
class PrimitiveNode(Node):
    """A bank of identical analog primitives from `circuits`, computing one tensor.

    ``copies`` is how many physical copies of the bank run in parallel (one per spatial
    position of an unrolled convolution); ``reuse`` how many times one copy is used per
    sample when the target time-multiplexes instead; ``lanes`` how many output elements
    one copy computes (the count elementwise banks are billed for).
    ``origin`` names the ONNX node(s) the bank was lowered from.
    """

    primitive: Primitive | None = None
    target: str = ""
    copies: int = 1
    lanes: int = 1
    reuse: int = 1
    origin: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        assert self.primitive is not None
        return self.primitive.kind

    @property
    def placement(self) -> Placement:
        return "analog"


class Graph:
    """A model as a DAG of nodes; tensors are named, constants held as NumPy arrays."""

    def __init__(self, name: str = "model", opset: int = 17) -> None:
        self.name = name
        self.opset = opset
        self.nx = nx.DiGraph()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.constants: dict[str, np.ndarray] = {}
        self.values: dict[str, TensorInfo] = {}
        self.metadata: dict[str, str] = {}
        self._producer: dict[str, str] = {}
        self._consumers: dict[str, set[str]] = {}
        self._counter = itertools.count()

    # ----------------------------------------------------------------- queries
    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def __contains__(self, name: str) -> bool:
        return name in self.nx

    def node(self, name: str) -> Node:
        return self.nx.nodes[name]["node"]

    @property
    def nodes(self) -> list[Node]:
        """All nodes in topological order."""
        return list(self.topo())

    def topo(self) -> Iterator[Node]:
        """Walk nodes in a topological order that is stable for a given graph."""
        for name in nx.lexicographical_topological_sort(self.nx, key=self._order_key):
            yield self.nx.nodes[name]["node"]

    def _order_key(self, name: str) -> int:
        return self.nx.nodes[name]["order"]

    def producer(self, tensor: str) -> Node | None:
        """The node that computes ``tensor``; None for inputs and constants."""
        name = self._producer.get(tensor)
        return None if name is None else self.node(name)

    def consumers(self, tensor: str) -> list[Node]:
        """The nodes that read ``tensor``, in insertion order."""
        names = self._consumers.get(tensor, ())
        return sorted((self.node(n) for n in names), key=lambda n: self._order_key(n.name))

    def is_constant(self, tensor: str) -> bool:
        return tensor in self.constants

    def is_used(self, tensor: str) -> bool:
        return bool(self._consumers.get(tensor)) or tensor in self.outputs

    def info(self, tensor: str) -> TensorInfo | None:
        return self.values.get(tensor)

    def shape(self, tensor: str) -> tuple[Dim, ...] | None:
        if tensor in self.constants:
            return tuple(self.constants[tensor].shape)
        info = self.values.get(tensor)
        return None if info is None else info.shape

    # --------------------------------------------------------------- mutation
    def fresh(self, prefix: str) -> str:
        """A node or tensor name not used yet in this graph."""
        while True:
            name = f"{prefix}__{next(self._counter)}"
            if name not in self.nx and name not in self.values and name not in self.constants:
                return name

    def add(self, node: Node, *, order: int | None = None) -> Node:
        """Insert ``node``, wiring edges from producers of its inputs to consumers of its outputs."""
        if node.name in self.nx:
            raise ModelError(f"duplicate node name {node.name!r}")
        for out in node.outputs:
            if out in self._producer:
                raise ModelError(
                    f"tensor {out!r} is produced by both {self._producer[out]!r} and {node.name!r}"
                )
        self.nx.add_node(node.name, node=node, order=next(self._counter) if order is None else order)
        for out in node.outputs:
            if out:
                self._producer[out] = node.name
                for c in self._consumers.get(out, ()):
                    self.nx.add_edge(node.name, c)
        for inp in node.inputs:
            if inp:
                self._consumers.setdefault(inp, set()).add(node.name)
                p = self._producer.get(inp)
                if p is not None:
                    self.nx.add_edge(p, node.name)
        return node

    def remove(self, node: Node | str) -> Node:
        """Delete a node; its output tensors lose their producer."""
        node = self.node(node) if isinstance(node, str) else node
        for inp in node.inputs:
            users = self._consumers.get(inp)
            if users is not None:
                users.discard(node.name)
                if not users:
                    del self._consumers[inp]
        for out in node.outputs:
            if self._producer.get(out) == node.name:
                del self._producer[out]
        self.nx.remove_node(node.name)
        return node

    def replace(self, old: Node, new: list[Node]) -> None:
        """Swap ``old`` for ``new`` nodes (which must produce old's outputs), keeping its place."""
        order = self.nx.nodes[old.name]["order"]
        self.remove(old)
        for i, n in enumerate(new):
            self.add(n, order=order if i == 0 else None)

    def set_inputs(self, node: Node, inputs: list[str]) -> None:
        """Rewire a node's inputs, keeping the indices and edges right."""
        order = self.nx.nodes[node.name]["order"]
        self.remove(node)
        node.inputs = list(inputs)
        self.add(node, order=order)

    def set_outputs(self, node: Node, outputs: list[str]) -> None:
        """Rename a node's output tensors, keeping edges right."""
        order = self.nx.nodes[node.name]["order"]
        self.remove(node)
        node.outputs = list(outputs)
        self.add(node, order=order)

    def replace_uses(self, old: str, new: str) -> None:
        """Make every consumer of tensor ``old`` (and the graph outputs) read ``new`` instead."""
        for c in self.consumers(old):
            self.set_inputs(c, [new if t == old else t for t in c.inputs])
        if old in self.outputs:
            self.outputs = [new if t == old else t for t in self.outputs]

    def add_constant(self, value: np.ndarray, prefix: str = "const") -> str:
        name = self.fresh(prefix)
        self.constants[name] = np.asarray(value)
        return name

    def prune_constants(self) -> None:
        """Drop constants nobody reads any more."""
        for name in [c for c in self.constants if not self.is_used(c)]:
            del self.constants[name]

    def copy(self) -> Graph:
        """A deep copy (constants shared: passes never mutate arrays in place)."""
        g = Graph(self.name, self.opset)
        g.inputs, g.outputs = list(self.inputs), list(self.outputs)
        g.constants = dict(self.constants)
        g.values = {k: copy.copy(v) for k, v in self.values.items()}
        g.metadata = dict(self.metadata)
        for node in self.topo():
            g.add(copy.copy(node), order=self._order_key(node.name))
            n = g.node(node.name)
            n.inputs, n.outputs = list(node.inputs), list(node.outputs)
            if isinstance(n, OpNode):
                n.attrs = dict(n.attrs)
        g._counter = itertools.count(next(copy.copy(self._counter)))
        return g

    def check(self) -> None:
        """Raise ModelError if any used tensor has no source or the graph has a cycle."""
        if not nx.is_directed_acyclic_graph(self.nx):
            raise ModelError(f"graph {self.name!r} has a cycle")
        known = set(self.inputs) | set(self.constants) | set(self._producer)
        for node in self.topo():
            for t in node.inputs:
                if t and t not in known:
                    raise ModelError(f"node {node.name!r} reads tensor {t!r} that nothing produces")
        for t in self.outputs:
            if t not in known:
                raise ModelError(f"graph output {t!r} is not produced by any node")
