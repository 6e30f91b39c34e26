"""``kelvin demo``: the bundled digits classifier compiled to every target and run end to end.

It also compiles the classic analog-computer example V_o = -0.35·V1 + 5.24·V2 + 2.6.
What it shows grows with the project (SPICE validation, fitted models, training).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from circuits.data import model_file
from circuits.files import ensure_dir, write_json
from circuits.targets import TARGETS
from compiler.onnx_import import import_model
from compiler.report import graph_document
from sim.commands import compile_to_dir, compile_with_progress, run_batches
from sim.engine import execute
from sim.zoo import gemm_example


def run_demo(outdir: str | os.PathLike[str] = "out/demo", progress: bool = True) -> str:
    """Run the demo, write OUTDIR/<target>/graph.json and OUTDIR/demo.json; return the report text."""
    out = ensure_dir(outdir)
    model_path = model_file("examples", "digits_mlp.onnx")
    with np.load(model_file("examples", "digits_test.npz")) as data:
        x, y = data["X"].astype(np.float32), data["y"]
    reference = execute(import_model(model_path), {"x": x})
    ref_logits = next(iter(reference.values()))
    lines = [f"Kelvin demo: {model_path.name} on {len(y)} held-out digits (8x8 images, 64-16-10 MLP)",
             f"  ONNX semantics (unlowered graph): accuracy {np.mean(ref_logits.argmax(1) == y):.2%}", ""]
    rows, results = [], {}
    for target in TARGETS:
        compiled = compile_with_progress(model_path, target, progress)
        doc = compile_to_dir(model_path, out / target, target, progress=False)  # graph.json, netlist.cir
        path = doc["_path"]
        logits = next(iter(run_batches(compiled.graph, {"x": x}, 256, progress).values()))
        acc = float(np.mean(logits.argmax(1) == y))
        dev = float(np.max(np.abs(logits - ref_logits)))
        s = doc["summary"]
        devices = ", ".join(f"{k} {v:,}" for k, v in s["devices"].items())
        rows.append(f"  {target:<9} accuracy {acc:.2%}  max|Δlogit| vs ONNX {dev:.1e}  devices: {devices}")
        results[target] = {"accuracy": acc, "max_abs_logit_error": dev, "summary": s,
                           "graph": str(Path(path).relative_to(out))}
    lines += ["Per target (ideal devices):", *rows, ""]
    lines.append(_gemm_example(out, progress))
    spice = _spice_section(out, model_path, x[:SPICE_SAMPLES], y[:SPICE_SAMPLES], progress)
    lines += ["", *spice["text"]]
    results["spice"] = spice["numbers"]
    lines.append(f"\nOutputs in {out}/: <target>/graph.json (lowered graph), <target>/netlist.cir (SPICE deck, "
                 "where the target's blocks can be netlisted), demo.json (these numbers)")
    write_json(out / "demo.json", {"model": str(model_path), "samples": int(len(y)), "targets": results})
    return "\n".join(lines)


SPICE_SAMPLES = 10


def _spice_section(out: Path, model_path: Path, x: np.ndarray, y: np.ndarray, progress: bool) -> dict:
    """The digits MLP as one op-amp netlist in ngspice, and a sample of its blocks validated."""
    from compiler.pipeline import compile_model
    from sim.spice.errors import NgspiceMissingError
    from sim.spice_commands import default_scale, run_network_spice
    from sim.validate import validate_graph

    compiled = compile_model(model_path, "opamp")
    scale = default_scale("opamp")
    try:
        spice = run_network_spice(compiled, {"x": x}, scale, progress=progress)["logits"]
        blocks = validate_graph(compiled.graph, scale=scale, sample=8, points=11, seed=0, progress=progress)
    except NgspiceMissingError as exc:
        return {"text": [f"SPICE: skipped ({exc})"], "numbers": {"skipped": str(exc)}}
    ideal = execute(compiled.graph, {"x": x})["logits"]
    err = float(np.max(np.abs(spice - ideal)))
    worst = max(b.max_error_pct_fs or 0.0 for b in blocks)
    numbers = {"samples": int(len(x)), "scale_v_per_unit": scale, "max_abs_logit_error": err,
               "argmax_agreement": float(np.mean(spice.argmax(1) == ideal.argmax(1))),
               "accuracy": float(np.mean(spice.argmax(1) == y)),
               "blocks_validated": len(blocks), "blocks_passed": sum(b.passed for b in blocks),
               "worst_block_error_pct_fs": worst}
    text = [f"ngspice, op-amp target ({scale:g} V per unit): whole network on {len(x)} digits",
            f"  max|Δlogit| vs ideal {err:.3g} (logits span ±{np.max(np.abs(ideal)):.1f}), "
            f"argmax agreement {numbers['argmax_agreement']:.0%}, accuracy {numbers['accuracy']:.0%}",
            f"  {numbers['blocks_passed']}/{len(blocks)} sampled blocks within tolerance "
            f"(worst {worst:.3f} % of full scale)"]
    return {"text": text, "numbers": numbers}


def _gemm_example(out: Path, progress: bool) -> str:
    from compiler.pipeline import compile_model

    compiled = compile_model(gemm_example(), "opamp")
    node = next(n for n in compiled.graph.nodes if n.kind == "opamp.summer")
    w = node.primitive.weights.ravel()
    b = float(node.primitive.bias.ravel()[0])
    v = np.array([[1.0, 1.0], [2.0, -0.5]], dtype=np.float32)
    y = execute(compiled.graph, {compiled.graph.inputs[0]: v})[compiled.graph.outputs[0]].ravel()
    write_json(ensure_dir(out / "gemm_example") / "graph.json", graph_document(compiled, "gemm_example"))
    return ("Analog-computer example (one inverting summer): "
            f"V_o = {w[0]:+.2f}·V1 {w[1]:+.2f}·V2 {b:+.2f}\n"
            f"  V=(1, 1) -> {y[0]:.4f} V   V=(2, -0.5) -> {y[1]:.4f} V")
