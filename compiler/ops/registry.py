"""Registry of the NumPy semantics of ONNX ops, keyed by op type and schema version.

The compiler uses it to constant-fold; the simulator uses it to execute ONNX-level nodes
that no pass has lowered yet. The model's opset picks the schema version through
``onnx.defs.get_schema``; a kernel declares which schema versions it implements.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from circuits.errors import UnsupportedError

# kernel(inputs, attrs, version) -> outputs.
#   inputs: one entry per ONNX input slot; an omitted optional input is None.
#   attrs: every attribute, with schema defaults already filled in by the importer
#          (ints, floats, strings, lists, numpy arrays for tensors).
#   version: the schema since_version the model's opset resolves to.
#   returns: a list with one array per declared node output (the caller drops extras).
Kernel = Callable[[Sequence[np.ndarray | None], Mapping[str, Any], int], list[np.ndarray]]


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One ONNX op's semantics: the schema versions it covers and its kernel."""

    op: str
    versions: tuple[int, ...]
    kernel: Kernel


OPS: dict[str, OpSpec] = {}


def register(op: str, versions: Sequence[int]) -> Callable[[Kernel], Kernel]:
    """Decorator: register ``kernel`` as the semantics of ``op`` for these schema versions."""

    def deco(fn: Kernel) -> Kernel:
        if op in OPS:
            raise RuntimeError(f"op {op} registered twice")
        OPS[op] = OpSpec(op, tuple(sorted(versions)), fn)
        return fn

    return deco


def lookup(op: str, version: int, node: str = "?") -> OpSpec:
    """The spec of ``op`` at schema ``version``, or an UnsupportedError naming what is supported."""
    spec = OPS.get(op)
    if spec is None:
        raise UnsupportedError(
            f"node {node!r}: op {op} is not supported; supported ops: {', '.join(sorted(OPS))}"
        )
    if version not in spec.versions:
        raise UnsupportedError(
            f"node {node!r}: op {op} schema version {version} is not supported "
            f"(supported versions: {', '.join(map(str, spec.versions))})"
        )
    return spec
