"""Issue 12 property: random valid small models (ops, shapes, long/unicode/colliding names) either
compile to a netlist that ngspice runs, or fail with one clear line; never an internal error."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from sim.cli import main
from tests.helpers import fvi, init, make_model

pytestmark = pytest.mark.ngspice

LONG = "serving_default_dense_input_" + "x" * 40
NAMES = st.one_of(
    st.sampled_from(["x", "y", "A", "a", "a.b", "a_b", "a-b", "入力", "выход", "é", "0start", "x y", "x\n.end"]),
    st.text(alphabet="ab_.é", min_size=1, max_size=6).map(lambda s: LONG + s),  # long, sharing a prefix
    st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s),
)
ACTIVATIONS = ["Relu", "Tanh", "Sigmoid", "LeakyRelu", "Clip", "Softmax", "Identity"]


@st.composite
def models(draw):
    """A chain of 1-3 layers on an [N, width] input; tensor and node names drawn from NAMES."""
    names = draw(st.lists(NAMES, min_size=8, max_size=8, unique=True))
    width = in_width = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    nodes, inits, cur = [], [], names[0]
    layers = draw(st.lists(st.sampled_from(["Gemm", "Act", "AddConst", "MulConst"]), min_size=1, max_size=3))
    for i, kind in enumerate(layers):
        out, tag = (names[i + 1] if i < len(layers) - 1 else names[7]), names[i + 4]
        if kind == "Gemm":
            n_out = draw(st.integers(1, 4))
            w, b = f"{tag}_w{i}", f"{tag}_b{i}"
            inits += [init(w, rng.uniform(-1, 1, (width, n_out)).astype(np.float32)),
                      init(b, rng.uniform(-0.5, 0.5, n_out).astype(np.float32))]
            nodes.append(helper.make_node("Gemm", [cur, w, b], [out], name=tag))
            width = n_out
        elif kind == "Act":
            op = draw(st.sampled_from(ACTIVATIONS))
            nodes.append(helper.make_node(op, [cur], [out], name=f"{op}_{tag}"))
        else:
            c, op = f"{tag}_c{i}", "Add" if kind == "AddConst" else "Mul"
            inits.append(init(c, rng.uniform(0.2, 1.0, (width,)).astype(np.float32)))
            nodes.append(helper.make_node(op, [cur, c], [out], name=f"{op}_{tag}"))
        cur = out
    model = make_model(nodes, [fvi(names[0], ["N", in_width])], [fvi(cur, ["N", width])], inits)
    return model, draw(st.sampled_from(["opamp", "current", "crossbar"]))


@given(models())
@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_random_small_models_compile_and_run_in_ngspice(case):
    model, target = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        onnx.save(model, path)
        code = main(["compile", str(path), "-o", str(Path(tmp) / "o"), "--target", target, "-q"])
        assert code in (0, 1)
        deck = Path(tmp) / "o" / "netlist.cir"
        if code != 0 or not deck.is_file():
            return
        proc = subprocess.run(["ngspice", "-b", "netlist.cir"], cwd=deck.parent, capture_output=True, text=True,
                              timeout=120)
        text = proc.stdout + proc.stderr
        assert proc.returncode == 0 and "Error" not in text and "already exists" not in text, text[-3000:]
