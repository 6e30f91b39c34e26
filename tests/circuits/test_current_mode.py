"""Binas et al. 2016 current-mode circuits in ngspice against their design equations and Pelgrom statistics.

Errors are in % of full scale. For a synapse the full scale is its largest level, 7·I_unit:
a gain error g shows up as g·|k|/7 of it, so the bound covers every level's gain and offset
the way a 3-bit-plus-sign weight is used (its step is 1/7 = 14 % of full scale).
"""

from __future__ import annotations

import numpy as np
import pytest

from circuits.current import NEURON_TRANSISTORS, SYNAPSE_TRANSISTORS, CurrentNeuron, SynapseArray
from circuits.errors import ParameterError
from circuits.spice.current_blocks import NeuronBlock, SynapseArrayBlock, block_for
from circuits.spice.current_cells import (
    V_SOMA_V, CellSizing, NeuronCircuit, SynapseCircuit, count_mosfets, level_bits, quantize, synapse_level_bench,
)
from circuits.spice.devices import pelgrom_sigma

U_T = 0.025852
SIZING = CellSizing()
LEVELS = list(range(-7, 8))


def _run(deck_text: str, name: str) -> dict[str, np.ndarray]:
    from sim.spice import SimJob, run_inline

    return run_inline(SimJob(name, deck_text)).raise_for_error().vectors


def test_transistor_counts_match_binas() -> None:
    assert count_mosfets(SynapseCircuit(SIZING).subckt()) == SYNAPSE_TRANSISTORS == 11
    assert count_mosfets(NeuronCircuit(SIZING).subckt()) == NEURON_TRANSISTORS == 5
    block = SynapseArrayBlock(np.array([0.5, -0.25, 0.0, 1.0]), bias=0.25)
    assert block.transistors() == 4 * 11 + 5  # the zero weight has no synapse


def test_weight_levels_and_units() -> None:
    assert level_bits(5) == (1, 0, 1, 0) and level_bits(-3) == (1, 1, 0, 1) and level_bits(0) == (0, 0, 0, 0)
    with pytest.raises(ParameterError):
        level_bits(8)
    assert quantize(np.array([0.26, -0.4, 2.0, -9.0]), 0.25).tolist() == [1, -2, 7, -7]
    small = SynapseArrayBlock(np.array([0.5, -1.75]))
    assert small.unit == 0.25 and small.out_gain == 1.0  # the hardware step, 1/m_diode
    big = SynapseArrayBlock(np.array([3.5, -1.0]), bias=0.5)
    assert big.unit == pytest.approx(0.5) and big.levels.tolist() == [7, -2] and big.bias_level == 1
    assert big.out_gain == pytest.approx(2.0)


@pytest.mark.ngspice
@pytest.mark.parametrize("i_in_a", [100e-9, 20e-9])
def test_synapse_levels_within_2pct_of_full_scale(i_in_a: float) -> None:
    """All 15 levels k = −7..7: |I_out − k·I_in/4| ≤ 2 % of 7·I_in/4 (measured ≤ 1.2 %)."""
    vec = _run(synapse_level_bench(SIZING, i_in_a, LEVELS, V_SOMA_V).render(), "synapse_levels")
    unit = i_in_a * SIZING.w_unit
    err_pct = (vec["vout#branch"] - np.array(LEVELS) * unit) / (7 * unit) * 100
    assert np.all(np.abs(err_pct) <= 2.0), dict(zip(LEVELS, np.round(err_pct, 2), strict=True))


@pytest.mark.ngspice
def test_neuron_rectifies() -> None:
    """y ≈ x within 1 % of FS (1 nA of 100 nA) for x > 0; |y| < 0.1 % (100 pA) for x ≤ 0."""
    block = NeuronBlock()
    x = np.linspace(-1.0, 1.0, 21).reshape(-1, 1)
    y = block.read(_run(block.dc_bench(x).render(), "neuron"))
    pos = x[:, 0] > 0
    assert np.all(np.abs(y[pos] - x[pos]) < 0.01)
    assert np.all(np.abs(y[~pos]) < 1e-3)


