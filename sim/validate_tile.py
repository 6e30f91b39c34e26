"""``kelvin validate OUTDIR --tile K``: one crossbar tile of a compiled network in ngspice, PWM readout.

Tile order (stable, and the numbering `crossbar_tiles` yields): crossbar layers in topological
order; within a layer its groups, then row tiles, then column tiles. A layer's rows are its inputs
then its bias row (driven at full scale, as the chip's bias row); row tile r holds rows
[r·R, (r+1)·R), column tile c holds outputs [c·C, (c+1)·C) for tile size R × C (`kelvin compile --tile`,
recorded in kelvin.json and applied by `sim.spice_commands.compile_outdir`).

A tile slice is N sampled columns of tile K read by `circuits.spice.crossbar_pwm` (PWM pulses into
one op-amp integrator per column, then the ADC) over a few uniform random inputs in [−1, 1]. The
rows are driven by ideal sources and every column sits at its own virtual ground, so the columns
do not interact and a slice computes exactly what those columns compute in the whole tile. Its
ideal function is the tile's partial sum y = Q_adc(Σ_{i in tile rows} wᵢ·Q_dac(xᵢ) [+ b if the
tile holds the bias row]), the ADC range y_fs calibrated as the engine calibrates it (the largest
|output| over the slice's inputs). Netlists are built for that slice only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, replace

import numpy as np

from circuits.crossbar import CrossbarArray
from circuits.errors import InputError, ParameterError
from circuits.spice.crossbar_pwm import PwmColumnBlock
from circuits.spice.crossbar_pwm_bench import SliceReading, read_slice, slice_deck, slice_errors
from compiler.ir import Graph, PrimitiveNode
from sim.spice import SimJob, run_jobs

log = logging.getLogger(__name__)

X_FS = 1.0  # the DAC's full scale, model units; the random inputs span it


@dataclass(frozen=True, slots=True)
class TileRef:
    """Tile ``index``: which layer, group, row and column tile, and the rows/outputs it holds."""

    index: int
    layer: str
    group: int
    row_tile: int
    col_tile: int
    rows: tuple[int, int]  # [start, stop) over the layer's rows (inputs, then the bias row)
    columns: tuple[int, int]  # [start, stop) over the group's outputs
    bias_row: bool  # the tile holds the layer's bias row (the last of its rows)
    tile_rows: int
    tile_cols: int

    def describe(self) -> str:
        r0, r1 = self.rows
        inputs = f"inputs {r0}..{min(r1, r0 + self.n_inputs) - 1}" if self.n_inputs else "no inputs"
        bias = " + the bias row" if self.bias_row else ""
        return (f"tile {self.index}: layer {self.layer}, group {self.group}, row tile {self.row_tile}, "
                f"column tile {self.col_tile} ({inputs}{bias}; outputs {self.columns[0]}..{self.columns[1] - 1}; "
                f"tile size {self.tile_rows}x{self.tile_cols})")

    @property
    def n_inputs(self) -> int:
        return self.rows[1] - self.rows[0] - int(self.bias_row)


def crossbar_tiles(graph: Graph) -> Iterator[TileRef]:
    """Every crossbar tile of ``graph`` in the documented order."""
    k = 0
    for node in graph.topo():
        prim = getattr(node, "primitive", None)
        if not (isinstance(node, PrimitiveNode) and isinstance(prim, CrossbarArray)):
            continue
        groups, n_rt, n_ct = prim.tile_grid()
        out_f, in_f = prim.weights.shape[-2:]
        n_rows = in_f + (prim.bias is not None)
        for g in range(groups):
            for r in range(n_rt):
                r0, r1 = r * prim.tile_rows, min((r + 1) * prim.tile_rows, n_rows)
                for c in range(n_ct):
                    yield TileRef(k, node.name, g, r, c, (r0, r1),
                                  (c * prim.tile_cols, min((c + 1) * prim.tile_cols, out_f)),
                                  prim.bias is not None and r1 == n_rows, prim.tile_rows, prim.tile_cols)
                    k += 1


def find_tile(graph: Graph, k: int) -> TileRef:
    """Tile ``k``; the error says how many tiles there are."""
    count = 0
    for ref in crossbar_tiles(graph):
        if ref.index == k:
            return ref
        count += 1
    if count == 0:
        raise ParameterError("--tile: the compiled network has no crossbar tiles")
    raise ParameterError(f"--tile: {k} is out of range; the compile has {count} crossbar tiles (0..{count - 1})")


def tile_columns(prim: CrossbarArray, ref: TileRef, outputs: list[int], y_fs: float | None) -> list[PwmColumnBlock]:
    """The PWM column blocks of ``outputs`` (indices into the group's outputs) over the tile's rows."""
    w = np.asarray(prim.weights, np.float64)
    groups = w.reshape(-1, *w.shape[-2:])
    w = groups[ref.group]
    b = None if prim.bias is None else np.asarray(prim.bias, np.float64).reshape(len(groups), -1)[ref.group]
    r0 = ref.rows[0]
    return [PwmColumnBlock(w[o, r0:r0 + ref.n_inputs], float(b[o]) if ref.bias_row else None, x_fs=X_FS,
                           y_fs=y_fs, g_max_s=prim.g_max_us * 1e-6, devices_per_side=prim.devices_per_weight // 2,
                           name=f"col_{o}")
            for o in outputs]


@dataclass(slots=True)
class TileReport:
    """What report.json carries for a validated tile."""

    location: dict
    sampled_columns: list[int]
    inputs: int
    y_fs: float
    lsb: float
    readout: dict
    errors: dict
    passed: bool
    simulation_s: float
    runtime_s: float
    error: str | None = None


def validate_tile(graph: Graph, k: int, *, columns: int = 8, inputs: int = 5, seed: int = 0,
                  workers: int | None = None, executor: Executor | None = None, timeout_s: float = 300.0,
                  progress: bool = False) -> TileReport:
    """Simulate ``columns`` sampled columns of tile ``k`` over ``inputs`` random inputs; compare with ideal."""
    if columns < 1 or inputs < 1 or seed < 0:
        raise ParameterError(f"--columns/--points/--seed: need columns ≥ 1, points ≥ 1, seed ≥ 0, got "
                             f"{columns}, {inputs}, {seed}")
    t_start = time.perf_counter()
    ref = find_tile(graph, k)
    prim = graph.node(ref.layer).primitive
    rng = np.random.default_rng(seed)
    n_out = ref.columns[1] - ref.columns[0]
    picked = np.arange(n_out) if columns >= n_out else np.sort(rng.choice(n_out, size=columns, replace=False))
    outputs = [ref.columns[0] + int(j) for j in picked]
    x = rng.uniform(-X_FS, X_FS, size=(inputs, ref.n_inputs))
    probe = tile_columns(prim, ref, outputs, None)
    s = np.concatenate([c.ideal_sum(x) for c in probe], axis=1)
    y_fs = float(np.max(np.abs(s))) or 1.0  # the engine's calibration: the largest |output| seen
    blocks = [replace(c, y_fs=y_fs) for c in probe]
    n_jobs = max(1, min(len(blocks), workers or 2))
    chunks = [list(range(len(blocks)))[i::n_jobs] for i in range(n_jobs)]
    jobs = [SimJob(f"tile {k} slice {i}", slice_deck([blocks[j] for j in ch], x,
                                                      title=f"kelvin tile {k} slice {i}").render(), timeout_s)
            for i, ch in enumerate(chunks)]
    results = run_jobs(jobs, workers=workers, executor=executor, progress=progress)
    analog = np.empty((inputs, len(blocks)))
    code = np.empty_like(analog)
    failed = [r.error for r in results if not r.ok]
    first = blocks[0]
    readout = {"t_lsb_s": first.t_lsb_s, "t_pwm_s": first.t_pwm_s, "v_read_v": first.v_read_v,
               "x_fs": X_FS, "dac_bits": first.dac_bits, "adc_bits": first.adc_bits,
               "v_out_fs_v": first.v_out_fs_v, "opamp_gbw_hz": first.opamp.gbw_hz,
               "c_int_f": [c.c_int_f for c in blocks]}
    doc = {**asdict(ref), "tiles_total": sum(1 for _ in crossbar_tiles(graph)), "description": ref.describe()}
    sim_s = float(sum(r.elapsed_s for r in results))
    if failed:
        return TileReport(doc, outputs, inputs, y_fs, first.lsb(), readout, {}, False, sim_s,
                          time.perf_counter() - t_start, failed[0])
    for ch, res in zip(chunks, results):
        reading = read_slice([blocks[j] for j in ch], res.vectors, inputs)
        analog[:, ch], code[:, ch] = reading.analog, reading.code
    err = slice_errors(blocks, x, SliceReading(analog, code))
    return TileReport(doc, outputs, inputs, y_fs, first.lsb(), readout, asdict(err), err.passed, sim_s,
                      time.perf_counter() - t_start)


def validate_tile_outdir(outdir, k: int, *, columns: int, inputs: int, seed: int, report: str | None,
                         workers: int | None, executor: Executor | None, timeout_s: float,
                         progress: bool) -> tuple[dict, str]:
    """Validate tile ``k`` of a crossbar compile; write the report if asked; return (report, text)."""
    from circuits.files import write_json
    from sim.spice import ngspice_version
    from sim.spice_commands import compile_outdir, load_outdir

    out, info = load_outdir(outdir)
    if info["target"] != "crossbar":
        raise InputError(f"{out}: compiled for target {info['target']!r}; --tile validates crossbar tiles "
                         "(compile with --target crossbar)")
    compiled = compile_outdir(out, info)  # with the tile size `kelvin compile --tile` recorded
    rep = validate_tile(compiled.graph, k, columns=columns, inputs=inputs, seed=seed, workers=workers,
                        executor=executor, timeout_s=timeout_s, progress=progress)
    doc = {"passed": rep.passed, "outdir": str(out), "target": info["target"], "seed": seed,
           "ngspice": ngspice_version(), "tile": asdict(rep)}
    if report:
        write_json(report, doc)
    return doc, format_tile(rep)


def format_tile(rep: TileReport) -> str:
    """A few lines: which tile, the readout, the errors and the verdict."""
    ro = rep.readout
    lines = [rep.location["description"] + f" of {rep.location['tiles_total']}",
             f"  {len(rep.sampled_columns)} column(s) {rep.sampled_columns[:8]}{' ...' if len(rep.sampled_columns) > 8 else ''}"
             f" x {rep.inputs} random input(s); PWM {ro['t_lsb_s'] * 1e9:g} ns LSB (T_pwm {ro['t_pwm_s'] * 1e9:g} ns), "
             f"{ro['dac_bits']}-bit DAC/{ro['adc_bits']}-bit ADC, y_fs {rep.y_fs:.4g} (LSB {rep.lsb:.3g})"]
    if rep.error is not None:
        lines.append(f"  FAIL: {rep.error}")
        return "\n".join(lines)
    e = rep.errors
    lines += [f"  ADC codes vs ideal: max {e['code_max_pct_fs']:.4f} % FS ({e['code_max_lsb']:.3g} LSB), "
              f"rms {e['code_rms_pct_fs']:.4f} % FS ({e['code_rms_lsb']:.3g} LSB), {100 * e['codes_equal']:.1f} % equal",
              f"  integrator vs unquantized sum: max {e['analog_max_pct_fs']:.4f} % FS ({e['analog_max_lsb']:.3g} LSB), "
              f"rms {e['analog_rms_pct_fs']:.4f} % FS (budget {e['analog_budget_pct_fs']:g} % FS)",
              f"  |code - sum| max {e['bound_max_lsb']:.3f} LSB (tolerance {e['bound_tolerance_lsb']:.3f} LSB): "
              f"{'ok' if rep.passed else 'FAIL'}; ngspice {rep.simulation_s:.1f} s, total {rep.runtime_s:.1f} s"]
    return "\n".join(lines)


__all__ = ["TileRef", "TileReport", "crossbar_tiles", "find_tile", "format_tile",
           "tile_columns", "validate_tile", "validate_tile_outdir"]
