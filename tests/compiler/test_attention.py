"""Attention blocks exported from torch with both exporters: import, lower, run, against onnxruntime.

The files come from scripts/export_attention_examples.py (torch is not needed here). The
encoder block exercises LayerNorm (decomposed and as LayerNormalization), GELU (as Erf and
as Gelu), a causal mask (Where) and two-head attention; the tiny block is what the opamp
target turns into one netlist.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest

from circuits.data import model_file
from compiler.onnx_import import import_model
from compiler.pipeline import compile_model
from tests.helpers import ort_run, rel_err, run_graph

EXPORTERS = ("legacy", "dynamo")
BLOCKS = ("encoder", "tiny")


def _load(block: str, exporter: str) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    stem = f"attention_{block}_{exporter}"
    io = np.load(model_file("examples", f"{stem}.io.npz"))
    return onnx.load(model_file("examples", f"{stem}.onnx")), {"x": io["x"], "y": io["y"]}


def _inputs(io: dict[str, np.ndarray]) -> np.ndarray:
    """torch's batch plus 5 random samples (a different batch size than torch saw)."""
    rng = np.random.default_rng(5)
    extra = rng.standard_normal((5, *io["x"].shape[1:])).astype(np.float32)
    return np.concatenate([io["x"], extra])


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("target", ["opamp", "current", "crossbar"])
def test_block_matches_onnxruntime_within_1e_4(block: str, exporter: str, target: str) -> None:
    model, io = _load(block, exporter)
    x = _inputs(io)
    (want,) = ort_run(model, {"x": x})
    assert rel_err(want[:3], io["y"]) < 1e-4  # the file is what torch computed
    (imported,) = run_graph(import_model(model), {"x": x})
    assert rel_err(imported, want) < 1e-4
    (lowered,) = run_graph(compile_model(model, target).graph, {"x": x})
    assert lowered.shape == want.shape and rel_err(lowered, want) < 1e-4


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_encoder_attention_products_and_softmax_are_analog(exporter: str) -> None:
    model, _ = _load("encoder", exporter)
    graph = compile_model(model, "opamp").graph
    kinds = Counter(n.kind for n in graph.nodes)
    assert kinds["opamp.matmul"] == 2 and kinds["opamp.softmax"] == 1, kinds
    products = [n for n in graph.nodes if n.kind == "opamp.matmul"]
    # Q·Kᵀ: 2 heads × 6×6 scores, 8 terms each; attention×V: 2 heads × 6×8 outputs, 6 terms each
    assert sorted((n.lanes, n.primitive.inner) for n in products) == [(72, 8), (96, 6)]
    digital = {n.kind for n in graph.nodes if n.placement == "digital"}
    assert digital <= {"Where", "Sqrt", "Erf", "Gelu", "LayerNormalization"}, digital


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_tiny_block_is_all_analog_on_opamp(exporter: str) -> None:
    model, _ = _load("tiny", exporter)
    graph = compile_model(model, "opamp").graph
    assert {n.placement for n in graph.nodes} <= {"analog", "wiring"}
    kinds = Counter(n.kind for n in graph.nodes if n.placement == "analog")
    assert kinds == {"opamp.summer": 4, "opamp.matmul": 2, "opamp.elementwise_summer": 2, "opamp.softmax": 1}


def test_shapes_lost_behind_exported_reshapes_are_recovered():
    """The legacy export reshapes through Shape→Concat: ONNX inference loses the head shapes."""
    from compiler.passes import ConstantFold, EliminateDead, EliminateIdentity, InferShapes

    model, _ = _load("encoder", "legacy")
    graph = import_model(model)
    (softmax,) = [n for n in graph.nodes if getattr(n, "op", "") == "Softmax"]
    assert graph.shape(softmax.inputs[0]) is None
    for p in (EliminateIdentity(), ConstantFold(), EliminateDead()):
        p.run(graph)
    assert InferShapes().run(graph)
    assert graph.shape(softmax.inputs[0]) == ("N", 2, 6, 6)
    assert not InferShapes().run(graph)  # nothing left to learn
