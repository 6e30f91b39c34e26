"""One chip instance as a differentiable map from the nominal weights to what its synapses realize.

For training *for* a chip (Binas et al. 2016: training, not transistor area, absorbs mismatch), the
trainable parameters stay the nominal layer weights W (out, in); the chip map turns them into the
chip's effective weights, bank by bank, as `sim.chip.ChipInstance` folds them (signed layers as
positive and negated rows, signed inputs as positive and negative columns; `engine_graph(early=False)`
is the network it feeds):

    k = clip(rint(w/unit_r), −7, 7)                       (the netlist's 3-bit + sign levels)
    w_eff[R, j] = sgn(ℓ)·unit_r·T[R, j, sgn(ℓ), |ℓ|],   ℓ = s_R·s_j·k[r(R), c(j)]

with s_R, s_j = ±1 the row's and column's soma side. T holds, for every synapse position, the
realized current per unit of level for each sign and level: the soma's and input soma's mirror
errors times Σ_bits m_b·ρ_b, the copies' per-bit mirror ratios, which are additive over the 4/2/1
bits. T is read from the chip model itself: a few probe draws of the same chip (same seed, so the
same devices: draws are keyed by position) with every weight at +1, +2, +4 steps and their
negatives give each bit's ratio at every position. No transistor draw is read twice or restated.

Estimator (straight-through, stated): ∂w_eff/∂w = s_R·s_j·T[R, j, ·, |ℓ|]/|ℓ| (level 1 where ℓ = 0).
The map is mismatch-only (no Early-effect drift): the drift is evaluated by `--hardware chip`
at inference.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from circuits.current import SynapseArray
from circuits.spice.current_cells import MAX_LEVEL, CellSizing
from compiler.ir import PrimitiveNode
from compiler.pipeline import Compiled
from sim.engine.maps import ParamMap

BITS = (1, 2, 4)


@dataclass(frozen=True)
class ChipTable:
    """One bank of one chip: T (R, C, 2, 8) and T_bias (R, 2, 8) (sign index 0: ℓ > 0, 1: ℓ < 0)."""

    table: np.ndarray
    bias_table: np.ndarray | None
    out: int
    inputs: int

    @property
    def row_sides(self) -> int:
        return self.table.shape[0] // self.out

    @property
    def col_sides(self) -> int:
        return self.table.shape[1] // self.inputs


def side_signs(n: int, sides: int) -> np.ndarray:
    """+1 for the n positive somas (rows or columns), then −1 for their n negated twins if ``sides`` is 2."""
    return np.repeat([1, -1][:sides], n)


def realized_levels(k: np.ndarray, row_sides: int, col_sides: int) -> np.ndarray:
    """Nominal levels k [..., out, in] → the level ℓ = s_R·s_j·k each chip position realizes [..., R, C]."""
    out, n_in = k.shape[-2:]
    reps = (1,) * (k.ndim - 2) + (row_sides, col_sides)
    return np.outer(side_signs(out, row_sides), side_signs(n_in, col_sides)) * np.tile(k, reps)


def realized_bias(kb: np.ndarray, row_sides: int) -> np.ndarray:
    """Nominal bias levels [..., out] → each row's realized bias level [..., R]."""
    return side_signs(kb.shape[-1], row_sides) * np.tile(kb, (1,) * (kb.ndim - 1) + (row_sides,))


def level_table(per_bit: np.ndarray) -> np.ndarray:
    """Per-bit copy ratios [..., 3] (bits 1, 2, 4) → realized current per level [..., 8]: Σ_{b ∈ level} b·ρ_b."""
    out = np.zeros(per_bit.shape[:-1] + (MAX_LEVEL + 1,))
    for level in range(1, MAX_LEVEL + 1):
        for i, bit in enumerate(BITS):
            if level & bit:
                out[..., level] += bit * per_bit[..., i]
    return out


def _probe(compiled: Compiled, seed: int, scale: float | None, sizing: str, step_value: float) -> dict:
    from sim.chip import ChipInstance
    g = compiled.graph.copy()
    for node in g.nodes:
        prim = getattr(node, "primitive", None)
        if isinstance(node, PrimitiveNode) and isinstance(prim, SynapseArray):
            b = None if prim.bias is None else np.full(np.shape(prim.bias), step_value)
            node.primitive = prim.with_parameters(weights=np.full(prim.weights.shape, step_value), bias=b)
    inst = ChipInstance.draw(dataclasses.replace(compiled, graph=g), seed, scale, sizing=sizing)
    return inst.layers


