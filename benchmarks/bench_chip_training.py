"""Mismatch-aware training (Binas et al. 2016) on the current target, measured end to end.

For the bundled digits MLP on chip instances with the chosen mirror sizing:
- ideal accuracy, and the quantized (nominal chip) accuracy;
- naive: the ideally trained weights deployed on chip N (engine, inference chip model with drift);
- aware: trained for chip N (`--hardware chip`), deployed on the same chip;
- population: trained with `quantized,population`, evaluated on --chips unseen chips (mean, 5th pct);
- optionally (--spice K) the aware export compiled with --chip-seed N and run in ngspice on K test
  inputs: argmax agreement with the engine.
Prints JSON; never fails on a number.

    python benchmarks/bench_chip_training.py [--chip 3] [--sizing compact] [--epochs 10] [--chips 20] [--spice 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models/examples/digits_mlp.onnx"))
    ap.add_argument("--data", default="digits")
    ap.add_argument("--chip", type=int, action="append", help="chip seed(s) (default: 0, 1, 2)")
    ap.add_argument("--sizing", default="compact")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--chips", type=int, default=20)
    ap.add_argument("--spice", type=int, default=0, help="test inputs to run in ngspice (0: none)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    import numpy as np

    from compiler.pipeline import compile_model
    from sim.engine.prepare import HardwareOptions, build_program
    from sim.spice_commands import default_scale, run_network_spice
    from sim.train.commands import evaluate_file, load_for, train_file
    from sim.train.loop import TrainConfig

    cfg = TrainConfig(epochs=args.epochs, lr=0.002, optimizer="adam")
    out: dict = {"model": args.model, "data": args.data, "sizing": args.sizing, "epochs": args.epochs}
    out["ideal_accuracy"] = evaluate_file(args.model, args.data, target="current", progress=False)["test_accuracy"]
    out["quantized_accuracy"] = evaluate_file(args.model, args.data, target="current", progress=False,
                                              hardware=HardwareOptions(modes=("quantized",)))["test_accuracy"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.chip or [0, 1, 2]:
            chip = HardwareOptions(modes=("chip",), chip_seed=seed, sizing=args.sizing)
            naive = evaluate_file(args.model, args.data, target="current", hardware=chip, progress=False)
            t0 = time.perf_counter()
            aware_path = str(Path(tmp) / f"aware{seed}.onnx")
            train_file(args.model, args.data, aware_path, target="current", hardware=chip, config=cfg, progress=False)
            aware = evaluate_file(aware_path, args.data, target="current", hardware=chip, progress=False)
            row = {"chip": seed, "naive_accuracy": naive["test_accuracy"], "aware_accuracy": aware["test_accuracy"],
                   "train_seconds": time.perf_counter() - t0}
            if args.spice:
                c = compile_model(aware_path, "current")
                x = load_for(c, args.data).x_test[: args.spice]
                name, o = c.graph.inputs[0], c.graph.outputs[0]
                eng = build_program(c, chip).run({name: x})[o]
                t1 = time.perf_counter()
                sp = run_network_spice(c, {name: x}, default_scale("current"), progress=False, chip_seed=seed,
                                       sizing=args.sizing, workers=args.workers)[o]
                fs = float(np.max(np.abs(eng)))
                row.update(spice_samples=len(x), spice_seconds=time.perf_counter() - t1,
                           engine_spice_argmax_agreement=float(np.mean(eng.argmax(1) == sp.argmax(1))),
                           engine_spice_rms_pct_fs=float(100 * np.sqrt(np.mean((eng - sp) ** 2)) / fs))
            rows.append(row)
        out["chips"] = rows
        pop_path = str(Path(tmp) / "population.onnx")
        train_file(args.model, args.data, pop_path, target="current", config=cfg, progress=False,
                   hardware=HardwareOptions(modes=("quantized", "population"), sizing=args.sizing))
        unseen = HardwareOptions(chip_seed=1000, sizing=args.sizing)
        pop = evaluate_file(pop_path, args.data, target="current", hardware=unseen, chips=args.chips, progress=False)
        naive_pop = evaluate_file(args.model, args.data, target="current", hardware=unseen, chips=args.chips,
                                  progress=False)
    out["population_trained_on_unseen_chips"] = {k: pop[k] for k in ("chips", "mean", "std", "p5", "worst")}
    out["naive_on_unseen_chips"] = {k: naive_pop[k] for k in ("chips", "mean", "std", "p5", "worst")}
    out["mean_naive_loss_points"] = 100 * (out["ideal_accuracy"] - statistics.mean(r["naive_accuracy"] for r in rows))
    out["mean_aware_gap_to_ideal_points"] = 100 * (out["ideal_accuracy"] -
                                                   statistics.mean(r["aware_accuracy"] for r in rows))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
