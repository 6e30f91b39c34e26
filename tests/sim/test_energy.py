"""Transient settling and energy per inference (`sim.energy`) on a small current-mode MLP.

Oracles: the ``.op`` solution of the same chip and sample for the transient's final outputs;
static power × time for the energy of a settled circuit; analytic integrals and exponentials for the
helpers; in·out per layer for the MAC count; SCIENCE.md's Horowitz table for the digital reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from compiler.netlist import emit_netlist
from compiler.pipeline import compile_model
from sim.energy import (
    HOROWITZ_45NM_PJ,
    argmax_time,
    count_macs,
    digital_reference,
    energy_between,
    measure_dynamics,
    settling_time,
)
from sim.spice import SimJob, run_jobs
from sim.spice_commands import netlist_options
from tests.helpers import fvi, init, make_model

SCALE = 10e-9
# 6-5-3: hidden unit j reads inputs j and j+1; output 0 reads hidden 0 and a bias of 0.5, so the idle chip
# (inputs 0) answers class 0; outputs 1 and 2 read hidden 1, 3 and 2, 4. SAMPLES answer 2 (ideal
# y = [0.7, 1.5, 2.4]) and 1 (y = [1.5, 2, 1]): the argmax must change after the step.
W1 = np.array([[1.0 if i in (j, j + 1) else 0.0 for i in range(6)] for j in range(5)], np.float32)
W2 = np.array([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 1.0, 0], [0, 0, 1.0, 0, 1.0]], np.float32)
B2 = np.array([0.5, 0, 0], np.float32)
SAMPLES = np.array([[0.1, 0.1, 0.2, 0.4, 0.8, 1.0], [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]], np.float32)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    model = make_model(nodes, [fvi("x", ["N", 6])], [fvi("y", ["N", 3])],
                       [init("w1", W1), init("b1", np.zeros(5, np.float32)), init("w2", W2), init("b2", B2)])
    path = tmp_path_factory.mktemp("energy") / "mlp653.onnx"
    path.write_bytes(model.SerializeToString())
    return compile_model(path, "current")


def test_macs_are_in_times_out_per_layer(compiled):
    assert count_macs(compiled.graph) == 6 * 5 + 5 * 3


def test_digital_reference_is_one_mult_and_one_add_per_mac():
    ref = digital_reference(45)
    assert HOROWITZ_45NM_PJ["int8_mult"] == 0.2 and HOROWITZ_45NM_PJ["fp32_mult"] == 3.7
    assert ref.j_per_mac["int8"] == pytest.approx(0.23e-12)
    assert ref.j_per_mac["fp32"] == pytest.approx(4.6e-12)
    assert ref.energy_j["fp32"] == pytest.approx(45 * 4.6e-12)
    assert ref.macs_per_j["int8"] == pytest.approx(1 / 0.23e-12)


def test_energy_between_integrates_exactly_piecewise_linear_power():
    t = np.array([0.0, 1e-6, 3e-6, 4e-6])
    p = np.array([1e-6, 1e-6, 3e-6, 3e-6])  # 1 µW, ramp to 3 µW over 2 µs, 3 µW
    assert energy_between(t, p, 0.0, 4e-6) == pytest.approx(1e-12 + 4e-12 + 3e-12)
    assert energy_between(t, p, 0.5e-6, 1e-6) == pytest.approx(0.5e-12)


def test_settling_time_of_an_exponential_is_tau_ln_100():
    tau = 2e-6
    t = np.linspace(0, 40 * tau, 200_001)
    y = np.stack([1 - np.exp(-t / tau), 0.5 * (1 - np.exp(-t / (2 * tau)))], axis=1)
    assert settling_time(t, y, 0.01) == pytest.approx(2 * tau * np.log(100), rel=1e-3)  # the slower one
    winner, changed = argmax_time(t, np.stack([y[:, 0], 0.2 + 0 * t], axis=1))
    assert changed and winner == pytest.approx(-tau * np.log(0.8), rel=1e-3)  # 1 − e^(−t/τ) passes 0.2


@pytest.mark.ngspice
def test_transient_settles_to_the_op_point_and_energy_matches_static_power(compiled):
    dyn = measure_dynamics(compiled, SAMPLES, scale=SCALE, chip_seed=0, sizing="compact", window_s=1e-3)
    nl = emit_netlist(compiled.graph, compiled.target, netlist_options("current", SCALE, 10**9, 0, "compact"))
    ops = run_jobs([SimJob(f"op_{i}", nl.deck({"x": x}).render(), 120) for i, x in enumerate(SAMPLES)])
    want = np.stack([nl.read_outputs(r.raise_for_error().vectors)["y"] for r in ops])
    assert np.argmax(want, axis=1).tolist() == [2, 1]
    np.testing.assert_allclose(dyn.outputs, want, atol=1e-3 * np.abs(want).max())  # 0.1 % of full scale
    assert np.all(dyn.settling_time_s <= dyn.window_s / 2) and np.all(dyn.settling_time_s > 0)
    assert dyn.argmax_changed.all() and np.all(dyn.argmax_time_s <= dyn.window_s)
    for i, w in enumerate(dyn.waveforms):
        t_s, end = dyn.settling_time_s[i], float(w.time_s[-1])
        tail = w.outputs[w.time_s > 0.8 * end]  # settled and still: no step-to-step ringing
        assert np.ptp(tail, axis=0).max() < 1e-3 * np.abs(want).max()
        settled = energy_between(w.time_s, w.power_w, t_s, end)
        assert settled == pytest.approx(dyn.static_power_w[i] * (end - t_s), rel=0.01)
        assert dyn.energy_to_settle_j[i] == pytest.approx(energy_between(w.time_s, w.power_w, 0.0, t_s))
        assert 0 < dyn.energy_j[i] <= dyn.energy_to_settle_j[i] * (1 + 1e-9) or dyn.argmax_time_s[i] > t_s
    assert dyn.static_power_w == pytest.approx(1.8 * np.array(  # VDD · I(VDD) of the .op solution
        [-r.vectors["vsup_vdd#branch"][0] for r in ops]), rel=1e-3)
    assert np.all(dyn.idle_power_w > 0) and dyn.macs == 45
    assert dyn.macs_per_j == pytest.approx(45 / np.median(dyn.energy_j)) and dyn.ops_per_j == 2 * dyn.macs_per_j
