"""Chip instances in the engine against ngspice on the same instance (same seed, same transistors).

Oracles: the nominal instance (no seed) must be exactly the quantized network the circuits
realize; a seeded instance must match ngspice of the netlist emitted with that seed.

Measured (ngspice 39, 10 nA/unit), engine with the Early drift (mismatch only in brackets):
MLP 6-5-3, seed 7, 8 inputs: max 0.52 % FS, RMS 0.17 % FS (0.61 / 0.25); the instance's mismatch
shift itself is ~4 % FS and the engine tracks it (correlation 0.99). Digits 64-16-10, seed 3,
first 8 test inputs: RMS 0.99 % FS, max 2.7 % FS (1.95 / 5.0), argmax 8/8 (first 6: 1.04 / 2.72);
benchmarks/bench_chip_engine.py, 100 inputs: RMS 0.67 % FS, argmax 100 %. The quantized
nominal network is 1.97 % FS RMS from the same run (mismatch averages out over 64 inputs,
the Early drift in the signed output layer dominates).
"""

from __future__ import annotations

import numpy as np
import pytest

from circuits.current import SynapseArray
from circuits.data import model_file
from circuits.spice.emit_current import quantized_synapse_array
from compiler.ir import PrimitiveNode
from compiler.pipeline import compile_model
from sim import zoo
from sim.chip import ChipInstance
from sim.engine import execute
from sim.spice_commands import run_network_spice

SCALE = 10e-9
DIGITS = str(model_file("examples", "digits_mlp.onnx"))


def pct_fs(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """(max, RMS) of |got − want| in % of FS = max |want|."""
    fs = float(np.max(np.abs(want)))
    err = np.asarray(got, np.float64) - np.asarray(want, np.float64)
    return float(np.max(np.abs(err))) / fs * 100, float(np.sqrt(np.mean(err**2))) / fs * 100


@pytest.fixture(scope="module")
def small():
    return compile_model(zoo.mlp((6, 5, 3), seed=0), "current")


def _inputs(n: int, width: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, width)).astype(np.float32)


def test_same_seed_same_parameters_other_seed_differs(small):
    a, b, c = (ChipInstance.draw(small, s, SCALE) for s in (5, 5, 6))
    assert a.cells == b.cells
    for name, lay in a.layers.items():
        assert np.array_equal(lay.weights, b.layers[name].weights) and np.array_equal(lay.bias, b.layers[name].bias)
        assert not np.allclose(lay.weights, c.layers[name].weights)
    # every transistor of every cell has its draw (5 per soma, 11 per synapse, 2 per read-out)
    per = {"soma": 5, "synapse": 11, "readout": 2}
    assert all(len(cell.dvt_v) == len(cell.bf) == per[cell.kind] for cell in a.cells)


def test_nominal_instance_is_the_quantized_network(small):
    g = small.graph
    x = _inputs(16, 6)
    q = g.copy()
    for node in q.topo():
        if isinstance(node, PrimitiveNode) and isinstance(node.primitive, SynapseArray):
            node.primitive = quantized_synapse_array(node.primitive)
    want = execute(q, {g.inputs[0]: x})[g.outputs[0]]
    nominal = ChipInstance.draw(small, None, SCALE)
    got = execute(nominal.engine_graph(early=False), {g.inputs[0]: x})[g.outputs[0]]
    assert np.allclose(got, want, atol=1e-5)
    drift = execute(nominal.engine_graph(), {g.inputs[0]: x})[g.outputs[0]]
    mx, _ = pct_fs(drift, want)
    assert 0.05 < mx < 3.0  # the Early drift: a few tenths of a % FS, never zero


def test_mismatch_errors_are_pelgrom_sized(small):
    """Unit-gain layer rows: instance/nominal weight ratios scatter by a few % (σ(ΔVt) ≈ 0.6 mV per 4-unit device)."""
    inst, nom = ChipInstance.draw(small, 11, SCALE), ChipInstance.draw(small, None, SCALE)
    for name, lay in inst.layers.items():
        w0 = nom.layers[name].weights
        mask = w0 != 0
        rel = lay.weights[mask] / w0[mask] - 1
        assert np.all(np.abs(rel) < 0.2) and 0.003 < rel.std() < 0.08
        assert np.array_equal(lay.weights == 0, ~mask)


@pytest.mark.ngspice
def test_small_instance_engine_matches_ngspice(small):
    g, x = small.graph, _inputs(8, 6)
    seed = 7
    y_spice = run_network_spice(small, {g.inputs[0]: x}, SCALE, chip_seed=seed, workers=2, progress=False)
    y_nom = run_network_spice(small, {g.inputs[0]: x}, SCALE, workers=2, progress=False)
    y_eng = execute(ChipInstance.draw(small, seed, SCALE).engine_graph(), {g.inputs[0]: x})
    y_eng_nom = execute(ChipInstance.draw(small, None, SCALE).engine_graph(), {g.inputs[0]: x})
    out = g.outputs[0]
    mx, rms = pct_fs(y_eng[out], y_spice[out])
    print(f"6-5-3 instance: engine vs ngspice max {mx:.2f} % FS, RMS {rms:.2f} % FS")
    assert mx < 1.0 and rms < 0.4  # measured 0.52 / 0.17
    # the mismatch shift itself (instance − nominal) is tracked well beyond its size
    shift_spice = y_spice[out] - y_nom[out]
    shift_eng = y_eng[out] - y_eng_nom[out]
    assert np.corrcoef(shift_spice.ravel(), shift_eng.ravel())[0, 1] > 0.95  # measured 0.99