def chip_tables(compiled: Compiled, seed: int, scale: float | None = None, sizing: str = "default") -> dict[str, ChipTable]:
    """Every synapse bank's table for chip ``seed`` (six probe draws: ±1, ±2, ±4 level steps)."""
    w_unit = CellSizing.preset(sizing).w_unit
    per_bit: dict[str, dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]] = {}
    shapes: dict[str, tuple[int, int]] = {}
    for node in compiled.graph.nodes:
        if isinstance(node, PrimitiveNode) and isinstance(node.primitive, SynapseArray):
            shapes[node.name] = node.primitive.weights.shape
    for sign in (1, -1):
        for bit in BITS:
            for name, lay in _probe(compiled, seed, scale, sizing, sign * bit * w_unit).items():
                per_bit.setdefault(name, {})[(sign, bit)] = (lay.weights / (sign * bit * w_unit),
                                                             lay.bias / (sign * bit * w_unit))
    tables = {}
    for name, probes in per_bit.items():
        out, inputs = shapes[name]
        any_w = next(iter(probes.values()))[0]
        rows, cols = any_w.shape
        s_r = side_signs(out, rows // out)
        pattern = np.outer(s_r, side_signs(inputs, cols // inputs))  # the position's level sign for a +k probe
        pb = np.zeros((rows, cols, 2, len(BITS)))
        pbb = np.zeros((rows, 2, len(BITS)))
        for (sign, bit), (w, b) in probes.items():
            # |w| = the soma's and input soma's errors × this bit's copy ratio, at every position; the
            # position's level had sign (probe sign)·s_R·s_j, which picks the PMOS or NMOS bank
            neg, bneg, i = sign * pattern < 0, sign * s_r < 0, BITS.index(bit)
            pb[:, :, 0, i] += np.where(neg, 0.0, np.abs(w))
            pb[:, :, 1, i] += np.where(neg, np.abs(w), 0.0)
            pbb[:, 0, i] += np.where(bneg, 0.0, np.abs(b))
            pbb[:, 1, i] += np.where(bneg, np.abs(b), 0.0)
        t, tb = level_table(pb), level_table(pbb)
        tables[name] = ChipTable(t, tb, out, inputs)
    return tables


@dataclass(frozen=True)
class ChipWeights(ParamMap):
    """Nominal (out, in) weights and (out,) bias → this chip's effective bank (see the module docstring)."""

    table: ChipTable
    w_unit: float
    ste = True
    deterministic = True

    def forward(self, p, rng):
        t = self.table
        w = p["weights"]
        b = p.get("bias")
        peak = np.abs(w).max(axis=1)
        if b is not None:
            peak = np.maximum(peak, np.abs(b))
        unit = np.maximum(self.w_unit, peak / MAX_LEVEL)
        k = np.clip(np.rint(w / unit[:, None]), -MAX_LEVEL, MAX_LEVEL).astype(np.int64)
        lev = realized_levels(k, t.row_sides, t.col_sides)
        idx = (lev < 0).astype(np.int64)
        mag = np.abs(lev)
        rows = np.arange(lev.shape[0])[:, None]
        cols = np.arange(lev.shape[1])[None, :]
        u = np.tile(unit, t.row_sides)[:, None]
        eff = np.sign(lev) * u * t.table[rows, cols, idx, mag]
        one = np.maximum(mag, 1)
        ratio = t.table[rows, cols, idx, one] / one  # STE gain: realized per nominal at this level
        out = dict(p)
        out["weights"] = eff.astype(w.dtype)
        pattern = np.outer(side_signs(t.out, t.row_sides), side_signs(t.inputs, t.col_sides))
        saved = [(pattern * ratio).astype(w.dtype), None]
        if b is not None and t.bias_table is not None:
            kb = np.clip(np.rint(b / unit), -MAX_LEVEL, MAX_LEVEL).astype(np.int64)
            levb = realized_bias(kb, t.row_sides)
            bidx, bmag = (levb < 0).astype(np.int64), np.abs(levb)
            r = np.arange(len(levb))
            out["bias"] = (np.sign(levb) * np.tile(unit, t.row_sides) * t.bias_table[r, bidx, bmag]).astype(b.dtype)
            bone = np.maximum(bmag, 1)
            saved[1] = (side_signs(t.out, t.row_sides) * t.bias_table[r, bidx, bone] / bone).astype(b.dtype)
        elif b is not None:  # the chip has no bias synapses for this bank: it realizes none, and cannot learn one
            out["bias"] = np.zeros(t.row_sides * t.out, b.dtype)
            saved[1] = np.zeros(t.row_sides * t.out, b.dtype)
        return out, saved

    def backward(self, saved, g):
        t = self.table
        gw_ratio, gb_ratio = saved
        out = dict(g)
        gw = (g["weights"] * gw_ratio).reshape(t.row_sides, t.out, t.col_sides, t.inputs)
        out["weights"] = gw.sum(axis=(0, 2))
        if "bias" in g and gb_ratio is not None:
            out["bias"] = (g["bias"] * gb_ratio).reshape(t.row_sides, t.out).sum(axis=0)
        return out
