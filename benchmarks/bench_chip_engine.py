"""Chip-instance engine against ngspice on the same instance: digits MLP (64-16-10), target current.

One run measures both: ngspice simulating the instance (``chip_seed``) on ``--samples`` test
inputs (its per-input wall time, with ``--workers`` parallel ngspice processes), and the
engine running `ChipInstance.engine_graph()` on the whole test set (per-input time, batched,
and one sample at a time). Agreement on the simulated samples: RMS and max error in % of the
output full scale (max |y_spice|) and argmax agreement. Prints JSON; never fails on a time
(targets reported as booleans: ratio ≥ 10,000×, RMS ≤ 2 % FS, argmax ≥ 98 %). For reference it also
scores the mismatch-only engine (``early=False``) and the nominal quantized network against the same run.

    python benchmarks/bench_chip_engine.py [--samples 30] [--seed 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from circuits.data import model_file
from compiler.pipeline import compile_model
from sim.chip import ChipInstance
from sim.engine import execute
from sim.spice_commands import run_network_spice

SCALE = 10e-9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    compiled = compile_model(str(model_file("examples", "digits_mlp.onnx")), "current")
    data = np.load(model_file("examples", "digits_test.npz"))
    x_all = np.asarray(data["X"], np.float32)
    name, out = compiled.graph.inputs[0], compiled.graph.outputs[0]

    t0 = time.perf_counter()
    inst = ChipInstance.draw(compiled, args.seed, SCALE)
    graph = inst.engine_graph()
    t_draw = time.perf_counter() - t0

    execute(graph, {name: x_all})  # warm-up
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        y_all = execute(graph, {name: x_all})[out]
    t_batch = (time.perf_counter() - t0) / (reps * len(x_all))
    t0 = time.perf_counter()
    for i in range(len(x_all)):
        execute(graph, {name: x_all[i:i + 1]})
    t_single = (time.perf_counter() - t0) / len(x_all)

    n = min(args.samples, len(x_all))
    t0 = time.perf_counter()
    y_spice = run_network_spice(compiled, {name: x_all[:n]}, SCALE, chip_seed=args.seed, workers=args.workers,
                                progress=False)[out].astype(np.float64)
    t_spice = (time.perf_counter() - t0) / n

    y_eng = y_all[:n].astype(np.float64)
    linear = execute(inst.engine_graph(early=False), {name: x_all[:n]})[out]
    nominal = execute(ChipInstance.draw(compiled, None, SCALE).engine_graph(early=False), {name: x_all[:n]})[out]
    fs = float(np.max(np.abs(y_spice)))
    err = y_eng - y_spice
    rms = float(np.sqrt(np.mean(err**2))) / fs * 100
    agree = float(np.mean(y_eng.argmax(1) == y_spice.argmax(1)))

    def rms_of(y: np.ndarray) -> float:
        return round(float(np.sqrt(np.mean((y - y_spice) ** 2))) / fs * 100, 3)

    labels = np.asarray(data["y"])[:n]
    print(json.dumps({
        "model": "digits_mlp 64-16-10", "target": "current", "scale_a_per_unit": SCALE, "chip_seed": args.seed,
        "samples_spice": n, "spice_workers": args.workers,
        "draw_s": round(t_draw, 3),
        "engine_s_per_input_batched": t_batch, "engine_s_per_input_single": t_single,
        "spice_s_per_input_wall": round(t_spice, 3),
        "ratio_batched": round(t_spice / t_batch), "ratio_single": round(t_spice / t_single),
        "rms_pct_fs": round(rms, 3), "max_pct_fs": round(float(np.max(np.abs(err))) / fs * 100, 3),
        "argmax_agreement": agree,
        "mismatch_only_rms_pct_fs": rms_of(linear),
        "mismatch_only_argmax_agreement": float(np.mean(linear.argmax(1) == y_spice.argmax(1))),
        "quantized_nominal_rms_pct_fs": rms_of(nominal),
        "accuracy_spice": float(np.mean(y_spice.argmax(1) == labels)),
        "accuracy_engine": float(np.mean(y_eng.argmax(1) == labels)),
        "targets": {"ratio_ge_10000": t_spice / t_batch >= 1e4, "rms_le_2pct": rms <= 2.0,
                    "argmax_ge_98pct": agree >= 0.98},
    }, indent=2))


if __name__ == "__main__":
    main()
