"""The SPICE side of the CLI: netlist files, stimulus, running whole networks and validating blocks.

Files ``kelvin compile`` writes next to graph.json (all atomically):
    netlist.cir    complete deck: models, one .subckt per block design, the network as
                   .subckt kelvin_model (ports: inputs, outputs, supplies), testbench, .op
    inputs.inc     the input sources netlist.cir includes (default: every input at 0)
    netlist.json   port order, shapes, scale and supplies; ``kelvin stimulus`` uses it
    model.onnx     the compiled model, so ``kelvin validate OUTDIR`` can rebuild the graph
    kelvin.json    how the directory was compiled (target, scale, source)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from circuits.errors import InputError, OutputError
from circuits.files import dir_lock, write_bytes, write_json, write_text
from circuits.spice.netlist import Deck
from circuits.targets import TARGETS, get_target
from compiler.netlist import Netlist, NetlistOptions, emit_netlist
from compiler.pipeline import Compiled
from compiler.realizable import I_MAX_A
from sim.spice import SimJob, SimResult, run_jobs
from sim.spice import seed as seeding
from sim.spice.errors import BatchError, SimulationError
from sim.spice.runner import usable_cpus

log = logging.getLogger(__name__)

DEFAULT_SCALE = {name: t.default_scale for name, t in TARGETS.items()}
"""Signal scale per target (`Target.default_scale`): volts per model unit (op-amp, crossbar) or amperes per unit (current)."""


def default_scale(target: str) -> float:
    return TARGETS[target].default_scale if target in TARGETS else 1.0


def netlist_options(target: str, scale: float, max_devices: int = 200_000,
                    chip_seed: int | None = None, sizing: str = "default",
                    converters: dict | None = None) -> NetlistOptions:
    """How a target's networks are netlisted (`NetlistOptions.for_target`: the policy lives on the `Target`).

    ``chip_seed`` draws one chip instance: every transistor's Pelgrom mismatch from that seed.
    ``converters``: crossbar DAC/ADC per bank (`NetlistOptions.converters`, e.g. from
    `sim.engine.prepare.crossbar_converters`).
    """
    opts = NetlistOptions.for_target(get_target(target), scale, max_devices, chip_seed, sizing)
    return replace(opts, converters=dict(converters)) if converters else opts


def write_netlist_files(outdir: Path, compiled: Compiled, scale: float, max_devices: int,
                        chip_seed: int | None = None, force: bool = False, sizing: str = "default") -> Netlist:
    """Emit the network (one chip instance if ``chip_seed``) and write netlist.cir, inputs.inc, netlist.json.

    ``force`` writes component values no circuit can realize (with a warning) instead of failing.
    """
    opts = netlist_options(compiled.target.name, scale, max_devices, chip_seed, sizing)
    opts.force = force
    nl = emit_netlist(compiled.graph, compiled.target, opts)
    deck = nl.deck(title=f"kelvin {compiled.graph.name} target {compiled.target.name}", stimulus_file="inputs.inc")
    write_text(outdir / "inputs.inc", _stimulus_text(nl, None))
    write_text(outdir / "netlist.cir", deck.render())
    write_json(outdir / "netlist.json", {
        "top": "kelvin_model",
        "ports": nl.ports,
        "inputs": {k: {"ports": v, "shape": list(nl.input_shapes[k])} for k, v in nl.input_ports.items()},
        "outputs": {k: {"ports": v, "shape": list(nl.output_shapes[k])} for k, v in nl.output_ports.items()},
        "supplies": dict(zip(nl.supplies.nets, nl.supplies.volts)),
        "scale": scale,
        "scale_unit": "A per unit" if compiled.target.name == "current" else "V per unit",
        "subckts": len(nl.subckts),
        "devices": nl.devices,
        "chip_seed": chip_seed,
        "sizing": sizing,
    })
    return nl


def _stimulus_text(nl: Netlist, sample: dict[str, np.ndarray] | None) -> str:
    lines = ["* input sources for kelvin_model (model units x scale); rewrite with `kelvin stimulus`"]
    lines += [e.render() for e in nl.stimulus(sample)]
    return "\n".join(lines) + "\n"


def save_compile_inputs(outdir: Path, model: str | os.PathLike[str], target: str, scale: float,
                        chip_seed: int | None = None, sizing: str = "default", tile: str | None = None) -> None:
    """Keep what validate/stimulus need to rebuild the graph: the model and how it was compiled.

    A model whose weights live in external data files is saved with them inlined, so the
    directory stands on its own (the data file is not left behind).
    """
    data = Path(model).read_bytes()
    proto = onnx.ModelProto()
    proto.ParseFromString(data)  # compile already read this file, so it parses
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        try:
            data = onnx.load(str(model)).SerializeToString()  # loads and inlines the external tensors
        except (OSError, ValueError) as exc:
            raise OutputError(f"{model}: cannot inline its external tensor data into model.onnx ({exc})") from exc
    write_bytes(outdir / "model.onnx", data)
    write_json(outdir / "kelvin.json", {"kind": "compile", "source": str(model), "target": target, "scale": scale,
                                        "chip_seed": chip_seed, "sizing": sizing, "tile": tile})


def load_outdir(outdir: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """An OUTDIR written by ``kelvin compile``: its path and kelvin.json."""
    out = Path(outdir)
    meta = out / "kelvin.json"
    if not meta.is_file() or not (out / "model.onnx").is_file():
        raise InputError(f"{out}: not a compiled directory (no kelvin.json/model.onnx); run `kelvin compile` first")
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputError(f"{meta}: unreadable, not JSON ({exc}); compile again") from exc
    if not isinstance(info, dict):
        raise InputError(f"{meta}: holds a JSON {_json_type(info)}, not the object of compile settings "
                         "kelvin compile writes; compile again")
    return out, {"target": _setting(meta, info, "target"), "scale": _setting(meta, info, "scale"),
                 "source": info.get("source"), "chip_seed": _setting(meta, info, "chip_seed"),
                 "sizing": _setting(meta, info, "sizing"), "tile": _setting(meta, info, "tile")}


_SETTINGS: dict[str, tuple[str, Any]] = {
    "target": (f"one of {', '.join(TARGETS)}", lambda v: isinstance(v, str) and v in TARGETS),
    "scale": ("a positive number", lambda v: _number(v) and bool(np.isfinite(v)) and v > 0),
    "chip_seed": ("null or an integer >= 0", lambda v: v is None or (_integer(v) and v >= 0)),
    "sizing": ("a string", lambda v: isinstance(v, str)),
    "tile": ("null or a tile size such as \"512x512\"", lambda v: v is None or isinstance(v, str)),
}
"""kelvin.json key -> (what it must be, whether a value is that). Only target and scale are required: a
directory compiled before chip_seed, sizing and tile were recorded gets their defaults."""
_DEFAULTS = {"chip_seed": None, "sizing": "default", "tile": None}


def _setting(meta: Path, info: dict[str, Any], key: str) -> Any:
    """``info[key]`` checked, so an edited or damaged kelvin.json is one line naming the file and the key
    (not "could not convert string to float" from deep inside validate)."""
    if key not in info:
        if key in _DEFAULTS:
            return _DEFAULTS[key]
        raise InputError(f"{meta}: has no {key!r} key; compile again")
    what, ok = _SETTINGS[key]
    value = info[key]
    if not ok(value):
        raise InputError(f"{meta}: key {key!r} must be {what}, got {json.dumps(value)[:60]}; compile again")
    return float(value) if key == "scale" else value


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _json_type(v: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(v), "null")


def compile_outdir(out: Path, info: dict[str, Any]) -> Compiled:
    """The compiled graph of an OUTDIR, as `kelvin compile` built it (target, crossbar tile size)."""
    from compiler.cost import retile
    from compiler.pipeline import compile_model

    compiled = compile_model(out / "model.onnx", info["target"])
    return retile(compiled, info["tile"]) if info.get("tile") else compiled


def write_stimulus(outdir: str | os.PathLike[str], inputs: str | os.PathLike[str], row: int = 0) -> Path:
    """Rewrite OUTDIR/inputs.inc so netlist.cir simulates sample ``row`` of an input file."""
    from sim.inputs import load_inputs, reshape_rows

    out, info = load_outdir(outdir)
    if not (out / "netlist.cir").is_file():
        raise InputError(f"{out}: has no netlist.cir (compile wrote none: see graph.json's \"netlist\" entry); "
                         "nothing to drive")
    compiled = compile_outdir(out, info)
    feeds = reshape_rows(compiled.graph, load_inputs(inputs, compiled.graph))
    n = batch_rows(feeds)
    if not 0 <= row < n:
        raise InputError(f"{inputs}: row {row} is out of range (the file has {n} samples)")
    nl = emit_netlist(compiled.graph, compiled.target,
                      netlist_options(info["target"], info["scale"], 10**9, info["chip_seed"], info["sizing"]))
    try:
        written = {k: v["ports"] for k, v in json.loads((out / "netlist.json").read_text())["inputs"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{out / 'netlist.json'}: missing or unreadable ({exc}); compile again") from exc
    if written != {k: list(v) for k, v in nl.input_ports.items()}:  # a model.onnx swapped after the compile
        raise InputError(f"{out}: netlist.cir's input ports are not those of {out / 'model.onnx'}; compile again")
    sample = {k: v[row] for k, v in feeds.items()}
    check_in_rails(nl, {k: v[None] for k, v in sample.items()})
    with dir_lock(out):  # not while a compile swaps the directory
        return write_text(out / "inputs.inc", _stimulus_text(nl, sample))


def run_network_spice(compiled: Compiled, feeds: dict[str, np.ndarray], scale: float, *,
                      workers: int | None = None, executor: Executor | None = None, timeout_s: float = 300.0,
                      max_devices: int = 200_000, progress: bool = True,
                      chip_seed: int | None = None, sizing: str = "default", seeded: bool = True,
                      converters: dict | None = None, release: seeding.Release | None = None) -> dict[str, np.ndarray]:
    """Simulate the whole network (one chip instance if ``chip_seed``) in ngspice once per sample.

    Inputs beyond the circuit's rails are refused before any simulation. If some samples fail,
    `BatchError` carries the outputs of all of them, NaN in the failed rows. ``seeded`` (current
    mode): start ngspice's Newton at predicted node voltages (`sim.spice.seed`; same outputs,
    some 5x faster); a seeded run that fails is rerun with the gradual release (`seed.Release`), in
    halves, then unseeded. ``release``: how seeded decks let go of their clamps (default:
    `seed.SNAP`, one step). ``converters``: crossbar DAC/ADC per bank (`netlist_options`).
    """
    return run_network_spice_saving(compiled, feeds, scale, workers=workers, executor=executor, timeout_s=timeout_s,
                                    max_devices=max_devices, progress=progress, chip_seed=chip_seed, sizing=sizing,
                                    seeded=seeded, converters=converters, release=release)[0]


def run_network_spice_saving(compiled: Compiled, feeds: dict[str, np.ndarray], scale: float, *,
                             extra_saves: Sequence[str] = (), workers: int | None = None,
                             executor: Executor | None = None, timeout_s: float = 300.0, max_devices: int = 200_000,
                             progress: bool = True, chip_seed: int | None = None, sizing: str = "default",
                             seeded: bool = True, converters: dict | None = None,
                             release: seeding.Release | None = None,
                             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """`run_network_spice`, also returning ``extra_saves``: ngspice vectors such as ``xdut.sum_3`` or
    device currents ``@m.xdut.xsoma_1.mm2[id]``, each an array over samples (NaN where a sample failed
    or lacks the vector)."""
    nl = emit_netlist(compiled.graph, compiled.target,
                      netlist_options(compiled.target.name, scale, max_devices, chip_seed, sizing, converters))
    n = batch_rows(feeds)
    check_in_rails(nl, feeds)
    tables = seeding.tables_for(nl, executor=executor, timeout_s=timeout_s) if seeded else None
    release = release or seeding.SNAP

    def deck_for(group: Sequence[int], seed_it: bool, release: seeding.Release) -> Deck:
        """One sample's deck (seeded if asked and possible), or a seeded batch deck of several."""
        samples = [{k: v[i] for k, v in feeds.items()} for i in group]
        if len(group) > 1:  # only ever seeded; a structure the predictor does not know raises
            deck = seeding.batch_deck(nl, tables, samples, title=f"samples {group[0]}-{group[-1]}", release=release)
        else:
            deck = nl.deck(samples[0], title=f"sample {group[0]}")
            if seed_it and tables is not None:
                try:
                    seeding.seed_deck(deck, nl, tables, samples[0], release)
                except (KeyError, IndexError, ValueError) as exc:  # a structure the predictor does not know
                    log.warning("sample %d: no seed (%s); running unseeded", group[0], exc)
                    deck = nl.deck(samples[0], title=f"sample {group[0]}")
        if extra_saves:
            deck.save(extra_saves)
        return deck

    def attempt(groups: list[list[int]], seed_it: bool, release: seeding.Release) -> list[list[int]]:
        """Run each group as one job; keep each sample's vectors, return the groups that failed."""
        jobs, planned = [], []
        for g in groups:
            try:
                deck = deck_for(g, seed_it, release)
            except (KeyError, IndexError, ValueError) as exc:  # no batch seed: each sample on its own
                log.warning("samples %d-%d: no batch seed (%s); one deck per sample", g[0], g[-1], exc)
                for i in g:
                    jobs.append(SimJob(f"sample_{i}", deck_for([i], seed_it, release).render(), timeout_s))
                    planned.append([i])
                continue
            jobs.append(SimJob(deck.title.replace(" ", "_"), deck.render(), timeout_s * len(g)))
            planned.append(g)
        failed = []
        for g, r in zip(planned, run_jobs(jobs, workers=workers, executor=executor, progress=progress,
                                                     retried=True)):
            try:
                if r.ok:
                    points = [seeding.last_point(r.vectors)] if len(g) == 1 else seeding.batch_points(r.vectors, len(g), release)
                    for i, v in zip(g, points):
                        vectors[i] = v
                    continue
            except ValueError as exc:
                r = SimResult.failure(r.name, SimulationError(f"job {r.name!r}: {exc}"), r.elapsed_s, r.log)
            for i in g:
                results[i] = r
            failed.append(g)
        return failed

    vectors: dict[int, dict[str, np.ndarray]] = {}
    results: dict[int, SimResult] = {}
    groups = seeding.batches(n, workers or usable_cpus()) if tables is not None else [[i] for i in range(n)]
    pending = attempt(groups, True, release)
    if pending and tables is not None and release.steps == 0:  # let go gradually before cutting batches (`seed.Release`)
        log.info("%d seeded simulation(s) failed (first: %s); rerunning them with the gradual release",
                 len(pending), results[pending[0][0]].error)
        release = seeding.GRADUAL
        pending = attempt(pending, True, release)
    while batched := [g for g in pending if len(g) > 1]:  # one bad step between two samples fails a batch:
        log.info("%d batched seeded simulation(s) failed (first: %s); rerunning them in halves",  # halve it
                    len(batched), results[batched[0][0]].error)
        pending = [g for g in pending if len(g) == 1] + attempt(
            [h for g in batched for h in (g[:len(g) // 2], g[len(g) // 2:])], True, release)
    failed = [i for g in pending for i in g]
    if failed and tables is not None:
        log.info("%d seeded sample simulation(s) failed (first: %s); rerunning them unseeded",
                    len(failed), results[failed[0]].error)
        failed = [i for g in attempt([[i] for i in failed], False, release) for i in g]
    nan = {name: np.full(shape, np.nan) for name, shape in nl.output_shapes.items()}
    per, errors = [], {}
    extras = {v: np.full(n, np.nan) for v in extra_saves}
    for i in range(n):
        try:
            if i in vectors and i not in failed:
                per.append(nl.read_outputs(vectors[i]))
                for v in extra_saves:
                    if v in vectors[i]:
                        extras[v][i] = float(np.real(vectors[i][v][0]))
                continue
            errors[i] = str(results[i].error)
        except (KeyError, IndexError, ValueError) as exc:  # ran, but without the output vectors
            errors[i] = f"ngspice returned no output vector {exc}"
        per.append(nan)
    outputs = {name: np.stack([p[name] for p in per]).astype(np.float32) for name in nl.output_ports}
    if errors:
        failed = tuple(errors)
        rows = ", ".join(map(str, failed[:10])) + (", ..." if len(failed) > 10 else "")
        raise BatchError(f"{len(failed)} of {n} sample simulations failed (rows {rows}); first, "
                         f"sample {failed[0]}: {errors[failed[0]]}", outputs, failed)
    return outputs, extras


def batch_rows(feeds: dict[str, np.ndarray]) -> int:
    """Samples in a batch (axis 0 of every input); an empty batch or a scalar input is an InputError."""
    for name, v in feeds.items():
        if np.ndim(v) == 0:
            raise InputError(f"input {name!r}: a single scalar has no sample axis; --engine spice runs one "
                             "sample per row (shape [samples, ...])")
    n = min((len(v) for v in feeds.values()), default=0)
    if n == 0:
        raise InputError(f"input {next(iter(feeds), '?')!r}: the batch is empty (0 samples); give at least one row")
    return n


def check_in_rails(nl: Netlist, feeds: dict[str, np.ndarray]) -> None:
    """Input levels (value x scale) must lie within the rails (voltages) or the cells' current range."""
    if nl.signal == "current":
        limit, unit = I_MAX_A, "A"
    else:
        limit, unit = max((abs(v) for v in nl.supplies.volts), default=0.0), "V"
    for name, v in feeds.items():
        if nl.signal == "current" and np.size(v) and np.min(v) < 0:
            index = [int(i) for i in np.unravel_index(int(np.argmin(v)), np.shape(v))]
            log.warning("input %r at index %s is %g: current-mode input somas carry only positive currents, so "
                        "the netlist computes max(0, x) (as --hardware quantized models; ideal does not)",
                        name, index, float(np.min(v)))
        level = np.abs(np.asarray(v, np.float64)) * nl.scale
        if level.size and level.max() > limit:
            index = [int(i) for i in np.unravel_index(int(np.argmax(level)), level.shape)]
            value = float(np.asarray(v, np.float64)[tuple(index)])
            raise InputError(f"input {name!r} at index {index} is {value:g} units = {value * nl.scale:g} {unit}, "
                             f"beyond the circuit's +-{limit:g} {unit}; scale the input down (or lower --scale)")
