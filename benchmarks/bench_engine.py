"""Behavioral engine inference speed against onnxruntime, and hardware models against ideal.

Cases (median of --repeats rounds, each round timing every case once so machine noise hits all
alike; ratios are medians of the per-round ratios; one thread each):
- ResNet-18 (11.7 M parameters, 224×224) at batch 8, opamp target, ideal devices;
- the same on the crossbar target with PCM devices (`pcm`: programming noise, drift and read noise,
  Joshi et al. 2020) at batch 8 (target: at most 4× onnxruntime's ideal time), and its output
  drift from 20 s to a year after programming, with and without global drift compensation
  (relative RMS change of the logits against the ideal network, and top-1 agreement);
- the bundled digits MLP (64-16-10) at batch 4096 on each target;
- the digits MLP with `quantized` (current), `chip` (current, seed 0: its mismatch folded into
  each bank), `chip_map` (the same chip as training runs it, from the nominal weights), `chip_early`
  (``chip,early``: with the mirrors' Early drift) and `pcm` (crossbar) against `ideal` on the same
  target. The Early drift needs three products per bank (the drift-free sum, the post- and the
  pre-synaptic drift) against ideal's one, plus a logarithm of every line and soma: about 3× is its
  floor where the products dominate. ``chip_early_products_only`` times those products alone, in the
  same rounds, to show that floor.
Prints JSON with medians and ratios measured in the same run; never fails on a time.

    python benchmarks/bench_engine.py [--repeats 7] [--skip-resnet]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _interleaved(fns: dict, repeats: int, inner: int = 1) -> tuple[dict, dict]:
    """Median seconds per call of each function, timed round-robin (one round times every function
    once, ``inner`` calls each) so that machine noise hits all alike; and per round, each time over
    the first function's, whose medians are the ratios reported."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            times[k].append((time.perf_counter() - t0) / inner)
    first = next(iter(fns))
    ratios = {k: statistics.median(a / b for a, b in zip(times[k], times[first])) for k in fns if k != first}
    return {k: statistics.median(v) for k, v in times.items()}, ratios


def _ort(model, x_name: str, x):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, {x_name: x})


def _resnet_pcm(model, x, t_ort: float, repeats: int) -> dict:
    """ResNet-18 on PCM crossbar tiles: inference time at batch 8, and output drift over time."""
    import numpy as np

    from compiler.pipeline import compile_model
    from sim.engine.prepare import HardwareOptions, build_program

    c = compile_model(model, "crossbar")
    name, out_name = c.graph.inputs[0], c.graph.outputs[0]
    prog = build_program(c, HardwareOptions(modes=("pcm",), pcm_time_s=3600.0))
    gen = np.random.default_rng(0)
    t_pcm = _median_time(lambda: prog.run({name: x}, rng=gen), repeats)
    ideal = build_program(c).run({name: x})[out_name].astype(np.float64)
    drift = []
    for t in (20.0, 3600.0, 86400.0, 30 * 86400.0, 3.15e7):
        row = {"t_s": t}
        for comp in (False, True):
            y = build_program(c, HardwareOptions(modes=("pcm",), pcm_time_s=t, drift_compensation=comp)).run(
                {name: x}, rng=np.random.default_rng(1))[out_name].astype(np.float64)
            key = "compensated" if comp else "uncompensated"
            row[key] = {"rel_rms_change": float(np.sqrt(np.mean((y - ideal) ** 2)) / np.sqrt(np.mean(ideal ** 2))),
                        "mean_abs_ratio": float(np.abs(y).mean() / np.abs(ideal).mean()),
                        "top1_agreement": float(np.mean(y.argmax(1) == ideal.argmax(1)))}
        drift.append(row)
    return {"kelvin_pcm_s": t_pcm, "onnxruntime_ideal_s": t_ort, "ratio": t_pcm / t_ort, "target_ratio": 4.0,
            "drift": drift}


