"""``kelvin validate``: simulate block instances of a compiled network in ngspice, compare with ideal.

Each sampled instance gets a DC bench over random points of its input range (one ``.dc``
sweep of an index source), simulated in parallel through the runner. Errors are reported
as % of the block's output full scale, against the tolerance its circuit class states.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import asdict, dataclass

import numpy as np

from circuits.errors import KelvinError, ParameterError, UnsupportedError
from circuits.spice.block import INDEX_NODE, INDEX_SOURCE, BlockCircuit
from circuits.spice.netlist import Deck, spice_name, vsource
from compiler.ir import Graph, PrimitiveNode
from sim.spice import SimJob, SimResult, run_jobs

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BlockReport:
    """One block instance's validation result (the fields report.json carries)."""

    name: str
    primitive: str
    index: int
    points: int
    max_error_pct_fs: float | None
    rms_error_pct_fs: float | None
    tolerance_pct_fs: float
    passed: bool
    error: str | None = None
    settling_s: float | None = None
    power_w: float | None = None


def block_instances(graph: Graph) -> Iterator[tuple[PrimitiveNode, int]]:
    """Every (bank, instance index) pair: one per output of a linear bank, one per bank otherwise."""
    for node in graph.topo():
        if isinstance(node, PrimitiveNode) and node.primitive is not None:
            w = getattr(node.primitive, "weights", None)
            count = int(np.prod(w.shape[:-1])) if isinstance(w, np.ndarray) else 1
            for i in range(count):
                yield node, i


def build_block(node: PrimitiveNode, index: int, scale: float) -> BlockCircuit:
    """The circuit of instance ``index`` of a bank, from the circuit library."""
    from circuits.spice.library import CIRCUITS

    factory = CIRCUITS.get(node.kind)
    if factory is None:
        raise UnsupportedError(f"node {node.name!r}: no SPICE circuit for primitive {node.kind} "
                               f"(available: {', '.join(sorted(CIRCUITS))})")
    return factory(node.primitive, index, scale)


def validate_graph(graph: Graph, *, scale: float, sample: int | None = None, points: int = 21,
                   seed: int = 0, workers: int | None = None, executor: Executor | None = None,
                   timeout_s: float = 120.0, progress: bool = True) -> list[BlockReport]:
    """Validate all block instances, or a seeded sample of ``sample`` of them."""
    if points < 2 or seed < 0:  # a sweep needs two points; a seed is >= 0
        raise ParameterError(f"validate: need points >= 2 and seed >= 0, got points={points}, seed={seed}")
    rng = np.random.default_rng(seed)
    instances = list(block_instances(graph))
    if not instances:
        raise KelvinError("the graph has no analog primitive blocks to validate")
    if sample is not None and sample < len(instances):
        chosen = sorted(rng.choice(len(instances), size=sample, replace=False))
        instances = [instances[i] for i in chosen]
    blocks, jobs, grids, decks, reports = [], [], [], [], []
    for node, index in instances:
        try:
            block = build_block(node, index, scale)
        except KelvinError as exc:
            reports.append(BlockReport(node.name, node.kind, index, 0, None, None, 0.0, False, str(exc)))
            continue
        grid = block.test_points(points, rng)
        deck = block.dc_bench(grid)
        blocks.append((node, index, block))
        grids.append(grid)
        decks.append(deck)
        jobs.append(SimJob(f"{node.name}[{index}]", deck.render(), timeout_s))
        jobs.append(SimJob(f"{node.name}[{index}] step", _step_deck(deck).render(), timeout_s))
    results = run_jobs(jobs, workers=workers, executor=executor, progress=progress) if jobs else []
    for i, ((node, index, block), grid, deck) in enumerate(zip(blocks, grids, decks)):
        rep = _judge(node, index, block, grid, results[2 * i])
        if results[2 * i].ok:
            rep.power_w = _supply_power_w(deck, results[2 * i].vectors)
        rep.settling_s = _settling_s(block, results[2 * i + 1])
        reports.append(rep)
    return reports


STEP_AT_S = 1e-6
STEP_STOP_S = 1e-3
SETTLE_BAND = 0.01  # within 1 % of the output step


def _step_deck(deck: Deck) -> Deck:
    """The DC bench turned into a step response: the index source jumps from point 0 to point 1."""
    step = Deck(deck.title + " step", list(deck.models), list(deck.subckts), [], [], dict(deck.options))
    for e in deck.elements:
        if e.letter.upper() == "V" and e.name == INDEX_SOURCE:
            e = vsource(INDEX_SOURCE, INDEX_NODE, "0", 0.0, pulse=(0.0, 1.0, STEP_AT_S, 1e-9, 1e-9, 1.0, 2.0))
        step.elements.append(e)
    return step.tran(STEP_STOP_S / 2000, STEP_STOP_S)


