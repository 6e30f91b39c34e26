"""Op-amp macro-model and linear blocks against circuit theory, in ngspice.

Oracles: the closed-loop gain formula G/(1 + 1/(A·β)), the summer's ideal W·x + b, the
integrator's ramp slope −V_in/(R·C) and the differentiator's −R·C·dV/dt.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from circuits.errors import ParameterError
from circuits.opamp import InvertingSummerArray
from circuits.spice.blocks_linear import DifferentiatorBlock, IntegratorBlock, SummerBlock
from circuits.spice.netlist import Deck, instance, resistor, vsource
from circuits.spice.opamp_macro import OpampMacro
from circuits.spice.opamp_stages import BENCH_RELTOL

MACRO = OpampMacro.default()


def _run(deck: Deck, name: str) -> dict[str, np.ndarray]:
    from sim.spice import SimJob, run_inline

    return run_inline(SimJob(name, deck.render())).raise_for_error().vectors


def _error_pct_fs(block, points: np.ndarray, name: str) -> float:
    got = block.read(_run(block.dc_bench(points), name))
    return float(np.max(np.abs(got - block.ideal(points)))) / block.full_scale() * 100


# --- design equations (no simulator) --------------------------------------------------------

def test_macro_card_loads_and_validates() -> None:
    assert (MACRO.a0, MACRO.gbw_hz, MACRO.v_offset_v) == (1e5, 1e6, 0.0)
    assert MACRO.r1_ohm * MACRO.gm_s == pytest.approx(MACRO.a0)
    assert 1 / (2 * math.pi * MACRO.r1_ohm * MACRO.c1_f) == pytest.approx(MACRO.gbw_hz / MACRO.a0)
    with pytest.raises(ParameterError, match="a0"):
        MACRO.with_(a0=0.5)
    with pytest.raises(ParameterError, match="v_rail_neg_v"):
        MACRO.with_(v_rail_neg_v=20.0)


def test_seed_example_design_values() -> None:
    """V_o = −0.35·V1 + 5.24·V2 + 2.6: R_1 = R_f/0.35, R_2 = R_f/5.24 after an inverter, R_b from −10 V."""
    block = SummerBlock((-0.35, 5.24), 2.6)
    r = block.resistors()
    assert r["r_0_ohm"] == pytest.approx(100e3 / 0.35)
    assert r["r_1_ohm"] == pytest.approx(100e3 / 5.24)
    assert r["r_b_ohm"] == pytest.approx(100e3 * 10 / 2.6)
    cards = [e.render() for e in block.elements()]
    assert sum(c.startswith("X") for c in cards) == 2  # V2's inverter and the summer
    assert "Vref vref 0 DC -10" in cards


def test_summer_rejects_bad_parameters() -> None:
    with pytest.raises(ParameterError, match="r_f_ohm"):
        SummerBlock((1.0,), r_f_ohm=-1.0)
    with pytest.raises(ParameterError, match="weights"):
        SummerBlock((math.nan,))
    with pytest.raises(ParameterError, match="row"):
        SummerBlock.from_primitive(InvertingSummerArray(np.ones((2, 3))), 2)


# --- macro-model in ngspice --------------------------------------------------------------------

@pytest.mark.ngspice
@pytest.mark.parametrize("gain", [1.0, 10.0, 100.0])
def test_finite_gain_error_matches_formula(gain: float) -> None:
    """Non-inverting amplifier of gain 1/β: V_o/V_i = (1/β)/(1 + 1/(A_0·β)) to 1e-6 (offset 0, ±5 V out)."""
    beta = 1.0 / gain
    deck = Deck("noninverting", subckts=[MACRO.subckt()], options={"reltol": BENCH_RELTOL})
    deck.elements += [vsource("in", "in", "0", 0.0), instance("a", MACRO.name, ["in", "fb", "out"]),
                      resistor("f", "out", "fb", 100e3 * (1 - beta) + 1e-3), resistor("g", "fb", "0", 100e3 * beta)]
    deck.dc("in", -5 / gain, 5 / gain, 1 / gain)
    vec = _run(deck, f"finite_gain_{gain:g}")
    v_in, v_out = vec["v-sweep"], vec["out"]
    keep = np.abs(v_in) > 1e-6
    measured = v_out[keep] / v_in[keep]
    r_f, r_g = 100e3 * (1 - beta) + 1e-3, 100e3 * beta
    beta_exact = r_g / (r_f + r_g)
    expected = MACRO.closed_loop_gain(1 / beta_exact, beta_exact)
    assert np.max(np.abs(measured / expected - 1)) < 1e-6
    # the check is sharp: the finite-gain error itself (~1e-5..1e-3) is far above 1e-6
    assert np.min(np.abs(measured * beta_exact - 1)) > 5e-6


@pytest.mark.ngspice
def test_offset_and_rails() -> None:
    """A follower shows the offset; an open-loop stage saturates within 0.1 V of the rails."""
    shifted = MACRO.with_(v_offset_v=2e-3, name="opamp_os")
    deck = Deck("offset", subckts=[shifted.subckt(), MACRO.subckt()], options={"reltol": BENCH_RELTOL})
    deck.elements += [vsource("in", "in", "0", 0.0), instance("f", shifted.name, ["in", "fo", "fo"]),
                      instance("c", MACRO.name, ["in", "0", "sat"]), resistor("l", "sat", "0", 10e3)]
    deck.dc("in", -1.0, 1.0, 1.0)
    vec = _run(deck, "offset_rails")
    a = MACRO.a0
    assert np.allclose(vec["fo"], (vec["in"] + 2e-3) * a / (1 + a), rtol=0, atol=1e-9)
    assert abs(vec["sat"][0] - MACRO.v_rail_neg_v) < 0.1 and abs(vec["sat"][-1] - MACRO.v_rail_pos_v) < 0.1


@pytest.mark.ngspice
def test_gain_bandwidth() -> None:
    """Open-loop |A(f)| = A_0/√(1 + (f·A_0/GBW)²) at 1 kHz and 100 kHz, within 0.5 %."""
    deck = Deck("open loop ac", subckts=[MACRO.subckt()])
    deck.elements += [vsource("in", "in", "0", 0.0, ac_v=1.0), instance("a", MACRO.name, ["in", "0", "out"]),
                      resistor("l", "out", "0", 10e3)]
    deck.ac(1, 1e3, 1e5)
    vec = _run(deck, "gbw")
    f, mag = np.real(vec["frequency"]), np.abs(vec["out"])
    expected = MACRO.a0 / np.sqrt(1 + (f * MACRO.a0 / MACRO.gbw_hz) ** 2)
    assert np.allclose(mag, expected, rtol=5e-3)


# --- summers -----------------------------------------------------------------------------------

@pytest.mark.ngspice
def test_seed_example_within_0_1_pct_fs() -> None:
    """−0.35·V1 + 5.24·V2 + 2.6 on an 11×11 grid of V1, V2 ∈ [−1, 1] V, one .dc sweep.

    Full scale is the largest ideal |V_o| over that box, 0.35 + 5.24 + 2.6 = 8.19 V (inside
    the ±11 V rails): the error is what a meter ranged for the block's output would read.
    """
    block = SummerBlock((-0.35, 5.24), 2.6)
    assert block.full_scale() == pytest.approx(8.19)
    grid = np.linspace(-1.0, 1.0, 11)
    points = np.array([(a, b) for a in grid for b in grid])
    err = _error_pct_fs(block, points, "seed_example")
    assert err < block.tolerance_pct_fs == 0.1


@pytest.mark.ngspice
def test_random_signed_rows_within_tolerance() -> None:
    """Five random rows of a 6-input array (signed weights, bias), scaled so full scale fits the rails."""
    rng = np.random.default_rng(7)
    prim = InvertingSummerArray(rng.normal(0.0, 1.5, size=(5, 6)), rng.normal(0.0, 1.0, size=5))
    for row in range(5):
        fs = float(np.abs(prim.weights[row]).sum() + abs(prim.bias[row]))
        block = SummerBlock.from_primitive(prim, row, volts_per_unit=min(1.0, 10.0 / fs))
        points = block.test_points(30, rng)
        err = _error_pct_fs(block, points, f"random_row_{row}")
        assert err < block.tolerance_pct_fs, (row, err)


# --- integrator and differentiator ---------------------------------------------------------------

@pytest.mark.ngspice
@pytest.mark.parametrize("y0", [0.0, 2.0, -1.5])
def test_integrator_ic_and_ramp_slope(y0: float) -> None:
    """After reset the output starts at y0; a DC input x gives the ramp slope −x·V_unit/(R·C) within 1 %."""
    block = IntegratorBlock(y0=y0)
    x = 0.8
    vec = _run(block.tran_bench(x), f"integrator_ramp_{y0:g}")
    t, y = np.real(vec["time"]), np.real(vec["out"])
    t0 = block.t_reset_s
    assert abs(y[0] - y0) < 1e-4  # the operating point is in IC mode
    late = t > t0 + 0.1 * block.window_s
    slope, intercept = np.polyfit(t[late], y[late], 1)
    ideal = -x * block.volts_per_unit / (block.r_ohm * block.c_f)
    assert abs(slope / ideal - 1) < 0.01
    assert abs(slope * t0 + intercept - y0) < 1e-3  # the ramp starts from y0 at the end of reset


@pytest.mark.ngspice
def test_integrator_reset_sequence_matches_ideal() -> None:
    """Reset to y0, integrate for τ, sample: y = y0 − x over x ∈ [−1, 1] in one transient."""
    block = IntegratorBlock(y0=0.5)
    points = np.linspace(-1.0, 1.0, 9)[:, None]
    assert _error_pct_fs(block, points, "integrator_sequence") < block.tolerance_pct_fs


@pytest.mark.ngspice
def test_differentiator_ramp() -> None:
    """A ramp of slope s (units per τ) gives y = −s once R_s·C has settled; tolerance 1 % of s."""
    block = DifferentiatorBlock()
    slope = 0.8
    vec = _run(block.tran_bench(slope, 2e-3), "differentiator_ramp")
    t, y = np.real(vec["time"]), np.real(vec["out"])
    settled = t > 20 * block.r_s_ohm * block.c_f
    assert np.max(np.abs(y[settled] + slope)) < 0.01 * slope
    points = np.linspace(-1.0, 1.0, 9)[:, None]
    assert _error_pct_fs(block, points, "differentiator_triangles") < block.tolerance_pct_fs