def _chip_products(prog, x):
    """The chip's matrix products alone, per bank [W_l; W_l∘post]·vᵀ and (W_l∘pre)·(v ln v)ᵀ, on the
    inputs each bank sees (the digits MLP's banks form a chain; v ln v computed beforehand): what
    `chip` cannot go below under its first-order drift model, whatever its element-wise work costs."""
    from sim.engine.chip_loops import xlnx
    from sim.engine.kernels import CHIP_SYNAPSES
    banks, v = [], x
    for step in prog.steps:
        if step.kernel is CHIP_SYNAPSES:
            prim = step.node.primitive
            both, pre = CHIP_SYNAPSES._folded(prim, v.dtype)[:2]
            banks.append((both, pre, v, xlnx(v)))
            v = CHIP_SYNAPSES.forward(prim, {}, [v], False)[0]
    assert len(banks) >= 2, "the chip program has no synapse banks to time"

    def run():
        for both, pre, v, vlnv in banks:
            both @ v.T
            if pre is not None:
                pre @ vlnv.T
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--skip-resnet", action="store_true")
    args = ap.parse_args()
    import numpy as np
    import onnx

    from compiler.pipeline import compile_model
    from sim.engine.prepare import HardwareOptions, build_program

    rng = np.random.default_rng(0)
    out: dict = {"threads": 1, "repeats": args.repeats}
    if not args.skip_resnet:
        from sim.zoo import resnet18
        model = resnet18()
        model.ir_version = min(model.ir_version, 10)
        c = compile_model(model, "opamp")
        name = c.graph.inputs[0]
        x = rng.standard_normal((8, 3, 224, 224)).astype(np.float32)
        prog = build_program(c)
        med, ratio = _interleaved({"onnxruntime": _ort(model, model.graph.input[0].name, x),
                                   "kelvin": lambda: prog.run({name: x})}, args.repeats)
        t_o = med["onnxruntime"]
        out["resnet18_batch8"] = {"kelvin_s": med["kelvin"], "onnxruntime_s": t_o, "ratio": ratio["kelvin"],
                                  "target_ratio": 2.0}
        out["resnet18_pcm_batch8"] = _resnet_pcm(model, x, t_o, args.repeats)
    path = ROOT / "models/examples/digits_mlp.onnx"
    model = onnx.load(path)
    x = rng.uniform(0, 1, (4096, 64)).astype(np.float32)
    fns = {"onnxruntime": _ort(model, model.graph.input[0].name, x)}
    cases = (("opamp", ("ideal",)), ("current", ("ideal", "quantized", "chip", "chip_map", "chip_early")),
             ("crossbar", ("ideal", "quantized", "pcm")))
    modes_of = {"chip": ("chip",), "chip_map": ("chip",), "chip_early": ("chip", "early")}
    for target, modes in cases:
        c = compile_model(str(path), target)
        for mode in modes:
            chip = mode.startswith("chip")  # chip_map: the trainable chip, as training runs it
            prog = build_program(c, HardwareOptions(modes=modes_of.get(mode, (mode,)), chip_seed=0 if chip else None),
                                 trainable=mode == "chip_map")
            gen = np.random.default_rng(0)
            fns[f"{target}/{mode}"] = (lambda p=prog, n=c.graph.inputs[0], g=gen: p.run({n: x}, rng=g))
            if mode == "chip_early":
                fns["current/chip_products"] = _chip_products(prog, x)
    med, vs_ort = _interleaved(fns, args.repeats, inner=10)
    mlp: dict = {"onnxruntime_s": med["onnxruntime"]}
    for target, modes in cases:
        mlp[target] = {
            "seconds": {m: med[f"{target}/{m}"] for m in modes},
            "ideal_vs_onnxruntime": vs_ort[f"{target}/ideal"],
            "vs_ideal": {m: vs_ort[f"{target}/{m}"] / vs_ort[f"{target}/ideal"] for m in modes if m != "ideal"},
        }
    prod = "current/chip_products"  # chip,early's products alone: its floor under the drift model
    mlp["current"]["seconds"]["chip_early_products_only"] = med[prod]
    mlp["current"]["vs_ideal"]["chip_early_products_only"] = vs_ort[prod] / vs_ort["current/ideal"]
    out["digits_mlp_batch4096"] = mlp
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
