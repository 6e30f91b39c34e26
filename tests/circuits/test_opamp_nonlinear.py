"""Nonlinear op-amp blocks against their ideal functions, in ngspice (one .dc sweep per block).

Each test states its tolerance (the block's ``tolerance_pct_fs``, % of the block's output full
scale); the log-domain product blocks are also held to 1 % relative error on the result.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from circuits.errors import ParameterError
from circuits.spice.blocks_nonlinear import (
    AntilogBlock, ClipperBlock, DiffPairBlock, DividerBlock, LogBlock, MultiplierBlock, RectifierBlock,
)
from circuits.spice.opamp_stages import ModelCard, npn_card, thermal_voltage_v


def _simulate(block, points: np.ndarray, name: str) -> np.ndarray:
    from sim.spice import SimJob, run_inline

    vectors = run_inline(SimJob(name, block.dc_bench(points).render())).raise_for_error().vectors
    return block.read(vectors)


def _error_pct_fs(block, points: np.ndarray, name: str) -> float:
    got = _simulate(block, points, name)
    return float(np.max(np.abs(got - block.ideal(points)))) / block.full_scale() * 100


def _grid(block, n: int = 41) -> np.ndarray:
    lo, hi = block.input_range()
    return np.linspace(lo, hi, n)[:, None]


# --- cards and design values (no simulator) ---------------------------------------------------

def test_npn_card_parses_and_is_generic() -> None:
    card = npn_card()
    assert card.name == "kelvin_npn"
    assert card.get("is", 0) == 1e-14 and card.get("nf", 0) == 1 and card.get("bf", 0) == 200
    assert ".model kelvin_npn npn" in card.text
    assert thermal_voltage_v(27.0) == pytest.approx(0.025864, rel=1e-4)
    assert isinstance(card, ModelCard)


def test_diffpair_input_scale_is_2_n_vt_per_unit() -> None:
    """ΔV_BE = k·V_in with k = 2·n·V_T/V_unit (tanh) or n·V_T/V_unit (sigmoid)."""
    vt = thermal_voltage_v(27.0)
    assert DiffPairBlock("tanh").k_in == pytest.approx(2 * vt)
    assert DiffPairBlock("sigmoid", volts_per_unit=0.5).k_in == pytest.approx(vt / 0.5)
    with pytest.raises(ParameterError, match="volts_per_unit"):
        DiffPairBlock("tanh", volts_per_unit=0.04)


def test_parameter_errors_name_the_parameter() -> None:
    with pytest.raises(ParameterError, match="negative_slope"):
        RectifierBlock(-0.1)
    with pytest.raises(ParameterError, match="low"):
        ClipperBlock(1.0, 0.0)
    with pytest.raises(ParameterError, match="x_min"):
        LogBlock(x_min=2.0, x_max=1.0)
    with pytest.raises(ParameterError, match="offset"):
        MultiplierBlock(offset=20.0)


# --- piecewise-linear blocks ----------------------------------------------------------------------

@pytest.mark.ngspice
@pytest.mark.parametrize("slope", [0.0, 0.01, 0.2])
def test_rectifier(slope: float) -> None:
    """ReLU / leaky ReLU over x ∈ [−1, 1]; tolerance 0.1 % FS (diode drops divided by the loop gain)."""
    block = RectifierBlock(slope)
    assert _error_pct_fs(block, _grid(block), f"rectifier_{slope:g}") < block.tolerance_pct_fs == 0.1


@pytest.mark.ngspice
@pytest.mark.parametrize("low, high", [(-0.5, 0.8), (0.0, 6.0), (0.0, math.inf), (-math.inf, 1.0)])
def test_clipper(low: float, high: float) -> None:
    """clip(x, low, high) over half a span beyond each bound; tolerance 0.1 % FS."""
    block = ClipperBlock(low, high)
    assert _error_pct_fs(block, _grid(block, 49), f"clipper_{low:g}_{high:g}") < block.tolerance_pct_fs == 0.1


# --- BJT differential pair ------------------------------------------------------------------------

@pytest.mark.ngspice
@pytest.mark.parametrize("function", ["tanh", "sigmoid"])
def test_diffpair(function: str) -> None:
    """tanh over [−3, 3], sigmoid over [−6, 6]; tolerance 0.5 % FS (FS = 1).

    The residual is a ~0.2 % compression of the input scale (base currents in the dividers,
    emitter and base resistance), largest where tanh is steepest.
    """
    block = DiffPairBlock(function)
    assert _error_pct_fs(block, _grid(block, 61), f"diffpair_{function}") < block.tolerance_pct_fs == 0.5


# --- log domain ---------------------------------------------------------------------------------

@pytest.mark.ngspice
def test_log_over_three_decades() -> None:
    """ln x for x ∈ [0.01, 10]; tolerance 0.5 % of FS = ln 100."""
    block = LogBlock()
    points = np.geomspace(0.01, 10.0, 31)[:, None]
    assert _error_pct_fs(block, points, "log") < block.tolerance_pct_fs == 0.5


@pytest.mark.ngspice
def test_antilog_over_two_decades() -> None:
    """eˣ for x ∈ [−ln 10, ln 10] (output 0.1..10); tolerance 0.5 % of FS = 10, and 0.5 % relative."""
    block = AntilogBlock()
    points = _grid(block, 31)
    got = _simulate(block, points, "antilog")
    want = block.ideal(points)
    assert np.max(np.abs(got - want)) / block.full_scale() * 100 < block.tolerance_pct_fs == 0.5
    assert np.max(np.abs(got / want - 1)) < 0.005


def _two_decade_grid() -> np.ndarray:
    g = np.geomspace(0.1, 10.0, 11)
    return np.array([(a, b) for a in g for b in g])


@pytest.mark.ngspice
def test_multiplier_two_decades_relative_1pct() -> None:
    """a·b for a, b ∈ [0.1, 10] (11×11 log grid, products 0.01..100), V_unit = 0.1 V so 100 fits the rails.

    Relative error ≤ 1 %: log-domain errors add in the exponent, so they scale the product by
    (1 + ε) at every magnitude; relative error is what the circuit controls (and implies ≤ 1 % FS).
    """
    block = MultiplierBlock(volts_per_unit=0.1)
    points = _two_decade_grid()
    got = _simulate(block, points, "multiplier")
    want = block.ideal(points)
    assert np.max(np.abs(got / want - 1)) < block.tolerance_rel == 0.01
    assert np.max(np.abs(got - want)) / block.full_scale() * 100 < block.tolerance_pct_fs


@pytest.mark.ngspice
def test_divider_two_decades_relative_1pct() -> None:
    """a/b for a, b ∈ [0.1, 10] (quotients 0.01..100); relative error ≤ 1 %."""
    block = DividerBlock(volts_per_unit=0.1)
    points = _two_decade_grid()
    got = _simulate(block, points, "divider")
    want = block.ideal(points)
    assert np.max(np.abs(got / want - 1)) < block.tolerance_rel == 0.01


@pytest.mark.ngspice
def test_signed_multiplier_with_offset() -> None:
    """Offset o = 1.1 (log stages over [0.1, 2.1]) multiplies signed a, b ∈ [−1, 1]; tolerance 1 % FS (FS = 1).

    The offset products (a + o)(b + o) reach 4.4, so a relative error ε there costs up to 4.4·ε of FS.
    """
    block = MultiplierBlock(offset=1.1, x_min=0.1, x_max=2.1, volts_per_unit=1.0)
    assert block.input_range() == pytest.approx((-1.0, 1.0)) and block.full_scale() == pytest.approx(1.0)
    g = np.linspace(-1.0, 1.0, 11)
    points = np.array([(a, b) for a in g for b in g])
    assert _error_pct_fs(block, points, "signed_multiplier") < block.tolerance_pct_fs == 1.0
