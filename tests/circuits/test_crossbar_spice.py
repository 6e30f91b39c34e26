"""Crossbar column and tile circuits in ngspice against W·x + b and a NumPy model of the converters.

Tolerance without converters: 0.5 % of full scale, the crossbar block's budget. The analog path's
own error is the macro op-amp's finite gain (A_0 = 1e5: relative error (1 + R_f·ΣG)/A_0 per stage)
and ngspice's solver tolerances, so the measured error is far below the budget.
With converters the error is bounded by the quantization: half an ADC step plus Σ|wᵢ|·½ DAC step.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from circuits.crossbar import CrossbarArray
from circuits.errors import ParameterError
from circuits.spice.block import index_sweep, indexed_inputs
from circuits.spice.crossbar_blocks import CrossbarColumnBlock
from circuits.spice.crossbar_tile import tile_subckt
from circuits.spice.netlist import Deck, instance
from sim.spice import SimJob, run_inline

N_POINTS = 40


def _array(rng: np.random.Generator, shape=(3, 12), bias=True) -> CrossbarArray:
    w = rng.normal(0.0, 0.5, size=shape)
    b = rng.normal(0.0, 0.3, size=shape[:-1]) if bias else None
    return CrossbarArray(w, b)


def _simulate(block: CrossbarColumnBlock, points: np.ndarray) -> np.ndarray:
    res = run_inline(SimJob(block.name, block.dc_bench(points).render(), 30.0))
    assert res.ok, res.error
    return block.read(res.vectors)


def _quantize(v: np.ndarray, bits: int, fs: float) -> np.ndarray:
    """Independent NumPy model of the symmetric mid-tread converter."""
    levels = 2 ** (bits - 1) - 1
    step = fs / levels
    return step * np.clip(np.floor(v / step + 0.5), -levels, levels)


def _pct_fs(got: np.ndarray, want: np.ndarray, fs: float) -> float:
    return 100.0 * float(np.max(np.abs(got - want))) / fs


@pytest.mark.ngspice
@pytest.mark.parametrize("devices_per_weight", [2, 4])
def test_column_matches_dense_without_converters(devices_per_weight: int) -> None:
    rng = np.random.default_rng(1)
    base = _array(rng)
    prim = CrossbarArray(base.weights, base.bias, devices_per_weight=devices_per_weight)
    points = rng.uniform(-1.0, 1.0, size=(N_POINTS, 12))
    for index in range(3):
        block = CrossbarColumnBlock.from_primitive(prim, index)
        got = _simulate(block, points)
        want = prim.ideal(points)[:, [index]]
        np.testing.assert_allclose(block.ideal(points), want, rtol=1e-12, atol=1e-12)
        err = _pct_fs(got, want, block.full_scale())
        assert err < block.tolerance_pct_fs, f"column {index}: {err:.4f} % FS"


@pytest.mark.ngspice
def test_grouped_column_without_bias() -> None:
    rng = np.random.default_rng(2)
    prim = _array(rng, shape=(2, 3, 5), bias=False)
    index = 4  # group 1, output 1
    block = CrossbarColumnBlock.from_primitive(prim, index, volts_per_unit=0.1)
    points = rng.uniform(-1.0, 1.0, size=(N_POINTS, 5))
    x = np.zeros((N_POINTS, 2, 5))
    x[:, 1, :] = points
    want = prim.ideal(x)[:, 1, [1]]
    assert _pct_fs(_simulate(block, points), want, block.full_scale()) < block.tolerance_pct_fs


@pytest.mark.ngspice
@pytest.mark.parametrize("y_fs", [None, 1.0])  # 1.0: a tighter ADC range that clips some outputs
def test_column_with_8bit_converters_matches_quantized_model(y_fs: float | None) -> None:
    rng = np.random.default_rng(3)
    prim = _array(rng)
    block = CrossbarColumnBlock.from_primitive(prim, 1, dac_bits=8, adc_bits=8, y_fs=y_fs)
    points = rng.uniform(-1.0, 1.0, size=(N_POINTS, 12))
    got = _simulate(block, points)

    a_out = block.out_volts_per_unit
    v_in = _quantize(points * block.volts_per_unit, 8, block.v_read_fs_v)
    y_analog = v_in / block.volts_per_unit @ block.weights + block.bias
    model = _quantize(y_analog * a_out, 8, block.v_out_fs_v) / a_out
    lsb_out = block.adc().step_v / a_out
    # The analog error (~1e-4 relative) can move a point across an ADC decision level: one LSB at most.
    assert np.max(np.abs(got - model[:, None])) <= lsb_out * (1 + 1e-6)
    assert np.mean(np.isclose(got[:, 0], model, rtol=0, atol=1e-3 * lsb_out)) >= 0.9

    ideal = np.clip(block.ideal(points), -block.full_scale(), block.full_scale())
    bound = 0.5 * lsb_out + np.sum(np.abs(block.weights)) * 0.5 * block.dac().step_v / block.volts_per_unit
    assert np.max(np.abs(got - ideal)) <= bound * 1.01 + lsb_out * 1e-3


def test_conductances_in_range_and_invertible() -> None:
    rng = np.random.default_rng(4)
    prim = _array(rng, shape=(4, 9))
    for index in range(4):
        for g_min_s in (0.0, 0.5e-6):
            block = CrossbarColumnBlock.from_primitive(prim, index, g_min_s=g_min_s)
            g_pos, g_neg = block.conductances()
            assert np.all((g_pos >= 0) & (g_pos <= 25e-6 * (1 + 1e-12)))
            assert np.all((g_neg >= 0) & (g_neg <= 25e-6 * (1 + 1e-12)))
            assert np.all(np.minimum(g_pos, g_neg) == g_min_s)  # one side of each pair stays at the floor
            w, b = block.read_back()
            np.testing.assert_allclose(w, prim.weights[index], rtol=1e-12, atol=1e-15)
            assert b == pytest.approx(prim.bias[index], rel=1e-12, abs=1e-15)


def test_netlist_resistors_give_back_the_weights() -> None:
    """Parse the rendered subcircuit: 1/R of each G+/G- card, mapped back, is the weight."""
    rng = np.random.default_rng(5)
    prim = _array(rng, shape=(2, 6))
    block = CrossbarColumnBlock.from_primitive(prim, 0)
    text = block.subckts()[-1].render()
    g = {"p": np.zeros(7), "n": np.zeros(7)}
    for side, row, ohms in re.findall(r"^Rg([pn])_(\d+)_0 \S+ \S+ (\S+)$", text, flags=re.MULTILINE):
        g[side][int(row)] = 1.0 / float(ohms)
    w = block.mapping().weights(g["p"], g["n"])
    np.testing.assert_allclose(w[:-1], prim.weights[0], rtol=1e-12)
    assert w[-1] * block.x_fs == pytest.approx(prim.bias[0], rel=1e-12)


def test_parameters_are_validated() -> None:
    prim = _array(np.random.default_rng(6))
    with pytest.raises(ParameterError, match="index"):
        CrossbarColumnBlock.from_primitive(prim, 3)
    with pytest.raises(ParameterError, match="dac_bits"):
        CrossbarColumnBlock.from_primitive(prim, 0, dac_bits=1)
    with pytest.raises(ParameterError, match="volts_per_unit"):
        CrossbarColumnBlock.from_primitive(prim, 0, volts_per_unit=2.0)
    with pytest.raises(ParameterError, match="g_min_s"):
        CrossbarColumnBlock(np.ones(3), g_min_s=30e-6)
    with pytest.raises(ParameterError, match="columns"):
        tile_subckt([CrossbarColumnBlock(np.ones(3)), CrossbarColumnBlock(np.ones(4))])


@pytest.mark.ngspice
def test_tile_subckt_computes_every_column() -> None:
    rng = np.random.default_rng(7)
    prim = _array(rng, shape=(4, 8))
    cols = [CrossbarColumnBlock.from_primitive(prim, j) for j in range(4)]
    tile = tile_subckt(cols)
    points = rng.uniform(-1.0, 1.0, size=(N_POINTS, 8))
    ins = [f"in_{i}" for i in range(8)]
    outs = [f"out_{j}" for j in range(4)]
    deck = Deck("tile bench", subckts=[cols[0].subckts()[0], tile])
    deck.elements += indexed_inputs(points, ins, cols[0].volts_per_unit)
    deck.elements.append(instance("dut", tile.name, (*ins, *outs)))
    res = run_inline(SimJob("tile", index_sweep(deck, N_POINTS).render(), 30.0))
    assert res.ok, res.error
    want = prim.ideal(points)
    for j, col in enumerate(cols):
        got = np.asarray(res.vectors[outs[j]]) / col.out_volts_per_unit
        assert _pct_fs(got, want[:, j], col.full_scale()) < col.tolerance_pct_fs


def test_registered_in_the_circuit_library() -> None:
    from circuits.spice.library import CIRCUITS

    prim = _array(np.random.default_rng(8))
    block = CIRCUITS["crossbar.tiles"](prim, 2, 1.0)
    assert isinstance(block, CrossbarColumnBlock)
    assert block.v_read_fs_v == pytest.approx(0.2)  # read voltage capped whatever the network's scale
    np.testing.assert_allclose(block.weights, prim.weights[2])
