"""Crossbar tiles: many columns on shared row drivers, optionally on resistive wires (IR drop).

`tile_subckt` writes one tile as a ``.subckt``. With `circuits.ir_drop.Wires` the cells sit on a
mesh of row and column wire segments (`mesh_elements`), in the layout `circuits.ir_drop` solves;
`wired_weights` is that solution in model units: the weights a layer's tiles effectively apply,
which the engine's ``irdrop`` hardware model multiplies by (`sim.engine.hardware.IrDrop`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from circuits.crossbar import CrossbarArray
from circuits.errors import ParameterError
from circuits.ir_drop import Wires, effective_conductance
from circuits.spice.crossbar_blocks import ConductanceMap, CrossbarColumnBlock, row_drivers
from circuits.spice.netlist import Element, Subckt, resistor

_log = logging.getLogger(__name__)


def tile_conductances(columns: Sequence[CrossbarColumnBlock]) -> np.ndarray:
    """The tile's cell conductances (rows, 2·columns) in siemens, physical columns G+₀, G−₀, G+₁, …
    (each cell holds ``devices_per_side`` devices in parallel): the layout `circuits.ir_drop` solves."""
    cells = []
    for col in columns:
        g_pos, g_neg = col.conductances()
        cells += [col.devices_per_side * g_pos, col.devices_per_side * g_neg]
    return np.stack(cells, axis=1)


def mesh_elements(rows: Sequence[str], g_s: np.ndarray, sinks: Sequence[str], wires: Wires) -> list[Element]:
    """The wired array of `circuits.ir_drop`: row i driven from node ``rows[i]`` at the left through
    ``r_row_ohm`` per cell pitch, physical column k collected into node ``sinks[k]`` (a TIA's
    virtual ground) at the bottom through ``r_col_ohm`` per pitch, cell (i, k) a conductance g_s[i, k]."""
    n_r, n_p = g_s.shape
    if len(rows) != n_r or len(sinks) != n_p:
        raise ParameterError(f"mesh: {len(rows)} rows and {len(sinks)} sinks for {n_r}×{n_p} cells")
    if wires.r_row_ohm <= 0 or wires.r_col_ohm <= 0:
        raise ParameterError("mesh: a netlisted wire needs r_row_ohm and r_col_ohm > 0 (use no mesh for ideal wires)")
    els: list[Element] = []
    for i in range(n_r):
        prev = rows[i]
        for k in range(n_p):
            node = f"wr_{i}_{k}"
            els.append(resistor(f"wr_{i}_{k}", prev, node, wires.r_row_ohm))
            if g_s[i, k] > 0:
                els.append(resistor(f"cell_{i}_{k}", node, f"wc_{i}_{k}", 1.0 / g_s[i, k]))
            prev = node
    for k in range(n_p):
        for i in range(n_r):
            below = f"wc_{i + 1}_{k}" if i + 1 < n_r else sinks[k]
            els.append(resistor(f"wc_{i}_{k}", f"wc_{i}_{k}", below, wires.r_col_ohm))
    return els


def tile_subckt(columns: Sequence[CrossbarColumnBlock], name: str = "xbar_tile",
                wires: Wires | None = None) -> Subckt:
    """One ``.subckt`` for a tile slice: shared row DACs and bias row, every column's pairs and readout.

    Ports: ``in_0..in_{rows-1}`` then ``out_0..out_{cols-1}``. The columns must share rows and converters.
    With ``wires`` (and a non-zero resistance) the cells sit on resistive row and column wires
    (`mesh_elements`, IR drop); without, every cell sees its row's drive and its TIA's virtual ground.
    """
    if not columns:
        raise ParameterError("columns: a tile needs at least one column")
    first = columns[0]
    def shared(c: CrossbarColumnBlock) -> tuple:
        return (c.n_inputs(), c.bias is None, c.v_read_fs_v, c.dac_bits, c.opamp)

    for c in columns[1:]:
        if shared(c) != shared(first):
            raise ParameterError(f"columns: {c.name} differs from {first.name} in rows, bias row, "
                                 "read range, DAC or op-amp")
    ins = [f"in_{i}" for i in range(first.n_inputs())]
    outs = [f"out_{j}" for j in range(len(columns))]
    els, rows = row_drivers(ins, first.dac(), first.bias is not None, first.v_read_fs_v)
    if wires is not None and not wires.ideal:
        sinks = []
        for j in range(len(columns)):
            p = CrossbarColumnBlock.node_prefix(f"c{j}")
            sinks += [f"{p}colp", f"{p}coln"]
        els += mesh_elements(rows, tile_conductances(columns), sinks, wires)
        for j, col in enumerate(columns):
            els += col.readout_elements(outs[j], prefix=f"c{j}")
    else:
        for j, col in enumerate(columns):
            els += col.column_elements(rows, outs[j], prefix=f"c{j}")
    _log.debug("tile %s: %d rows x %d columns, %d cards", name, len(rows), len(columns), len(els))
    return Subckt(name, (*ins, *outs), els, comment=f"crossbar tile: {len(rows)} rows x {len(columns)} columns")


def wired_weights(prim: CrossbarArray, wires: Wires, x_fs: float = 1.0) -> tuple[np.ndarray, np.ndarray | None]:
    """(W_eff, b_eff): what ``prim``'s tiles compute on ``wires``, y = W_eff·x + b_eff.

    Each output column is mapped as `ConductanceMap` maps it (w_max over the column, the bias row
    counted as b/x_fs and driven at x_fs), split into tiles of ``tile_rows`` × ``tile_cols`` weights
    (2 physical columns per weight), each tile's mesh solved by `effective_conductance`, and the
    tiles' partial sums added. With ideal wires the result is (W, b) exactly.
    """
    w = np.asarray(prim.weights, dtype=np.float64)
    groups = w.reshape(-1, *w.shape[-2:])
    bias = None if prim.bias is None else np.asarray(prim.bias, np.float64).reshape(groups.shape[0], -1)
    n_side = prim.devices_per_weight // 2
    w_eff = np.empty_like(groups)
    b_eff = None if bias is None else np.empty_like(bias)
    for gi, wg in enumerate(groups):
        rows_w = wg if bias is None else np.concatenate([wg, bias[gi][:, None] / x_fs], axis=1)  # (out, rows)
        out_f, n_rows = rows_w.shape
        w_max = np.max(np.abs(rows_w), axis=1)
        w_max = np.where(w_max > 0, w_max, 1.0)
        eff = np.zeros_like(rows_w)
        for o0 in range(0, out_f, prim.tile_cols):
            cols = slice(o0, min(o0 + prim.tile_cols, out_f))
            for r0 in range(0, n_rows, prim.tile_rows):
                rows = slice(r0, min(r0 + prim.tile_rows, n_rows))
                g = np.empty((rows.stop - r0, 2 * (cols.stop - o0)))
                for k, o in enumerate(range(o0, cols.stop)):
                    m = ConductanceMap(float(w_max[o]), prim.g_max_us * 1e-6)
                    g_pos, g_neg = m.conductances(rows_w[o, rows])
                    g[:, 2 * k], g[:, 2 * k + 1] = n_side * g_pos, n_side * g_neg
                g_eff = effective_conductance(g, wires) / n_side
                for k, o in enumerate(range(o0, cols.stop)):
                    m = ConductanceMap(float(w_max[o]), prim.g_max_us * 1e-6)
                    eff[o, rows] = m.weights(g_eff[:, 2 * k], g_eff[:, 2 * k + 1])
        w_eff[gi] = eff[:, :wg.shape[1]]
        if b_eff is not None:
            b_eff[gi] = eff[:, -1] * x_fs
    return w_eff.reshape(w.shape), None if b_eff is None else b_eff.reshape(np.shape(prim.bias))


__all__ = ["mesh_elements", "tile_conductances", "tile_subckt", "wired_weights"]
