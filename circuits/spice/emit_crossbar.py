"""Crossbar network netlists: one `CrossbarColumnBlock` per output column, voltage in and voltage out.

The network's signal is a voltage V = scale·x (scale in V per model unit). A column's rows are
read directly at that voltage, so its read scale is the network's, and scale must stay within
the PCM read range (``V_READ_MAX_V`` = 0.2 V per unit; inputs |x| ≤ 1 are read at ≤ 0.2 V).
The column's two-TIA readout gives V_out = a_out·y with a_out = v_out_fs/y_fs (`crossbar_blocks`),
so choosing y_fs = v_out_fs/scale (v_out_fs = 1 V) makes V_out = scale·y: blocks chain directly,
like the op-amp blocks (R_f = w_max/(n·(g_max − g_min)), independent of the scale).

By default the network netlist has no DAC/ADC quantization: it checks the analog signal path.
With converters for a bank (``ctx.state["crossbar.converters"][bank] = (dac_bits, dac_fs,
adc_bits, adc_fs)``, full scales in model units, from `compiler.netlist.NetlistOptions.converters`)
every column quantizes its rows and its output with `Quantizer` at those full scales × scale —
the engine's ``quantized`` DAC/ADC maps with the full scales they calibrated.

A layer with more rows (inputs + bias row) than the primitive's ``tile_rows`` is netlisted as its
tiles: per output column, one column block per row tile on that tile's rows (the bias row in the
last), each giving its partial sum at V = scale·y_k, added by an op-amp summer with unit gains
(`SummerBlock`, V_o = Σ V_k), as on IBM's chip where row tiles' partial sums are combined.
"""

from __future__ import annotations

import numpy as np

from circuits.base import Primitive
from circuits.crossbar import CrossbarArray
from circuits.errors import ParameterError
from circuits.errors import UnsupportedError
from circuits.spice.blocks_linear import SummerBlock
from circuits.spice.crossbar_blocks import V_READ_MAX_V, CrossbarColumnBlock
from circuits.spice.emit import EmitContext, per_row, register
from circuits.spice.emit_opamp import place

V_OUT_FS_V = 1.0  # the column's output full scale in volts; y_fs = V_OUT_FS_V/scale


def check_read_scale(volts_per_unit: float) -> None:
    """Crossbar rows are read at the network's signal voltage: at most ``V_READ_MAX_V`` per unit."""
    if not 0 < volts_per_unit <= V_READ_MAX_V:
        raise ParameterError(
            f"scale: {volts_per_unit} V per unit is outside (0, {V_READ_MAX_V}] V; crossbar rows are read "
            f"at the network's signal voltage and PCM must be read below ~{V_READ_MAX_V} V per unit "
            f"(use e.g. --scale 0.1 with --target crossbar)")


def column_blocks(prim: CrossbarArray, volts_per_unit: float,
                  converters: tuple | None = None) -> list[CrossbarColumnBlock]:
    """Every output column (index g·out + o for grouped weights), designed for V = volts_per_unit·x at
    both its rows and its output; ParameterError when the scale exceeds the PCM read range."""
    check_read_scale(volts_per_unit)
    columns = int(np.prod(prim.weights.shape[:-1]))
    conv: dict = {}
    if converters is not None:
        dac_bits, dac_fs, adc_bits, adc_fs = converters
        conv = {"dac_bits": dac_bits, "adc_bits": adc_bits,
                "dac_fs_v": None if dac_fs is None else dac_fs * volts_per_unit,
                "adc_fs_v": None if adc_fs is None else adc_fs * volts_per_unit}
    return [CrossbarColumnBlock.from_primitive(prim, c, volts_per_unit, y_fs=V_OUT_FS_V / volts_per_unit,
                                               v_out_fs_v=V_OUT_FS_V, **conv)
            for c in range(columns)]


@register("crossbar.tiles")
def emit_crossbar(prim: Primitive, ctx: EmitContext, ins: list[np.ndarray]) -> np.ndarray:
    """y[..., o] = Σ W[o, i]·x[..., i] + b[o] per column; grouped weights act on x[..., g, :]."""
    assert isinstance(prim, CrossbarArray)
    converters = ctx.state.get("crossbar.converters", {}).get(ctx.node_name)
    if prim.tile_grid()[1] > 1:
        if converters is not None:
            raise UnsupportedError(f"{ctx.node_name}: DAC/ADC in a netlist of a row-tiled layer (each tile's ADC "
                                   "would quantize a partial sum, the engine's the whole sum); netlist it untiled")
        tiles = row_tiles(prim, ctx.scale)
        summer = SummerBlock((1.0,) * len(tiles[0]), volts_per_unit=ctx.scale, input_limit=V_OUT_FS_V / ctx.scale,
                             name="xbar_partial_sum")

        def tiled(rows: list[str], c: int) -> str:
            parts = [place(ctx, blk, rows[sl], "xbar") for blk, sl in tiles[c]]
            return place(ctx, summer, parts, "psum")
        return per_row(ins[0], prim.weights, tiled)
    blocks = column_blocks(prim, ctx.scale, converters)
    return per_row(ins[0], prim.weights, lambda rows, c: place(ctx, blocks[c], rows, "xbar"))


def row_tiles(prim: CrossbarArray, volts_per_unit: float) -> list[list[tuple[CrossbarColumnBlock, slice]]]:
    """Per output column, its row tiles: (column block on the tile's rows, the input slice it reads).
    The bias row is the last row; a tile holding only the bias row reads input 0 through a zero weight."""
    check_read_scale(volts_per_unit)
    w = np.asarray(prim.weights, np.float64)
    w = w.reshape(-1, w.shape[-1])
    b = None if prim.bias is None else np.asarray(prim.bias, np.float64).reshape(-1)
    n_in = w.shape[1]
    rows = n_in + (b is not None)
    out = []
    for c in range(w.shape[0]):
        tiles = []
        for r0 in range(0, rows, prim.tile_rows):
            r1 = min(r0 + prim.tile_rows, rows)
            sl = slice(r0, min(r1, n_in))
            weights = w[c, sl] if sl.stop > sl.start else np.zeros(1)
            if sl.stop <= sl.start:
                sl = slice(0, 1)
            bias = float(b[c]) if b is not None and r1 == rows else None
            blk = CrossbarColumnBlock(weights, bias, volts_per_unit=volts_per_unit, g_max_s=prim.g_max_us * 1e-6,
                                      devices_per_side=prim.devices_per_weight // 2, y_fs=V_OUT_FS_V / volts_per_unit,
                                      v_out_fs_v=V_OUT_FS_V, name=f"xbar_col_{c}_tile_{r0 // prim.tile_rows}")
            tiles.append((blk, sl))
        out.append(tiles)
    return out