@pytest.mark.ngspice
@pytest.mark.parametrize("rectify", [True, False])
def test_four_input_block_matches_ideal(rectify: bool) -> None:
    """4 synapses + bias onto one soma, inputs 0–100 nA: error ≤ 1.5 % of FS (measured ≤ 0.6 %)."""
    prim = SynapseArray(np.array([[0.5, -0.75, 1.0, 0.25], [1.2, -1.5, 0.3, 0.9]]), np.array([0.25, -0.5]),
                        rectify=rectify)
    block = block_for(prim, 1, 100e-9)
    assert isinstance(block, SynapseArrayBlock) and block.levels.tolist() == [5, -6, 1, 4]
    x = np.random.default_rng(0).uniform(0.0, 1.0, size=(40, 4))
    y = block.read(_run(block.dc_bench(x).render(), "block4"))
    err_pct = np.abs(y - block.ideal(x)) / block.full_scale() * 100
    assert err_pct.max() <= 1.5


@pytest.mark.ngspice
def test_mismatch_is_reproducible_from_the_seed() -> None:
    w, x = np.array([0.5, -0.75, 1.0, 0.25]), np.array([[0.2, 0.4, 0.6, 0.8], [1.0, 0.1, 0.5, 0.3]])
    decks = {seed: SynapseArrayBlock(w, 0.25, mismatch_seed=seed).dc_bench(x).render() for seed in (1, 2)}
    again = SynapseArrayBlock(w, 0.25, mismatch_seed=1).dc_bench(x).render()
    assert decks[1] == again and decks[1] != decks[2]
    assert decks[1].count("delvto={dvt_") == 16  # one per transistor of each cell definition
    nominal = SynapseArrayBlock(w, 0.25)
    assert "delvto" not in nominal.dc_bench(x).render()
    outs = {k: SynapseArrayBlock(w, 0.25).read(_run(d, f"mm_{k}")) for k, d in (("a", decks[1]), ("b", again),
                                                                                  ("c", decks[2]))}
    assert np.array_equal(outs["a"], outs["b"])
    assert not np.allclose(outs["a"], outs["c"], rtol=1e-4, atol=0.0)


@pytest.mark.ngspice
def test_mirror_spread_over_seeds_is_pelgrom_order() -> None:
    """Soma gain I_out/I_in over 20 chips: σ(ln gain) within 0.5–2× the Pelgrom prediction.

    Three mirrors (M0→M1, M2→M3, M4→read-out), each ratio exp(ΔV_t/(n·U_T))·β ratio in weak
    inversion: σ² = Σ over 6 devices of (σ_Vt/(n·U_T))² + σ_β².
    """
    x = np.array([[0.5]])  # 50 nA: 12.5 nA per unit device, weak inversion
    gains = [NeuronBlock(mismatch_seed=s).read(_run(NeuronBlock(mismatch_seed=s).dc_bench(x).render(), f"spread{s}"))
             [0, 0] / 0.5 for s in range(20)]
    card = SIZING.card
    geo = [(t.w_m, t.l_m, t.m) for t in NeuronCircuit(SIZING).devices()]
    geo.append((SIZING.w_unit_m, SIZING.l_unit_m, SIZING.m_diode))
    predicted = np.sqrt(sum((pelgrom_sigma(card.a_vt_v_m, *g) / (card.subthreshold_n * U_T)) ** 2
                            + pelgrom_sigma(card.a_beta_m, *g) ** 2 for g in geo))
    measured = np.std(np.log(gains), ddof=1)
    assert 0.5 * predicted <= measured <= 2.0 * predicted
    assert abs(np.mean(gains) - 1.0) < 3 * predicted / np.sqrt(len(gains)) + 0.01


def test_factory_covers_neurons_and_rejects_others() -> None:
    from circuits.spice.library import CIRCUITS

    assert set(CIRCUITS) >= {"current.synapse_array", "current.neuron"}
    assert isinstance(CIRCUITS["current.neuron"](CurrentNeuron(), 3, 50e-9), NeuronBlock)
    assert isinstance(block_for(CurrentNeuron(), 3, 50e-9), NeuronBlock)
    with pytest.raises(ParameterError, match="index"):
        block_for(SynapseArray(np.ones((2, 3))), 2, 1e-7)
    with pytest.raises(ParameterError, match="amps_per_unit"):
        CIRCUITS["current.synapse_array"](SynapseArray(np.ones((2, 3))), 0, 1.0)  # 1 A per unit: a volts scale