def _settling_s(block: BlockCircuit, res: SimResult) -> float | None:
    """Time from the input step until the output stays within 1 % of its change (0.1 % of full scale at least).

    None when the run failed or the output is still moving in the last tenth of the window.
    """
    if not res.ok or "time" not in res.vectors:
        return None
    try:
        y = np.asarray(block.read(res.vectors), dtype=np.float64).reshape(len(res.vectors["time"]), -1)[:, 0]
    except (KeyError, ValueError, IndexError):
        return None
    t = np.asarray(res.vectors["time"], dtype=np.float64)
    before, after = y[t < STEP_AT_S], y[-1]
    if before.size == 0:
        return None
    delta = abs(after - before[-1])
    band = max(SETTLE_BAND * delta, 1e-3 * float(block.full_scale()))  # a null step settles at once
    outside = np.nonzero((t >= STEP_AT_S) & (np.abs(y - after) > band))[0]
    if outside.size and t[outside[-1]] > 0.9 * STEP_STOP_S:
        return None
    return 0.0 if outside.size == 0 else float(t[outside[-1]] - STEP_AT_S)


def _supply_power_w(deck: Deck, vectors) -> float | None:
    """Mean power the bench's top-level DC voltage sources deliver (supplies, references)."""
    total, found = 0.0, False
    for e in deck.elements:
        if e.letter.upper() != "V" or e.name == INDEX_SOURCE or not e.value.startswith("DC "):
            continue
        volts = float(e.value.split()[1])
        key = f"v{spice_name(e.name)}#branch"
        if volts == 0.0 or key not in vectors:
            continue
        total += -volts * float(np.mean(vectors[key]))
        found = True
    return total if found else None


def _judge(node: PrimitiveNode, index: int, block: BlockCircuit, grid: np.ndarray, res: SimResult) -> BlockReport:
    tol = float(block.tolerance_pct_fs)
    if not res.ok:
        return BlockReport(node.name, node.kind, index, len(grid), None, None, tol, False, res.error)
    got = np.asarray(block.read(res.vectors), dtype=np.float64).reshape(len(grid), -1)
    want = np.asarray(block.ideal(grid), dtype=np.float64).reshape(len(grid), -1)
    err = (got - want) / float(block.full_scale()) * 100.0
    mx, rms = float(np.max(np.abs(err))), float(np.sqrt(np.mean(err**2)))
    return BlockReport(node.name, node.kind, index, len(grid), mx, rms, tol, mx <= tol)


def report_document(reports: list[BlockReport], extra: dict) -> dict:
    """report.json: overall pass, per-block results, and what was validated."""
    return {"passed": bool(reports) and all(r.passed for r in reports), **extra,
            "blocks": [asdict(r) for r in reports]}


NETWORK_TOLERANCE_PCT_FS = {"opamp": 0.5, "crossbar": 0.5, "current": 5.0}
"""Whole-network max-error tolerance, % of output full scale. Block errors add up along a path:
op-amp and crossbar blocks are within 0.1 %; current-mode blocks within 3 % (uncascoded mirrors'
Early effect), and a signed output layer's cancelling soma pair magnifies it (digits: ~4 % max)."""


def validate_outdir(outdir, *, sample: int | None, points: int, seed: int, report: str | None,
                    workers: int | None, executor: Executor | None, timeout_s: float,
                    progress: bool, inputs: str | None = None) -> tuple[dict, str]:
    """Validate a compiled directory (blocks; and the whole network on ``inputs`` if given).

    Writes the report if asked; returns (report, table text).
    """
    from circuits.files import record_derived, write_json
    from sim.spice import ngspice_version
    from sim.spice_commands import compile_outdir, load_outdir

    out, info = load_outdir(outdir)
    compiled = compile_outdir(out, info)
    reports = validate_graph(compiled.graph, scale=info["scale"], sample=sample, points=points, seed=seed,
                             workers=workers, executor=executor, timeout_s=timeout_s, progress=progress)
    doc = report_document(reports, {"outdir": str(out), "target": info["target"], "scale": info["scale"],
                                    "seed": seed, "points_per_block": points, "ngspice": ngspice_version()})
    text = format_reports(reports, doc["passed"])
    if inputs is not None:
        network = validate_network(compiled, inputs, info, workers=workers, executor=executor,
                                   timeout_s=timeout_s, progress=progress)
        doc["network"] = network
        doc["passed"] = doc["passed"] and network["passed"]
        text += (f"\nwhole network on {network['samples']} input(s): max {network['max_error_pct_fs']:.4f} % FS, "
                 f"rms {network['rms_error_pct_fs']:.4f} % FS (tolerance {network['tolerance_pct_fs']:g}), "
                 f"argmax agreement {network['argmax_agreement']:.0%}: "
                 f"{'ok' if network['passed'] else 'FAIL'}")
    if report:
        write_json(report, doc)
        record_derived(out, report)  # a report inside OUTDIR describes this netlist: a recompile drops it
    return doc, text


