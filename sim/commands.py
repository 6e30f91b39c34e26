"""What the CLI subcommands do, as plain functions (the CLI only parses and prints)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from circuits.errors import InputError, OutputError, ParameterError, UnsupportedError
from circuits.files import ensure_dir, json_safe, staged_dir, write_json, write_npy, write_npz
from compiler.ir import Graph
from compiler.pipeline import Compiled, compile_model
from compiler.report import graph_document
from sim.engine import execute
from sim.spice.errors import BatchError
from sim.inputs import load_inputs, reshape_rows  # noqa: F401  (re-exported: run, validate and stimulus read inputs)

log = logging.getLogger(__name__)


def compile_with_progress(model: str | os.PathLike[str], target: str, progress: bool = True) -> Compiled:
    """Compile, showing one progress step per pass."""
    from compiler.onnx_import import import_model
    from compiler.pipeline import lowering_pipeline

    graph = import_model(model)
    n = len(lowering_pipeline(target))
    with tqdm(total=n, desc=f"compile [{target}]", unit="pass", disable=not progress or None,
              leave=False) as bar:
        compiled = compile_model(graph, target, on_pass=lambda p: bar.update(1))
    return compiled


COMPILE_FILES = frozenset({"graph.json", "netlist.cir", "inputs.inc", "netlist.json", "model.onnx",
                           "kelvin.json", "chip.npz", "cost.png"})
"""What ``kelvin compile`` writes; other files in OUTDIR (a user's notes) are kept across compiles, but not a
validate report written there, which describes the old netlist (`circuits.files.record_derived`)."""


def compile_to_dir(model: str | os.PathLike[str], outdir: str | os.PathLike[str], target: str,
                   progress: bool = True, scale: float | None = None,
                   max_devices: int = 200_000, chip_seed: int | None = None,
                   force: bool = False, sizing: str = "default", report_cost: bool = False,
                   tile: str | None = None, cost_model: str | None = None) -> dict[str, Any]:
    """Compile ``model`` for ``target``; write graph.json, and the SPICE netlist when it can be built.

    ``tile`` sets the crossbar tile size (`compiler.cost.parse_tile`); ``report_cost`` adds the
    per-layer and total cost (`compiler.cost.cost_report`, constants from ``cost_model`` if given)
    to graph.json under "cost" and draws cost.png.

    The files are built in a hidden sibling of ``outdir`` and swapped in together under a lock
    (`circuits.files.staged_dir`): a failed, killed or concurrent compile never leaves a mix,
    and nothing of an earlier compile (a stale chip.npz) survives. Returns the graph document
    (plus "_path"); its "netlist" entry says whether a netlist was written and, if not, why.
    """
    from sim.spice_commands import default_scale, save_compile_inputs, write_netlist_files

    from compiler.cost import CostModel, cost_report, parse_tile, retile

    if tile is not None:
        parse_tile(tile)
        if target != "crossbar":
            raise ParameterError(f"--tile: tiles are crossbars; it applies to --target crossbar, not {target!r}")
    report_cost = report_cost or cost_model is not None  # constants given: the report is wanted
    costs = CostModel.from_json(cost_model) if cost_model else CostModel()
    with staged_dir(outdir, COMPILE_FILES, kind="compile") as out:  # fails before the work if outdir is unusable
        compiled = compile_with_progress(model, target, progress)
        if tile is not None:
            retile(compiled, tile)
        scale = default_scale(target) if scale is None else scale
        doc = graph_document(compiled, source=str(model))
        save_compile_inputs(out, model, target, scale, chip_seed, sizing, tile)
        if compiled.target.chip_instances:  # current mode: the mirrors' area and Pelgrom spread
            from circuits.spice.current_cells import CellSizing
            doc["sizing"] = {"preset": sizing, **CellSizing.preset(sizing).report()}
        try:
            nl = write_netlist_files(out, compiled, scale, max_devices, chip_seed, force=force, sizing=sizing)
            doc["netlist"] = {"written": True, "file": "netlist.cir", "scale": scale, "chip_seed": chip_seed,
                              "subckts": len(nl.subckts), "elements": nl.devices}
            if chip_seed is not None:  # the same instance as behavioral parameters for the engine
                from sim.chip import ChipInstance

                write_npz(out / "chip.npz", **ChipInstance.draw(compiled, chip_seed, scale, sizing).arrays())
                doc["chip"] = {"seed": chip_seed, "parameters": "chip.npz"}
        except UnsupportedError as exc:
            if chip_seed is not None:
                raise  # a chip instance was asked for explicitly: not writing it is an error
            log.info("no netlist: %s", exc)
            doc["netlist"] = {"written": False, "reason": str(exc)}
        if report_cost:
            from sim.cost_plot import cost_chart

            doc["cost"] = cost_report(compiled, costs)
            if json_safe(doc["cost"]) != doc["cost"]:  # a non-finite total became null: the products overflowed
                raise InputError(f"--cost-model {cost_model}: its constants make the cost totals overflow (not "
                                 "finite); give values in the units the README's table states")
            cost_chart(doc["cost"], out / "cost.png")
            doc["cost"]["plot"] = "cost.png"
        write_json(out / "graph.json", doc)
    doc["_path"] = str(Path(outdir) / "graph.json")
    return doc


def format_summary(doc: dict[str, Any]) -> str:
    """The compile summary as a few readable lines."""
    s = doc["summary"]
    lines = [f"model {doc['model']['name']} (opset {doc['model']['opset']}) -> target {s['target']}",
             f"  nodes: {s['nodes']} ({', '.join(f'{v} {k}' for k, v in s['placement'].items())})",
             f"  parameters: {s['parameters']:,}"]
    if s["primitives"]:
        lines.append("  primitives:")
        for kind, c in s["primitives"].items():
            lines.append(f"    {kind:<28} {c['banks']:>4} bank(s) {c['instances']:>12,} instance(s)")
    if s["devices"]:
        lines.append("  devices: " + ", ".join(f"{k} {v:,}" for k, v in s["devices"].items()))
    if s["digital_ops"]:
        lines.append("  digital periphery: " + ", ".join(f"{k} x{v}" for k, v in s["digital_ops"].items()))
    sz = doc.get("sizing")
    if sz is not None:
        lines.append(f"  sizing: {sz['preset']}, unit mirror {sz['w_unit_m'] * 1e6:g} x {sz['l_unit_m'] * 1e6:g} um, "
                     f"synapse {sz['synapse_area_m2'] * 1e12:.1f} um^2, soma {sz['soma_area_m2'] * 1e12:.1f} um^2, "
                     f"sigma(dVt) {sz['sigma_dvt_unit_v'] * 1e3:.2f} mV per unit device "
                     f"({100 * sz['sigma_branch_rel']:.1f} % per mirror branch)")
    nl = doc.get("netlist")
    if nl is not None:
        lines.append(f"  netlist: netlist.cir ({nl['subckts']} subckt designs, scale {nl['scale']:g} per unit)"
                     if nl["written"] else f"  netlist: not written: {nl['reason']}")
    cost = doc.get("cost")
    if cost is not None:
        t, d = cost["total"], cost["digital_baseline"]
        tiles = f", {t['tiles']} tile(s) at {100 * t['utilization']:.3g} % utilization" if t["tiles"] else ""
        lines.append(f"  cost per inference: {t['energy_j']:.3g} J, {t['latency_s']:.3g} s, "
                     f"{t['area_m2'] * 1e6:.3g} mm^2, {t['macs']:,} MACs{tiles}")
        if t["tops_per_w"]:
            lines.append(f"    {t['tops_per_w']:.3g} TOPS/W (IBM 2023: {cost['references']['ibm_2023_tops_per_w']}; "
                         f"Binas 2016: {cost['references']['binas_2016_top_per_j']} TOp/J = "
                         f"{t['macs_per_j'] / 1e12:.3g} here); digital 45 nm baseline "
                         f"{d['energy_with_weight_reads_j']:.3g} J ({d['energy_compute_j']:.3g} J compute only)")
        lines.append("    per layer and constants with sources: graph.json \"cost\"; chart: cost.png")
    return "\n".join(lines)


def run_batches(graph: Graph, feeds: dict[str, np.ndarray], batch_size: int,
                progress: bool = True) -> dict[str, np.ndarray]:
    """Execute in chunks of ``batch_size`` samples along axis 0, with a progress bar."""
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    n = min(a.shape[0] for a in feeds.values()) if feeds and all(a.ndim for a in feeds.values()) else 0
    if n == 0 or any(a.shape[0] != n for a in feeds.values()):
        return execute(graph, feeds)
    parts: dict[str, list[np.ndarray]] = {}
    with tqdm(total=n, desc="run", unit="sample", disable=not progress or None, leave=False) as bar:
        for start in range(0, n, batch_size):
            chunk = {k: v[start:start + batch_size] for k, v in feeds.items()}
            for k, v in execute(graph, chunk).items():
                parts.setdefault(k, []).append(v)
            bar.update(min(batch_size, n - start))
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}


def run_model_file(model: str | os.PathLike[str], inputs: str | os.PathLike[str], output: str | None,
                   target: str, batch_size: int = 256, progress: bool = True, engine: str = "behavioral",
                   spice: dict[str, Any] | None = None, hardware: Any = None) -> tuple[dict[str, np.ndarray], str | None]:
    """Compile ``model``, run it on the inputs file (ideal engine or ngspice), write outputs atomically."""
    if output is not None:
        out_path = Path(output)
        if out_path.suffix.lower() not in (".npy", ".npz"):
            raise OutputError(f"{output}: outputs are written as .npy (one output) or .npz (keyed by output "
                              "name); name the file so")
        ensure_dir(out_path.parent if str(out_path.parent) else ".")
    compiled = compile_with_progress(model, target, progress)
    graph = compiled.graph
    if output is not None and not output.lower().endswith(".npz") and len(graph.outputs) > 1:
        raise OutputError(f"{output}: the model has {len(graph.outputs)} outputs; use an .npz file")
    try:
        feeds = reshape_rows(graph, load_inputs(inputs, graph))
    except InputError as exc:
        text = str(exc)
        raise InputError(text if text.startswith(str(inputs)) else f"{inputs}: {text}") from None
    for name, arr in feeds.items():
        if arr.ndim and len(arr) == 0:
            raise InputError(f"{inputs}: input {name!r} holds no samples (shape {list(arr.shape)})")
    opts = dict(spice or {})
    chip_seed = opts.pop("chip_seed", None)
    from sim.engine.prepare import HardwareOptions, build_program, check_spice_modes, run_program

    hw = hardware or HardwareOptions.parse(None, chip_seed=chip_seed)
    if engine == "spice":
        from sim.spice_commands import default_scale, run_network_spice

        check_spice_modes(hw, target)
        scale = opts.pop("scale", None)
        scale = default_scale(target) if scale is None else scale
        from sim.engine.prepare import crossbar_converters
        converters = crossbar_converters(compiled, hw, feeds, batch_size)
        try:
            result = run_network_spice(compiled, feeds, scale, progress=progress, chip_seed=hw.chip_seed,
                                       sizing=hw.sizing, converters=converters or None, **opts)
        except BatchError as exc:  # keep what succeeded: the failed rows are NaN
            if output is None or not exc.outputs:
                raise
            _write_outputs(output, exc.outputs)
            raise BatchError(f"{exc}; wrote the other samples to {output} (failed rows are NaN)",
                             exc.outputs, exc.failed) from exc
    else:  # behavioral (alias: ideal): the NumPy engine with the chosen hardware model
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # judged once, just below
            result = run_program(build_program(compiled, hw), feeds, batch_size, progress, seed=hw.seed)
        _check_finite(inputs, result)
    if output is None:
        return result, None
    _write_outputs(output, result)
    return result, output


def _check_finite(inputs, result: dict[str, np.ndarray]) -> None:
    """A circuit's outputs are finite currents or voltages: NaN or Inf means the model's math failed on these
    inputs (Log or Sqrt of a negative value, a float32 overflow), which no netlist would reproduce."""
    for name, y in result.items():
        bad = ~np.isfinite(y)
        if bad.any():
            index = [int(i) for i in np.argwhere(bad)[0]]
            raise InputError(f"{inputs}: output {name!r} is {y[tuple(index)]} at index {index} ({int(bad.sum())} "
                             "values not finite); the model's math fails on these inputs (Log or Sqrt of a "
                             "negative value, or an overflow)")


def _write_outputs(output: str, result: dict[str, np.ndarray]) -> None:
    if output.lower().endswith(".npz"):
        write_npz(output, **result)
    elif len(result) == 1:
        write_npy(output, next(iter(result.values())))
    else:
        raise OutputError(f"{output}: the model has {len(result)} outputs; use an .npz file")
