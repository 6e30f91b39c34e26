"""IR drop in crossbar tiles: the line-relaxation solution against an independent nodal solve
(SciPy sparse LU of the Kirchhoff equations) and against ngspice on the netlisted mesh."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from circuits.crossbar import CrossbarArray
from circuits.errors import ParameterError
from circuits.ir_drop import Wires, effective_conductance, mesh_currents
from circuits.spice.block import index_sweep, indexed_inputs
from circuits.spice.crossbar_blocks import ConductanceMap, CrossbarColumnBlock
from circuits.spice.crossbar_tile import tile_conductances, tile_subckt, wired_weights
from circuits.spice.netlist import Deck, instance
from sim.spice import SimJob, run_inline


def nodal_currents(g: np.ndarray, v: np.ndarray, r_row: float, r_col: float) -> np.ndarray:
    """Column currents from the full nodal matrix (row nodes, then column nodes), solved by SuperLU."""
    n_r, n_p = g.shape
    row = np.arange(n_r * n_p).reshape(n_r, n_p)
    col = row + n_r * n_p
    a: list[tuple[int, int, float]] = []

    def link(i, j, cond):
        a.extend([(i, i, cond), (j, j, cond), (i, j, -cond), (j, i, -cond)])

    for i in range(n_r):
        for k in range(n_p):
            if k + 1 < n_p:
                link(row[i, k], row[i, k + 1], 1 / r_row)
            if i + 1 < n_r:
                link(col[i, k], col[i + 1, k], 1 / r_col)
            if g[i, k] > 0:
                link(row[i, k], col[i, k], g[i, k])
        a.append((row[i, 0], row[i, 0], 1 / r_row))      # driver segment
    for k in range(n_p):
        a.append((col[-1, k], col[-1, k], 1 / r_col))    # segment into the virtual ground
    i_, j_, val = zip(*a)
    m = sp.csc_matrix((val, (i_, j_)), shape=(2 * n_r * n_p,) * 2)
    rhs = np.zeros((2 * n_r * n_p, v.shape[0]))
    rhs[row[:, 0], :] = v.T / r_row
    x = sla.splu(m).solve(rhs)
    return (x[col[-1, :], :] / r_col).T


@pytest.mark.parametrize("shape, r_row, r_col", [((5, 8), 1.0, 2.0), ((12, 6), 50.0, 10.0),
                                                  ((9, 14), 1000.0, 1000.0), ((1, 4), 3.0, 3.0), ((6, 1), 3.0, 7.0)])
def test_mesh_matches_nodal_solution(shape, r_row, r_col):
    rng = np.random.default_rng(sum(shape))
    g = rng.uniform(0, 25e-6, shape) * (rng.random(shape) > 0.2)
    v = rng.uniform(-0.2, 0.2, (3, shape[0]))
    want = nodal_currents(g, v, r_row, r_col)
    got = mesh_currents(g, v, Wires(r_row, r_col))
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12 * np.abs(want).max())
    assert np.max(np.abs(v @ g - want)) > 1e-4 * np.abs(want).max()  # the wires matter at these values


def test_one_sided_and_ideal_wires():
    rng = np.random.default_rng(3)
    g = rng.uniform(0, 25e-6, (7, 9))
    v = rng.uniform(-0.2, 0.2, (2, 7))
    np.testing.assert_array_equal(mesh_currents(g, v, Wires(0, 0)), v @ g)
    for wires, oracle in ((Wires(0.0, 20.0), (1e-9, 20.0)), (Wires(20.0, 0.0), (20.0, 1e-9))):
        np.testing.assert_allclose(mesh_currents(g, v, wires), nodal_currents(g, v, *oracle), rtol=1e-6)
    np.testing.assert_allclose(effective_conductance(g, Wires(5, 5)).T @ v[0], mesh_currents(g, v[0], Wires(5, 5))[0])


def test_bad_wires_and_shapes():
    with pytest.raises(ParameterError, match="r_row_ohm"):
        Wires(-1.0, 1.0)
    with pytest.raises(ParameterError, match="r_col_ohm"):
        Wires(1.0, float("nan"))
    with pytest.raises(ParameterError, match="drives"):
        mesh_currents(np.ones((3, 2)), np.ones(4), Wires(1, 1))
    with pytest.raises(ParameterError, match="conductances"):
        mesh_currents(-np.ones((3, 2)), np.ones(3), Wires(1, 1))


def test_wired_weights_ideal_and_tiled():
    rng = np.random.default_rng(5)
    prim = CrossbarArray(rng.normal(0, 0.5, (5, 9)), rng.normal(0, 0.3, 5), tile_rows=4, tile_cols=2,
                         devices_per_weight=4)
    w, b = wired_weights(prim, Wires(0, 0))
    np.testing.assert_allclose(w, prim.weights, atol=1e-12)
    np.testing.assert_allclose(b, prim.bias, atol=1e-12)
    # tiled: each 4-row × 2-weight tile is its own mesh, the partial sums add (checked with the nodal solve)
    wires = Wires(40.0, 40.0)
    w, b = wired_weights(prim, wires)
    rows_w = np.concatenate([prim.weights, prim.bias[:, None]], axis=1)
    want = np.zeros_like(rows_w)
    for o0 in range(0, 5, 2):
        outs = range(o0, min(o0 + 2, 5))
        maps = [ConductanceMap(float(np.abs(rows_w[o]).max()), 25e-6) for o in outs]
        for r0 in range(0, 10, 4):
            rs = slice(r0, min(r0 + 4, 10))
            g = np.concatenate([np.stack(m.conductances(rows_w[o, rs]), 1) for m, o in zip(maps, outs)], 1) * 2
            eff = nodal_currents(g, np.eye(g.shape[0]), 40.0, 40.0) / 2
            for k, (m, o) in enumerate(zip(maps, outs)):
                want[o, rs] = m.weights(eff[:, 2 * k], eff[:, 2 * k + 1])
    np.testing.assert_allclose(w, want[:, :9], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(b, want[:, 9], rtol=1e-7, atol=1e-10)
    assert np.abs(w - prim.weights).max() > 1e-3


@pytest.mark.ngspice
def test_wired_tile_in_ngspice_matches_the_engine_model():
    """A 24 × 24 tile (bias row included) at 20 Ω per cell: the netlisted mesh against `wired_weights`."""
    rng = np.random.default_rng(11)
    n = 24
    prim = CrossbarArray(rng.normal(0, 0.5, (n, n)), rng.normal(0, 0.3, n))
    cols = [CrossbarColumnBlock.from_primitive(prim, j) for j in range(n)]
    wires = Wires.uniform(20.0)
    tile = tile_subckt(cols, wires=wires)
    assert tile_conductances(cols).shape == (n + 1, 2 * n)
    x = rng.uniform(-1, 1, (6, n))
    ins, outs = [f"in_{i}" for i in range(n)], [f"out_{j}" for j in range(n)]
    deck = Deck("wired tile", subckts=[cols[0].subckts()[0], tile])
    deck.elements += indexed_inputs(x, ins, cols[0].volts_per_unit)
    deck.elements.append(instance("dut", tile.name, (*ins, *outs)))
    res = run_inline(SimJob("tile", index_sweep(deck, len(x)).render(), 120.0))
    assert res.ok, res.error
    spice = np.stack([np.asarray(res.vectors[o]) / c.out_volts_per_unit for o, c in zip(outs, cols)], 1)
    fs = np.array([c.full_scale() for c in cols])
    w_eff, b_eff = wired_weights(prim, wires)
    model_err = np.abs(spice - (x @ w_eff.T + b_eff)) / fs
    ignore_err = np.abs(spice - prim.ideal(x)) / fs
    assert model_err.max() < 1e-4, model_err.max()
    assert ignore_err.max() > 5e-3, ignore_err.max()  # the wires are visible: the check can fail


def test_wired_mesh_needs_resistance():
    from circuits.spice.crossbar_tile import mesh_elements

    with pytest.raises(ParameterError, match="r_row_ohm"):
        mesh_elements(["a"], np.ones((1, 2)), ["s0", "s1"], Wires(0.0, 1.0))
    with pytest.raises(ParameterError, match="sinks"):
        mesh_elements(["a"], np.ones((1, 2)), ["s0"], Wires(1.0, 1.0))
