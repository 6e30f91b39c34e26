"""Seeded against unseeded whole-network ngspice runs (`sim.spice.seed`), current target.

One run measures both on the same inputs: the digits MLP (64-16-10, models/examples) on
``--samples`` test inputs, one chip instance (``--chip-seed``, ``--sizing``) and the nominal
default-sizing network, seeded and unseeded, wall seconds per sample with ``--workers``
parallel ngspice processes (medians of per-sample job times, and batch wall / samples), and
their agreement (max |Δy| relative to max |y|). Then a random 196-50-10 ReLU MLP (MNIST-sized,
random dense weights, `dense_mlp`) seeded only (``--mnist-samples``; unseeded with ``--mnist-unseeded``). The cell
tables are characterised first (timed apart, `seed.tables_for`). Prints a table and writes
JSON next to this file (``bench_spice_seed.json``); never fails on a time (target: seeded
digits ≤ 1 s per sample). Then what Kelvin runs, `run_network_spice` (seeded samples batched
into one deck per job, `seed.batch_deck`): its seconds per sample and its agreement with the
one-sample seeded decks.

    python benchmarks/bench_spice_seed.py [--samples 6] [--workers 2] [--mnist-samples 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from circuits.data import model_file
from compiler.netlist import emit_netlist
from compiler.pipeline import compile_model
from sim import zoo
from sim.spice import SimJob, run_jobs
from sim.spice import seed as seeding
from sim.spice_commands import default_scale, netlist_options, run_network_spice

TARGET_S = 1.0


def dense_mlp(sizes: tuple[int, ...], seed: int = 0) -> onnx.ModelProto:
    """`sim.zoo.mlp` with weights U(−1.75, 1.75): ~93 % of them quantize to a non-zero level, so the
    network has every synapse a trained one would (He-scaled weights mostly round to 0 and vanish)."""
    model = zoo.mlp(sizes, seed=seed)
    rng = np.random.default_rng(seed)
    for i, t in enumerate(model.graph.initializer):
        w = numpy_helper.to_array(t)
        scale = 1.75 if w.ndim == 2 else 0.5
        model.graph.initializer[i].CopyFrom(numpy_helper.from_array(rng.uniform(-scale, scale, w.shape).astype(w.dtype),
                                                                    t.name))
    return model


def timed(compiled, x: np.ndarray, scale: float, workers: int, seeded: bool, chip_seed: int | None = None,
          sizing: str = "default") -> dict:
    """Outputs, median per-job seconds and batch wall per sample of one batch, built the way
    `run_network_spice` builds it (`seed.seed_deck`, released in one step, `seed.SNAP`, outputs
    at `seed.last_point`)."""
    nl = emit_netlist(compiled.graph, compiled.target, netlist_options("current", scale, 10**9, chip_seed, sizing))
    tables = seeding.tables_for(nl) if seeded else None
    name = compiled.graph.inputs[0]
    t0 = time.perf_counter()
    jobs = []
    for i in range(len(x)):
        deck = nl.deck({name: x[i]})
        if tables is not None:
            seeding.seed_deck(deck, nl, tables, {name: x[i]}, seeding.SNAP)
        jobs.append(SimJob(f"s{i}", deck.render(), 3600))
    t_decks = time.perf_counter() - t0
    results = run_jobs(jobs, workers=workers)
    wall = time.perf_counter() - t0
    failed = [r.name for r in results if not r.ok]
    if failed:
        raise SystemExit(f"jobs failed: {failed}: {results[0].error}")
    y = np.stack([next(iter(nl.read_outputs(seeding.last_point(r.vectors)).values())) for r in results])
    return {"y": y, "job_s": statistics.median(r.elapsed_s for r in results), "s_per_sample": wall / len(x),
            "decks_s": t_decks / len(x), "gmin": sum("gmin" in r.log for r in results), "devices": nl.devices}


def batched(compiled, x: np.ndarray, scale: float, workers: int, chip_seed: int | None, sizing: str) -> dict:
    """What Kelvin runs: `run_network_spice`, several samples per seeded deck (`seed.batch_deck`)."""
    t0 = time.perf_counter()
    y = run_network_spice(compiled, {compiled.graph.inputs[0]: x}, scale, workers=workers, progress=False,
                          chip_seed=chip_seed, sizing=sizing)
    return {"y": next(iter(y.values())), "s_per_sample": (time.perf_counter() - t0) / len(x)}


def calibrate(compiled, scale: float, chip_seed: int | None, sizing: str) -> float:
    nl = emit_netlist(compiled.graph, compiled.target, netlist_options("current", scale, 10**9, chip_seed, sizing))
    t0 = time.perf_counter()
    seeding.tables_for(nl, cache=False)
    return time.perf_counter() - t0


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chip-seed", type=int, default=0)
    ap.add_argument("--sizing", default="compact")
    ap.add_argument("--mnist-samples", type=int, default=2)
    ap.add_argument("--mnist-unseeded", action="store_true")
    args = ap.parse_args()
    scale = default_scale("current")
    with np.load(model_file("examples", "digits_test.npz")) as d:
        x = np.asarray(d["X"][: args.samples], np.float64)
    digits = compile_model(str(model_file("examples", "digits_mlp.onnx")), "current")
    out = Path(__file__).with_suffix(".json")
    report: dict = {"scale_a": scale, "workers": args.workers, "samples": args.samples, "target_s": TARGET_S, "runs": []}
    configs = [("digits 64-16-10", digits, x, args.chip_seed, args.sizing, True),
               ("digits 64-16-10", digits, x, None, "default", True)]
    if args.mnist_samples:
        mnist = compile_model(dense_mlp((196, 50, 10)), "current")
        xm = np.random.default_rng(1).uniform(0, 0.25, (args.mnist_samples, 196))  # dim pixels: hidden ~ 0-6 units
        configs.append(("random 196-50-10", mnist, xm, args.chip_seed, args.sizing, args.mnist_unseeded))
    for name, compiled, xs, chip_seed, sizing, compare in configs:
        cal = calibrate(compiled, scale, chip_seed, sizing)
        seeded = timed(compiled, xs, scale, args.workers, True, chip_seed, sizing)
        run = {"network": name, "chip_seed": chip_seed, "sizing": sizing, "devices": seeded["devices"],
               "samples": len(xs), "calibration_s": cal, "seeded_decks_s": seeded["decks_s"],
               "seeded_job_s": seeded["job_s"], "seeded_s_per_sample": seeded["s_per_sample"],
               "seeded_gmin_fallbacks": seeded["gmin"]}
        both = batched(compiled, xs, scale, args.workers, chip_seed, sizing)
        run.update(batched_s_per_sample=both["s_per_sample"], batched_vs_seeded=agreement(both["y"], seeded["y"]))
        if compare:
            plain = timed(compiled, xs, scale, args.workers, False, chip_seed, sizing)
            run.update(unseeded_job_s=plain["job_s"], unseeded_s_per_sample=plain["s_per_sample"],
                       speedup=plain["s_per_sample"] / seeded["s_per_sample"],
                       max_rel_diff=agreement(seeded["y"], plain["y"]))
        report["runs"].append(run)
        report["load_average"] = os.getloadavg()  # other work on the machine inflates every time
        out.write_text(json.dumps(report, indent=2) + "\n")  # after each run: a long MNIST run may be cut short
        print(json.dumps(run), flush=True)
    print(f"{'network':<18} {'chip':>5} {'sizing':>8} {'n':>3} {'seeded job s':>12} {'unseeded job s':>14} "
          f"{'seeded s/sample':>15} {'unseeded s/sample':>17} {'speedup':>8} {'max rel diff':>13} {'calib s':>8} "
          f"{'batched s/sample':>16} {'batched diff':>12}")
    for r in report["runs"]:
        print(f"{r['network']:<18} {r['chip_seed']!s:>5} {r['sizing']:>8} {r['samples']:>3} "
              f"{r['seeded_job_s']:>12.2f} {r.get('unseeded_job_s', float('nan')):>14.2f} "
              f"{r['seeded_s_per_sample']:>15.2f} {r.get('unseeded_s_per_sample', float('nan')):>17.2f} "
              f"{r.get('speedup', float('nan')):>8.1f} {r.get('max_rel_diff', float('nan')):>13.2e} {r['calibration_s']:>8.1f} "
              f"{r['batched_s_per_sample']:>16.2f} {r['batched_vs_seeded']:>12.2e}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
