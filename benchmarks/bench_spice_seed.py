"""Seeded against unseeded whole-network ngspice runs (`sim.spice.seed`), current target.

One run measures both on the same inputs: the digits MLP (64-16-10, models/examples) on
``--samples`` test inputs, one chip instance (``--chip-seed``, ``--sizing``) and the nominal
default-sizing network, seeded and unseeded, wall seconds per sample with ``--workers``
parallel ngspice processes (medians of per-sample job times, and batch wall / samples), and
their agreement (max |Δy| relative to max |y|). Then a random 196-50-10 ReLU MLP (MNIST-sized,
built here) seeded only (``--mnist-samples``; unseeded with ``--mnist-unseeded``). The cell
tables are characterised first (timed apart, `seed.tables_for`). Prints a table and writes
JSON next to this file (``bench_spice_seed.json``); never fails on a time (target: seeded
digits ≤ 1 s per sample).

    python benchmarks/bench_spice_seed.py [--samples 6] [--workers 2] [--mnist-samples 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
import itertools

from circuits.data import model_file
from compiler.netlist import emit_netlist
from compiler.pipeline import compile_model
from sim.spice import seed as seeding
from sim.spice_commands import default_scale, netlist_options, run_network_spice

TARGET_S = 1.0


def mlp_onnx(sizes: tuple[int, ...], path: Path, rng: np.random.Generator) -> None:
    """A ReLU MLP with He-scaled random weights (no trained MNIST model ships with Kelvin)."""
    nodes, inits, prev = [], [], "x"
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        w = (rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32)
        bias = (0.05 * rng.standard_normal(b)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(bias, f"b{i}")]
        out = "y" if i == len(sizes) - 2 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [out if out == "y" else f"g{i}"]))
        if out != "y":
            nodes.append(helper.make_node("Relu", [f"g{i}"], [out]))
        prev = out
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, sizes[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, sizes[-1]])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def timed(compiled, x: np.ndarray, scale: float, workers: int, seeded: bool, **kw) -> dict:
    """Outputs and per-sample wall time of one batch (the batch wall over its samples)."""
    t0 = time.perf_counter()
    y = run_network_spice(compiled, {compiled.graph.inputs[0]: x}, scale, workers=workers, progress=False,
                          seeded=seeded, **kw)
    wall = time.perf_counter() - t0
    return {"y": next(iter(y.values())), "s_per_sample": wall / len(x), "wall_s": wall}


def job_times(compiled, x: np.ndarray, scale: float, workers: int, seeded: bool, **kw) -> float:
    """Median seconds of a single sample run alone (one job per batch): the per-sample latency."""
    return statistics.median(timed(compiled, x[i:i + 1], scale, 1, seeded, **kw)["wall_s"] for i in range(len(x)))


def calibrate(compiled, scale: float, **kw) -> float:
    nl = emit_netlist(compiled.graph, compiled.target, netlist_options("current", scale, 10**9, kw.get("chip_seed"),
                                                                         kw.get("sizing", "default")))
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
    report: dict = {"scale_a": scale, "workers": args.workers, "samples": args.samples, "target_s": TARGET_S, "runs": []}
    configs = [("digits 64-16-10", {"chip_seed": args.chip_seed, "sizing": args.sizing}),
               ("digits 64-16-10", {"chip_seed": None, "sizing": "default"})]
    for name, kw in configs:
        cal = calibrate(digits, scale, **kw)
        seeded = timed(digits, x, scale, args.workers, True, **kw)
        plain = timed(digits, x, scale, args.workers, False, **kw)
        report["runs"].append({
            "network": name, **kw, "calibration_s": cal, "samples": len(x),
            "seeded_s_per_sample": seeded["s_per_sample"], "unseeded_s_per_sample": plain["s_per_sample"],
            "speedup": plain["s_per_sample"] / seeded["s_per_sample"],
            "max_rel_diff": agreement(seeded["y"], plain["y"]),
        })
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mnist_mlp.onnx"
        mlp_onnx((196, 50, 10), path, np.random.default_rng(0))
        mnist = compile_model(str(path), "current")
        xm = np.random.default_rng(1).uniform(0, 1, (args.mnist_samples, 196))
        kw = {"chip_seed": args.chip_seed, "sizing": args.sizing, "max_devices": 10**6}
        cal = calibrate(mnist, scale, chip_seed=args.chip_seed, sizing=args.sizing)
        seeded = timed(mnist, xm, scale, args.workers, True, **kw)
        run = {"network": "random 196-50-10", "chip_seed": args.chip_seed, "sizing": args.sizing,
               "calibration_s": cal, "samples": len(xm), "seeded_s_per_sample": seeded["s_per_sample"]}
        if args.mnist_unseeded:
            plain = timed(mnist, xm, scale, args.workers, False, **kw)
            run.update(unseeded_s_per_sample=plain["s_per_sample"], max_rel_diff=agreement(seeded["y"], plain["y"]),
                       speedup=plain["s_per_sample"] / seeded["s_per_sample"])
        nl = emit_netlist(mnist.graph, mnist.target, netlist_options("current", scale, 10**9, args.chip_seed, args.sizing))
        run["devices"] = nl.devices
        report["runs"].append(run)
    print(f"{'network':<18} {'chip':>5} {'sizing':>8} {'n':>3} {'seeded s':>9} {'unseeded s':>11} {'speedup':>8} "
          f"{'max rel diff':>13} {'calib s':>8}")
    for r in report["runs"]:
        print(f"{r['network']:<18} {r['chip_seed']!s:>5} {r['sizing']:>8} {r['samples']:>3} "
              f"{r['seeded_s_per_sample']:>9.2f} {r.get('unseeded_s_per_sample', float('nan')):>11.2f} "
              f"{r.get('speedup', float('nan')):>8.1f} {r.get('max_rel_diff', float('nan')):>13.2e} {r['calibration_s']:>8.1f}")
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
