"""The compile pipeline, as a plain list of passes you can read top to bottom."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import onnx

from circuits.errors import ParameterError
from circuits.targets import Target, get_target
from compiler.ir import Graph
from compiler.onnx_import import import_model
from compiler.passes import (
    ConstantFold,
    ConvToMatrix,
    EliminateDead,
    EliminateIdentity,
    FoldBatchNorm,
    FuseBiasAdd,
    GemmToDense,
    InferShapes,
    MapToPrimitives,
    Pass,
    PoolToWindows,
)

log = logging.getLogger(__name__)


def normalize_passes() -> list[Pass]:
    """Target-independent clean-up and canonical forms (Dense, windows)."""
    return [
        EliminateIdentity(),
        ConstantFold(),
        EliminateDead(),
        InferShapes(),
        GemmToDense(),
        FuseBiasAdd(),
        FoldBatchNorm(),
        ConvToMatrix(),
        PoolToWindows(),
    ]


def lowering_pipeline(target: str | Target = "opamp") -> list[Pass]:
    """Everything from an imported graph to primitives of ``target``."""
    if not isinstance(target, (str, Target)):
        raise ParameterError(f"target: a name such as 'opamp', 'current' or 'crossbar', got {target!r}")
    t = get_target(target) if isinstance(target, str) else target
    return [*normalize_passes(), MapToPrimitives(t), EliminateDead()]


@dataclass(slots=True)
class PassRecord:
    """What one pass did: its name, whether it changed the graph, its wall time."""

    name: str
    changed: bool
    seconds: float
    nodes_after: int


@dataclass(slots=True)
class Compiled:
    """A compiled model: the lowered graph, the target, and what each pass did."""

    graph: Graph
    target: Target
    records: list[PassRecord] = field(default_factory=list)


def run_passes(graph: Graph, passes: Sequence[Pass],
               on_pass: Callable[[Pass], None] | None = None) -> list[PassRecord]:
    """Run ``passes`` in order on ``graph`` (in place)."""
    records = []
    for p in passes:
        start = time.perf_counter()
        changed = p.run(graph)
        records.append(PassRecord(p.name, changed, time.perf_counter() - start, len(graph)))
        log.debug("pass %s: changed=%s, %d nodes", p.name, changed, len(graph))
        if on_pass is not None:
            on_pass(p)
    graph.check()
    return records


def compile_model(source: str | os.PathLike[str] | bytes | onnx.ModelProto | Graph,
                  target: str | Target = "opamp",
                  on_pass: Callable[[Pass], None] | None = None) -> Compiled:
    """Import (unless given a Graph) and lower a model to ``target``'s primitives."""
    t = get_target(target) if isinstance(target, str) else target
    graph = source if isinstance(source, Graph) else import_model(source)
    records = run_passes(graph, lowering_pipeline(t), on_pass)
    return Compiled(graph, t, records)