@pytest.mark.ngspice
def test_digits_instance_engine_matches_ngspice():
    compiled = compile_model(DIGITS, "current")
    x = np.asarray(np.load(model_file("examples", "digits_test.npz"))["X"][:6], np.float32)
    g, seed = compiled.graph, 3
    y_spice = run_network_spice(compiled, {g.inputs[0]: x}, SCALE, chip_seed=seed, workers=2, progress=False)
    y_eng = execute(ChipInstance.draw(compiled, seed, SCALE).engine_graph(), {g.inputs[0]: x})
    out = g.outputs[0]
    mx, rms = pct_fs(y_eng[out], y_spice[out])
    agree = float(np.mean(y_eng[out].argmax(1) == y_spice[out].argmax(1)))
    print(f"digits instance (seed {seed}, 6 inputs): RMS {rms:.2f} % FS, max {mx:.2f} % FS, argmax {agree:.0%}")
    assert rms < 1.6 and mx < 4.0  # measured on 8 inputs: RMS 0.99, max 2.7
    assert agree >= 5 / 6


def _ln_pos(a: np.ndarray) -> np.ndarray:
    return np.log(np.where(a > 0, a, 1.0))


def _chip_reference(prim, v: np.ndarray) -> np.ndarray:
    """`InstanceSynapseArray`'s equation written out in float64 NumPy (the kernel's docstring), the
    oracle for the compiled loops."""
    v = np.asarray(v, np.float64)
    w = np.asarray(prim.weights, np.float64)
    rg = np.asarray(prim.row_gain, np.float64)
    wl, bl = w / rg[:, None], np.asarray(prim.bias, np.float64) / rg
    i0 = v @ wl.T + bl
    i = i0 + (v * _ln_pos(v)) @ (wl * prim.pre_log).T
    i = i + _ln_pos(i0) * (v @ (wl * prim.post_log).T + bl * prim.bias_post_log)
    if not prim.rectify:
        return i * rg
    i = np.maximum(i, 0)
    g = np.asarray(prim.line_gain, np.float64)
    return i * rg * (1 + prim.soma_log * (np.log(g) + 2 * _ln_pos(i)) * (i > 0))


@pytest.mark.parametrize("rectify", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chip_kernel_equals_its_equation(rectify, dtype):
    """The compiled chip loops (fast float32 logarithm, fused drift and soma) against the equation in
    float64: inputs spanning five decades, exact zeros, and rows driven negative (rectified to 0)."""
    from sim.chip import InstanceSynapseArray
    from sim.engine.kernels import CHIP_SYNAPSES
    rng = np.random.default_rng(4)
    r, n = 13, 37
    w = rng.normal(0, 0.6, (r, n))
    prim = InstanceSynapseArray(w, rng.normal(0, 0.3, r), rectify=rectify, row_gain=rng.uniform(0.8, 1.2, r),
                                line_gain=rng.uniform(0.5, 2, r), pre_log=rng.normal(0, 0.05, (r, n)),
                                post_log=rng.normal(0, 0.05, (r, n)), bias_post_log=rng.normal(0, 0.05, r),
                                soma_log=-0.02)
    v = 10.0 ** rng.uniform(-4, 1, (301, n))
    v[rng.random(v.shape) < 0.2] = 0.0
    got = CHIP_SYNAPSES.forward(prim, {}, [v.astype(dtype)], False)[0]
    want = _chip_reference(prim, v.astype(dtype))
    assert got.dtype == dtype and got.shape == want.shape
    if rectify:
        assert (want == 0).mean() > 0.2  # the rectified branch is exercised
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert np.abs(got - want).max() <= tol * np.abs(want).max()


def test_fast_float32_logarithm():
    """x·ln x of the compiled loops against float64 NumPy over the normal float32 range."""
    from sim.engine.chip_loops import xlnx
    x = np.concatenate([10.0 ** np.linspace(-37, 36, 20001), [0.0, -1.0, 1.0, 2.0, 0.5]]).astype(np.float32)
    want = x.astype(np.float64) * _ln_pos(x.astype(np.float64))
    got = xlnx(x).astype(np.float64)
    ok = x > 0
    assert np.all(got[~ok] == 0)
    assert np.max(np.abs(got[ok] - want[ok]) / (np.abs(x[ok]) * (1 + np.abs(np.log(x[ok]))))) < 3e-7
    t = np.asfortranarray(x[:20000].reshape(100, 200))  # a transposed chip output: same values
    assert np.array_equal(xlnx(t), xlnx(np.ascontiguousarray(t)))
