"""Current-mode cell sizing presets: area and Pelgrom spread (analytic), and compact mirrors in ngspice.

Oracles: Pelgrom's σ(ΔVt) = A_vt/√(W·L) with the device card's A_vt; gate area Σ W·L·m counted from
the cells' transistor lists; the compact network simulated in ngspice against its quantized weights.
"""

from __future__ import annotations

import numpy as np
import pytest

from circuits.current import SynapseArray
from circuits.errors import ParameterError
from circuits.spice.current_cells import SIZINGS, CellSizing
from circuits.spice.devices import DeviceCard
from circuits.spice.emit_current import quantized_synapse_array
from compiler.ir import PrimitiveNode
from compiler.pipeline import compile_model
from sim import zoo
from sim.engine import execute
from sim.spice_commands import run_network_spice


def test_presets_report_area_and_pelgrom_sigma():
    card = DeviceCard.load()
    rep = {name: CellSizing.preset(name).report() for name in SIZINGS}
    d, c = rep["default"], rep["compact"]
    assert d["w_unit_m"] == 2e-6 and d["l_unit_m"] == 4e-6  # today's sizing is the default
    for r in rep.values():
        assert r["sigma_dvt_unit_v"] == pytest.approx(card.a_vt_v_m / np.sqrt(r["w_unit_m"] * r["l_unit_m"]))
        assert r["sigma_dvt_diode_v"] == pytest.approx(r["sigma_dvt_unit_v"] / 2)  # m_diode = 4 units
        n_ut = card.subthreshold_n * 0.025852
        assert r["sigma_copy_rel"] == pytest.approx(np.hypot(r["sigma_dvt_unit_v"] / n_ut, r["sigma_beta_unit"]))
    assert d["sigma_dvt_unit_v"] == pytest.approx(1.167e-3, rel=1e-3)  # 3.3 mV·µm / √8 µm²
    assert c["unit_area_m2"] < d["unit_area_m2"] / 3 and c["synapse_area_m2"] < d["synapse_area_m2"] / 3
    assert c["sigma_dvt_unit_v"] > 1.9 * d["sigma_dvt_unit_v"]
    assert c["i_spec_p_a"] == pytest.approx(d["i_spec_p_a"])  # same W/L: same weak-inversion range
    m = rep["minimum"]  # 0.5 µm × 1 µm: a quarter of compact's unit area, twice its spread, same W/L
    assert m["sigma_dvt_unit_v"] == pytest.approx(2 * c["sigma_dvt_unit_v"])
    assert m["i_spec_n_a"] == pytest.approx(c["i_spec_n_a"])
    with pytest.raises(ParameterError, match="compact"):
        CellSizing.preset("tiny")


@pytest.mark.ngspice
def test_compact_mirrors_still_compute_the_quantized_network():
    """Measured (ngspice 39, 8 inputs of this MLP, nominal devices): 1.8 % FS RMS, 5.9 % max."""
    compiled = compile_model(zoo.mlp((6, 5, 3), seed=0), "current")
    g = compiled.graph
    x = np.random.default_rng(1).uniform(0, 1, (4, 6)).astype(np.float32)
    q = g.copy()
    for node in q.topo():
        if isinstance(node, PrimitiveNode) and isinstance(node.primitive, SynapseArray):
            node.primitive = quantized_synapse_array(node.primitive)
    want = execute(q, {g.inputs[0]: x})[g.outputs[0]]
    got = run_network_spice(compiled, {g.inputs[0]: x}, 10e-9, workers=1, progress=False,
                            sizing="compact")[g.outputs[0]]
    err = (got - want) / np.max(np.abs(want)) * 100
    assert np.sqrt(np.mean(err**2)) < 3.0
    assert np.array_equal(got.argmax(1), want.argmax(1))
