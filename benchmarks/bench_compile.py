"""Compile speed and memory: ResNet-18 (11.7 M parameters) from an ONNX file to opamp primitives,
and with ``--target crossbar`` its tile map and cost (``kelvin compile --report-cost``).

Each repeat runs in a fresh process, so peak RSS covers everything (Python, NumPy, ONNX,
the model). Peers measured in the same run: onnxruntime building an inference session for
the same file, and plain onnx.load. Prints JSON; never fails on a time (targets are
reported as booleans: compile < 10 s and < 2 GB).

With ``--target crossbar`` the timed compile includes the cost report (tiles of ``--tile``,
utilization, devices, energy, latency, area per inference, digital baseline, TOPS/W), which is
printed with every constant's source.

    python benchmarks/bench_compile.py [--repeats 5] [--target opamp|crossbar] [--tile 512x512|ibm]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
what, path, target, tile = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
t0 = time.perf_counter()
if what == "kelvin":
    from compiler.pipeline import compile_model
    from compiler.report import graph_document
    t0 = time.perf_counter()
    c = compile_model(path, target)
    doc = graph_document(c, path)
    extra = {"nodes": doc["summary"]["nodes"], "parameters": doc["summary"]["parameters"]}
    if target == "crossbar":
        from compiler.cost import cost_report, retile
        cost = cost_report(retile(c, tile))
        extra["cost"] = {k: cost[k] for k in ("total", "digital_baseline", "references", "constants")}
elif what == "onnxruntime":
    import onnxruntime as ort
    t0 = time.perf_counter()
    ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    extra = {}
else:
    import onnx
    t0 = time.perf_counter()
    onnx.load(path)
    extra = {}
dt = time.perf_counter() - t0
# VmHWM is this process image's peak RSS (ru_maxrss would carry the parent's over exec).
rss = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"seconds": dt, "peak_rss_bytes": rss, **extra}))
"""


def _run(what: str, path: str, target: str, tile: str) -> dict:
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", CHILD, what, path, target, tile], capture_output=True, text=True,
                         check=True, cwd=root, env={**__import__("os").environ, "PYTHONPATH": str(root)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--target", default="opamp")
    ap.add_argument("--tile", default="512x512", help="crossbar tile size (crossbar target)")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import onnx

    from sim.zoo import param_count, resnet18

    model = resnet18()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "resnet18.onnx")
        onnx.save(model, path)
        runs: dict[str, list[dict]] = {"kelvin": [], "onnxruntime": [], "onnx_load": []}
        for _ in range(args.repeats):  # interleaved, so machine noise hits all alike
            for what in runs:
                runs[what].append(_run(what, path, args.target, args.tile))
    med = {w: statistics.median(r["seconds"] for r in rs) for w, rs in runs.items()}
    rss = {w: max(r["peak_rss_bytes"] for r in rs) for w, rs in runs.items()}
    result = {
        "benchmark": "compile_resnet18",
        "target": args.target,
        "parameters": param_count(model),
        "repeats": args.repeats,
        "median_seconds": med,
        "peak_rss_mb": {w: round(v / 2**20, 1) for w, v in rss.items()},
        "ratio_kelvin_vs_onnxruntime_session": med["kelvin"] / med["onnxruntime"],
        "lowered_nodes": runs["kelvin"][0]["nodes"],
        "meets_target": {"under_10_s": med["kelvin"] < 10.0, "under_2_GB": rss["kelvin"] < 2 * 2**30},
    }
    if "cost" in runs["kelvin"][0]:
        result["tile"] = args.tile
        result["cost"] = runs["kelvin"][0]["cost"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
