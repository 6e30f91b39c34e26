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
    m = rep["minimum"]  # 0.26 µm × 0.52 µm: 1/15 of compact's unit area, 3.8x its spread, same W/L
    assert m["sigma_dvt_unit_v"] == pytest.approx(c["sigma_dvt_unit_v"] * np.sqrt(2 / 0.1352))
    assert m["i_spec_n_a"] == pytest.approx(c["i_spec_n_a"])
    with pytest.raises(ParameterError, match="compact"):
        CellSizing.preset("tiny")


@pytest.mark.parametrize("name", SIZINGS)
def test_trimmed_copies_are_drawable(name):
    """Every transistor of every current-mode cell, trimmed copies included (they are the narrowest),
    is at least the card's minimum width and length: the minimum preset is the smallest W/L = 1/2 unit
    whose Early-trimmed copies still meet W_min, at the shortest L the card's Early table measures."""
    from circuits.spice.emit_current import OperatingPoint, readout_devices, soma_devices, synapse_devices
    sizing = CellSizing.preset(name)
    card = sizing.card
    op = OperatingPoint.at(sizing, 10e-9)
    devices = soma_devices(op) + synapse_devices(op) + readout_devices(op)
    assert min(t.w_m for t in devices) >= card.w_min_m > 0
    assert min(t.l_m for t in devices) >= card.l_min_m
    assert sizing.l_unit_m >= card.early_table[0][0]
    if name == "minimum":  # and no smaller: 4 % narrower units would trim a copy below W_min
        assert min(t.w_m for t in devices) < card.w_min_m * 1.04


def test_trims_scale_the_effective_width():
    """BSIM3 currents follow W_eff = W − 2·WINT: a copy meant to carry r times its diode's current is
    drawn at (W − 2·WINT)·r + 2·WINT (the card's WINT, the .lib's wint)."""
    card = DeviceCard.load()
    import re
    assert {float(v) for v in re.findall(r"wint=([0-9.e+-]+)", card.text)} == {card.wint_m}
    w = CellSizing.preset("minimum").w_unit_m
    drawn = card.scaled_width_m(w, 0.8)
    assert (drawn - 2 * card.wint_m) / (w - 2 * card.wint_m) == pytest.approx(0.8)


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