def realized_graph(compiled):
    """The graph with the weights the circuits realize (current mode: 3-bit + sign levels)."""
    if compiled.target.name != "current":
        return compiled.graph
    from circuits.current import SynapseArray
    from circuits.spice.emit_current import quantized_synapse_array

    graph = compiled.graph.copy()
    for node in graph.topo():
        if isinstance(node, PrimitiveNode) and isinstance(node.primitive, SynapseArray):
            node.primitive = quantized_synapse_array(node.primitive)
    return graph


def validate_network(compiled, inputs: str, info: dict, *, workers: int | None, executor: Executor | None,
                     timeout_s: float, progress: bool) -> dict:
    """The whole netlist in ngspice against the engine on the samples of an input file: the realized
    (quantized) network, or for a chip instance (``compile --chip-seed``) that chip's engine model, the
    same mismatch draws the netlist holds."""
    from sim.inputs import load_inputs, reshape_rows
    from sim.engine import execute
    from sim.spice_commands import run_network_spice

    feeds = reshape_rows(compiled.graph, load_inputs(inputs, compiled.graph))
    spice = run_network_spice(compiled, feeds, info["scale"], workers=workers, executor=executor,
                              timeout_s=timeout_s, progress=progress, chip_seed=info.get("chip_seed"))
    if info.get("chip_seed") is not None:
        from sim.engine.prepare import HardwareOptions, build_program
        hw = HardwareOptions(modes=("chip", "early"), chip_seed=int(info["chip_seed"]), sizing=info.get("sizing", "default"),
                             scale=info["scale"])
        ideal = build_program(compiled, hw).run({k: v.astype(np.float32) for k, v in feeds.items()})
    else:
        ideal = execute(realized_graph(compiled), {k: v.astype(np.float32) for k, v in feeds.items()})
    name = next(iter(spice))
    got, want = spice[name].astype(np.float64), ideal[name].astype(np.float64)
    full_scale = float(np.max(np.abs(want))) or 1.0
    err = (got - want) / full_scale * 100
    tol = NETWORK_TOLERANCE_PCT_FS.get(info["target"], 1.0)
    flat_g, flat_w = got.reshape(len(got), -1), want.reshape(len(want), -1)
    result = {"output": name, "samples": int(len(got)), "full_scale": full_scale,
              "max_error_pct_fs": float(np.max(np.abs(err))), "rms_error_pct_fs": float(np.sqrt(np.mean(err**2))),
              "argmax_agreement": float(np.mean(flat_g.argmax(1) == flat_w.argmax(1))),
              "tolerance_pct_fs": tol, "chip_seed": info.get("chip_seed")}
    result["passed"] = result["max_error_pct_fs"] <= tol
    return result


def format_reports(reports: list[BlockReport], passed: bool) -> str:
    """A table of block results, failures first."""
    lines = [f"{'block':<28} {'primitive':<26} {'max %FS':>8} {'rms %FS':>8} {'tol %FS':>8} "
             f"{'settle':>9} {'power':>9}  result"]
    for r in sorted(reports, key=lambda r: (r.passed, r.name, r.index)):
        mx = "-" if r.max_error_pct_fs is None else f"{r.max_error_pct_fs:.4f}"
        rms = "-" if r.rms_error_pct_fs is None else f"{r.rms_error_pct_fs:.4f}"
        verdict = "ok" if r.passed else f"FAIL{': ' + r.error if r.error else ''}"
        settle = "-" if r.settling_s is None else f"{r.settling_s * 1e6:.2f}us"
        power = "-" if r.power_w is None else f"{r.power_w * 1e6:.3g}uW"
        lines.append(f"{r.name + f'[{r.index}]':<28} {r.primitive:<26} {mx:>8} {rms:>8} "
                     f"{r.tolerance_pct_fs:>8.3g} {settle:>9} {power:>9}  {verdict}")
    bad = sum(not r.passed for r in reports)
    lines.append(f"{len(reports)} block(s) validated: {'all within tolerance' if passed else f'{bad} failed'}")
    return "\n".join(lines)
