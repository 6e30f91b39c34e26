"""The tiny attention block (d_model 8, sequence 4) as one op-amp netlist, in ngspice vs the engine.

Q·Kᵀ and attention×V are `opamp.matmul` banks and the softmax an `opamp.softmax` block; the
tests skip, naming the kind, while the circuit library has no netlist emitter for one of them.
Measured: 0.20 % FS at worst over the 10 samples. Slow: ngspice needs gmin stepping to find
the operating point of the whole block, about 70 CPU-seconds per sample (the blocks alone
converge in a second or two), so this test takes minutes.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from circuits.data import model_file
from circuits.errors import UnsupportedError
from circuits.spice.emit import emitter_for
from compiler.netlist import NetlistOptions, emit_netlist
from compiler.pipeline import compile_model
from sim.engine import execute
from sim.spice_commands import run_network_spice

pytestmark = [pytest.mark.ngspice, pytest.mark.slow]

MODEL = str(model_file("examples", "attention_tiny_legacy.onnx"))
ATTENTION_KINDS = ("opamp.matmul", "opamp.softmax")
SAMPLES = int(os.environ.get("KELVIN_SPICE_SAMPLES", "2"))
"""Inputs simulated: 2 in `make test` (ngspice takes about a minute per sample here); the issue's
10-input figure is ``KELVIN_SPICE_SAMPLES=10 pytest tests/compiler/test_attention_spice.py``."""
TOLERANCE_PCT_FS = 5.0


def _compiled_or_skip():
    for kind in ATTENTION_KINDS:
        try:
            emitter_for(kind, "attention")
        except UnsupportedError:
            pytest.skip(f"no SPICE netlist emitter for {kind} yet")
    return compile_model(MODEL, "opamp")


def test_tiny_attention_gets_a_complete_netlist():
    compiled = _compiled_or_skip()
    scale = compiled.target.default_scale
    nl = emit_netlist(compiled.graph, compiled.target, NetlistOptions(scale=scale))
    assert [len(p) for p in nl.input_ports.values()] == [32]
    assert [len(p) for p in nl.output_ports.values()] == [32]
    text = nl.deck().render()
    assert text.count(".subckt") >= 4 and ".op" in text


def test_tiny_attention_in_ngspice_matches_engine_within_5_pct_fs():
    compiled = _compiled_or_skip()
    x = (np.random.default_rng(3).uniform(-0.8, 0.8, (SAMPLES, 4, 8))).astype(np.float32)
    ideal = execute(compiled.graph, {"x": x})["y"]
    spice = run_network_spice(compiled, {"x": x}, compiled.target.default_scale, workers=2,
                              timeout_s=1800.0, progress=False)["y"]
    full_scale = float(np.max(np.abs(ideal)))
    err_pct = float(np.max(np.abs(spice - ideal))) / full_scale * 100
    assert spice.shape == ideal.shape and err_pct < TOLERANCE_PCT_FS, err_pct
