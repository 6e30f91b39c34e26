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

from circuits.errors import KelvinError, UnsupportedError
from circuits.spice.block import BlockCircuit
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
    rng = np.random.default_rng(seed)
    instances = list(block_instances(graph))
    if not instances:
        raise KelvinError("the graph has no analog primitive blocks to validate")
    if sample is not None and sample < len(instances):
        chosen = sorted(rng.choice(len(instances), size=sample, replace=False))
        instances = [instances[i] for i in chosen]
    blocks, jobs, grids, reports = [], [], [], []
    for node, index in instances:
        try:
            block = build_block(node, index, scale)
        except KelvinError as exc:
            reports.append(BlockReport(node.name, node.kind, index, 0, None, None, 0.0, False, str(exc)))
            continue
        grid = block.test_points(points, rng)
        blocks.append((node, index, block))
        grids.append(grid)
        jobs.append(SimJob(f"{node.name}[{index}]", block.dc_bench(grid).render(), timeout_s))
    results = run_jobs(jobs, workers=workers, executor=executor, progress=progress) if jobs else []
    for (node, index, block), grid, res in zip(blocks, grids, results):
        reports.append(_judge(node, index, block, grid, res))
    return reports


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


def validate_outdir(outdir, *, sample: int | None, points: int, seed: int, report: str | None,
                    workers: int | None, executor: Executor | None, timeout_s: float,
                    progress: bool) -> tuple[dict, str]:
    """Validate a compiled directory; write the report if asked; return (report, table text)."""
    from circuits.files import write_json
    from compiler.pipeline import compile_model
    from sim.spice import ngspice_version
    from sim.spice_commands import load_outdir

    out, info = load_outdir(outdir)
    compiled = compile_model(out / "model.onnx", info["target"])
    reports = validate_graph(compiled.graph, scale=info["scale"], sample=sample, points=points, seed=seed,
                             workers=workers, executor=executor, timeout_s=timeout_s, progress=progress)
    doc = report_document(reports, {"outdir": str(out), "target": info["target"], "scale": info["scale"],
                                    "seed": seed, "points_per_block": points, "ngspice": ngspice_version()})
    if report:
        write_json(report, doc)
    return doc, format_reports(reports, doc["passed"])


def format_reports(reports: list[BlockReport], passed: bool) -> str:
    """A table of block results, failures first."""
    lines = [f"{'block':<28} {'primitive':<26} {'max %FS':>8} {'rms %FS':>8} {'tol %FS':>8}  result"]
    for r in sorted(reports, key=lambda r: (r.passed, r.name, r.index)):
        mx = "-" if r.max_error_pct_fs is None else f"{r.max_error_pct_fs:.4f}"
        rms = "-" if r.rms_error_pct_fs is None else f"{r.rms_error_pct_fs:.4f}"
        verdict = "ok" if r.passed else f"FAIL{': ' + r.error if r.error else ''}"
        lines.append(f"{r.name + f'[{r.index}]':<28} {r.primitive:<26} {mx:>8} {rms:>8} {r.tolerance_pct_fs:>8.3g}  {verdict}")
    bad = sum(not r.passed for r in reports)
    lines.append(f"{len(reports)} block(s) validated: {'all within tolerance' if passed else f'{bad} failed'}")
    return "\n".join(lines)
