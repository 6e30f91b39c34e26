"""The engine's nominal hardware models against the same compiled netlist in ngspice."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from compiler.pipeline import compile_model
from sim.engine.prepare import HardwareOptions, build_program
from sim.spice_commands import default_scale, run_network_spice
from sim.zoo import mlp

pytestmark = pytest.mark.ngspice


def _random_mlp(seed: int) -> onnx.ModelProto:
    """4-8-3 with random weights and biases (no training), as the issue's hostile case."""
    m = mlp((4, 8, 3), seed=seed)
    rng = np.random.default_rng(seed)
    for t in m.graph.initializer:
        arr = onnx.numpy_helper.to_array(t)
        t.CopyFrom(onnx.numpy_helper.from_array(rng.uniform(-1, 1, arr.shape).astype(arr.dtype), t.name))
    return m


@pytest.mark.parametrize("target, modes", [
    ("current", ("quantized",)),
    ("crossbar", ("quantized",)),
])
def test_random_mlp_nominal_hardware_matches_ngspice(target, modes):
    model = _random_mlp(3)
    c = compile_model(model, target)
    x = np.random.default_rng(1).uniform(0, 1, (8, 4)).astype(np.float32)
    name, out = c.graph.inputs[0], c.graph.outputs[0]
    opts = HardwareOptions(modes=modes, dac_bits=None, adc_bits=None)  # the network netlist has no converters
    engine = build_program(c, opts, dtype=np.float64).run({name: x})[out]
    spice = run_network_spice(c, {name: x}, default_scale(target), progress=False, workers=1)[out]
    fs = float(np.max(np.abs(engine)))
    err = float(np.max(np.abs(spice - engine))) / fs
    assert err <= 0.05, f"{target}: max error {100 * err:.2f} % of full scale"
