"""The PWM/integrator crossbar readout against its ideal function, the engine, and charge arithmetic.

Oracles: the engine's ``quantized`` crossbar kernel (`sim.engine.maps.Quantize` as DAC and ADC) for
the ideal function; Q = C·V on hand-integrated pulse areas for the design equations; ngspice
transients for the circuit, within the block's budget (analog ≤ 0.1 % FS; codes within ½ LSB +
0.1 % FS of the unquantized sum, i.e. equal to the ideal codes away from decision thresholds).
"""

from __future__ import annotations

import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from circuits.errors import ParameterError
from circuits.spice.crossbar_pwm import PwmColumnBlock, codes, readout_opamp
from circuits.spice.crossbar_pwm_bench import read_slice, schedule, slice_deck, slice_errors
from sim.spice import SimJob, run_inline


def _gemm(w: np.ndarray, b: np.ndarray) -> onnx.ModelProto:
    out_f, in_f = w.shape
    g = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", in_f])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out_f])],
        [numpy_helper.from_array(w.astype(np.float32), "w"), numpy_helper.from_array(b.astype(np.float32), "b")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _simulate(columns, points):
    t0 = time.perf_counter()
    res = run_inline(SimJob("pwm", slice_deck(columns, points).render(), 300.0))
    assert res.ok, res.error
    return read_slice(columns, res.vectors, len(points)), time.perf_counter() - t0


def test_codes_follow_the_quantizer_rule() -> None:
    """Independent NumPy statement of the mid-tread rule, including the half-step tie and saturation."""
    blk = PwmColumnBlock(np.ones(3))
    q = blk.dac()
    x = np.array([0.0, 0.5 * q.step_v, -0.5 * q.step_v, 0.49 * q.step_v, 1.0, -1.0, 3.0, -3.0, 0.3])
    want = np.clip(np.floor(x / q.step_v + 0.5), -127, 127)
    assert np.array_equal(codes(q, x), want)
    assert codes(q, np.array([0.5 * q.step_v, -0.5 * q.step_v])).tolist() == [1.0, 0.0]


def test_ideal_function_is_the_engines_quantized_crossbar() -> None:
    """y = clip(Q_adc(Σ w·Q_dac(x) + b), ±y_fs) equals the engine's crossbar kernel under ``quantized``,
    DAC and ADC saturation included (inputs beyond x_fs, a y_fs below the largest output)."""
    from compiler.pipeline import compile_model
    from sim.engine import Program
    from sim.engine.hardware import Quantized

    rng = np.random.default_rng(3)
    w = rng.normal(0.0, 0.5, (3, 16)).astype(np.float32).astype(np.float64)
    b = rng.normal(0.0, 0.3, 3).astype(np.float32).astype(np.float64)
    x = rng.uniform(-1.3, 1.3, (200, 16))
    x_fs, y_fs = 1.0, 2.0
    graph = compile_model(_gemm(w, b), "crossbar").graph
    prog = Program(graph, dtype=np.float64, hardware=Quantized("crossbar", x_fs=x_fs, y_fs=y_fs))
    engine = prog.run({"x": x})["y"]
    blocks = [PwmColumnBlock(w[o], float(b[o]), x_fs=x_fs, y_fs=y_fs) for o in range(3)]
    ours = np.concatenate([blk.ideal(x) for blk in blocks], axis=1)
    assert np.any(np.isclose(np.abs(ours), y_fs, rtol=1e-12))  # saturation is exercised
    assert np.any(np.abs(x) > x_fs)
    np.testing.assert_array_equal(ours, engine)


def test_design_equations_give_the_charge_of_the_ideal_sum() -> None:
    """Hand-integrated charge: V = −Σ (G+ − G−)·sign(k)·V_read·|k|·t_LSB / (C_int + G_tot/ω_t) = −a_out·s."""
    rng = np.random.default_rng(4)
    blk = PwmColumnBlock(rng.normal(0, 0.5, 10), bias=-0.4, devices_per_side=2, y_fs=3.0)
    x = rng.uniform(-1, 1, (5, 10))
    k = np.concatenate([codes(blk.dac(), x), np.full((5, 1), 127.0)], axis=1)  # bias row: full window
    g_pos, g_neg = blk.conductances()
    sch = schedule([blk])
    areas = np.array([[np.trapezoid([v for _, v in sch.pulses(np.array([kk]), blk.v_read_v)],
                                    [t for t, _ in sch.pulses(np.array([kk]), blk.v_read_v)])
                       for kk in row] for row in k])
    np.testing.assert_allclose(areas, np.sign(k) * np.abs(k) * blk.t_lsb_s * blk.v_read_v, rtol=1e-12, atol=1e-24)
    charge = areas @ (blk.devices_per_side * (g_pos - g_neg))
    v_int = -charge / (blk.c_int_f + blk.g_total_s / blk.omega_t)
    np.testing.assert_allclose(-v_int / blk.out_volts_per_unit, blk.ideal_sum(x).ravel(), rtol=1e-12)
    assert blk.t_pwm_s == pytest.approx(127 * 0.5e-9)


def test_an_overloaded_integrator_is_refused() -> None:
    slow = readout_opamp(time_scale=1.0)  # the nominal 1 MHz card at a 0.5 ns LSB
    with pytest.raises(ParameterError, match="t_lsb_s/opamp"):
        PwmColumnBlock(np.ones(16), opamp=slow)


@pytest.mark.ngspice
def test_sixteen_row_column_in_ngspice() -> None:
    """A 16-row column with a bias row over a few inputs (both full-scale extremes, zero, random)
    and an ADC range that saturates the largest outputs."""
    rng = np.random.default_rng(5)
    w, b = rng.normal(0.0, 0.5, 16), 0.25
    x = np.vstack([np.ones(16), -np.ones(16), np.zeros(16), rng.uniform(-1, 1, (5, 16))])
    for y_fs in (None, 1.0):
        blk = PwmColumnBlock(w, b, y_fs=y_fs)
        reading, _ = _simulate([blk], x)
        err = slice_errors([blk], x, reading)
        assert err.passed, err
        assert err.analog_max_pct_fs < 0.05, err
    assert np.any(np.abs(blk.ideal_sum(x)) > 1.0)


@pytest.mark.ngspice
def test_columns_of_a_slice_do_not_interact() -> None:
    """Three columns on shared PWM rows read what each reads alone (ideal row drivers, one virtual
    ground per column), to the transient solver's tolerance (1e-5 of full scale: more columns
    change the time steps ngspice takes, not the circuit)."""
    rng = np.random.default_rng(6)
    w = rng.normal(0.0, 0.5, (3, 12))
    x = rng.uniform(-1, 1, (4, 12))
    cols = [PwmColumnBlock(w[j], 0.1 * j, y_fs=3.0, name=f"c{j}") for j in range(3)]
    together, _ = _simulate(cols, x)
    alone, _ = _simulate([cols[1]], x)
    np.testing.assert_allclose(together.analog[:, 1], alone.analog[:, 0], rtol=0, atol=1e-5 * 3.0)  # solver tolerance
    assert slice_errors(cols, x, together).passed


@pytest.mark.ngspice
def test_512_row_column_in_ngspice() -> None:
    """A full 512-row tile column, its ADC range set to the largest output over the inputs (the
    engine's calibration rule), so the ADC's LSB is small against the worst case Σ|w|."""
    rng = np.random.default_rng(7)
    w = rng.normal(0.0, 0.05, 512)
    x = rng.uniform(-1, 1, (6, 512))
    y_fs = float(np.max(np.abs(PwmColumnBlock(w).ideal_sum(x))))
    blk = PwmColumnBlock(w, None, y_fs=y_fs)  # Σ|w|/y_fs ≈ 30: the A_0 leak is ~0.08 % FS
    reading, elapsed = _simulate([blk], x)
    err = slice_errors([blk], x, reading)
    assert err.passed, err
    assert elapsed < 120
