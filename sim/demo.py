"""``kelvin demo``: Binas et al. (2016) end to end: measure a mismatched chip, train for it, confirm in ngspice.

1. The bundled MLP (digits 64-16-10, or 14×14 MNIST 196-50-10, Binas's network), trained by Kelvin.
2. Compiled to the current target with minimum-size mirrors (``--sizing``, default minimum: the
   process floor, 0.26 µm × 0.52 µm): the paper's point is that training, not transistor area,
   absorbs mismatch. ``compact`` (1 µm × 2 µm) mismatches too little for that to show: an ideally
   trained network loses only 1-3 points on it.
3. Chip instance S is measured as a lab would (`sim.measure.lab`: programmed test levels, driven
   inputs, read soma and output currents; never the mismatch draws) and fitted (`sim.measure.fit`).
4. Naive: the ideally trained weights, deployed on chip S.
5. Aware, measured: trained for chip S from the fitted model. Aware, oracle: trained from the
   draw-based chip model (`sim.engine.chip_map`), the reference a lab cannot have.
6. Every deployment is scored in the engine on the chip's draw-based model (whole test set) and
   in ngspice on the chip netlist (``spice_samples`` test inputs).
7. A transient of a few inputs gives settling time, energy per inference and MACs per joule
   (`sim.energy`), next to the Horowitz 45 nm digital reference.
8. Yield: the naive and the population-trained weights on 50 chip instances (engine).

Outputs in OUTDIR (written atomically as a whole): report.json, report.md, report.html, the PNGs
(`sim.demo_report`), measurements.npz, fits/ (the measured chip model), chip_aware/netlist.cir
(the aware chip netlist; runs on its own with ``ngspice -b``), naive.onnx and aware.onnx.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from circuits.data import model_file
from circuits.errors import InputError, ParameterError
from circuits.files import staged_dir, write_json, write_text
from compiler.pipeline import Compiled, compile_model

log = logging.getLogger(__name__)

MODELS = {"digits": "digits_mlp.onnx", "mnist": "mnist14_mlp.onnx"}
DEFAULT_DATASET = "digits"
CHIP, MEASURED = "chip,early", "fitted,early"
"""Every accuracy and output the demo reports is scored with the mirrors' Early drift, the closest
model of what the netlist computes; training runs the same chips without it (it has no gradient)."""
TRAINING = {"optimizer": "adam", "lr": 0.002, "schedule": "cosine", "batch_size": 32}
"""How every aware training runs (`_train`'s docstring says why); report.json's ``training``."""
PRODUCTS = frozenset({"report.json", "report.md", "report.html", "measurements.npz", "fits", "chip_aware",
                      "naive.onnx", "aware.onnx", "kelvin.json", "transfer.png", "gains.png", "accuracy.png",
                      "spice_vs_engine.png", "training.png", "yield.png"})


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """What the demo runs; ``quick`` shrinks every budget (same report keys)."""

    dataset: str | None = None         # the bundled network and its data; None: not given, digits
    seed: int = 0
    quick: bool = False
    sizing: str = "minimum"
    spice_samples: int | None = None   # default 100 (quick 30)
    epochs: int | None = None          # aware training epochs, default 40 (quick 16)
    chips: int | None = None           # yield chips, default 50 (quick 20)
    dynamics_samples: int | None = None  # transients for settling and energy, default 3 (quick 1)
    workers: int | None = None
    model: str | None = None           # another dense MLP instead of the bundled one (with ``data``)
    data: str | None = None            # its data set (an .npz, or a built-in name); default ``dataset``

    def check(self) -> None:
        if self.dataset is not None and self.dataset not in MODELS:
            raise ParameterError(f"--dataset: choose one of {', '.join(MODELS)}, got {self.dataset!r}")
        if self.dataset is not None and self.model is not None and self.data is not None:
            raise ParameterError(f"--dataset {self.dataset}: --model and --data name the network and its data, "
                                 "so --dataset would change nothing; drop it")
        if self.seed < 0:
            raise ParameterError(f"--seed: a non-negative chip seed, got {self.seed}")
        if self.model is not None and not Path(self.model).is_file():
            raise InputError(f"--model {self.model}: no such file")
        for name in ("spice_samples", "epochs", "chips", "dynamics_samples"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ParameterError(f"--{name.replace('_', '-')}: at least 1, got {v}")

    @property
    def dataset_name(self) -> str:
        """The data set the bundled network and default data come from (``dataset``, else digits)."""
        return self.dataset or DEFAULT_DATASET

    @property
    def n_spice(self) -> int:
        return self.spice_samples or (30 if self.quick else 100)

    @property
    def n_epochs(self) -> int:
        return self.epochs or (16 if self.quick else 40)

    @property
    def n_dynamics(self) -> int:
        return self.dynamics_samples or (1 if self.quick else 3)

    def plan(self, compiled: Compiled):
        """The measurement plan (`sim.measure.lab.default_plan`)."""
        from sim.measure.lab import default_plan
        return default_plan(compiled, self.seed, self.quick)

    @property
    def n_chips(self) -> int:
        return self.chips or (20 if self.quick else 50)


def run_demo(outdir: str | os.PathLike[str] = "out/demo", config: DemoConfig | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Run every step into OUTDIR (replaced whole on success); return report.json's content."""
    cfg = config or DemoConfig()
    cfg.check()
    with staged_dir(outdir, PRODUCTS, kind="demo") as stage:
        write_json(stage / "kelvin.json", {"kind": "demo", **dataclasses.asdict(cfg), "dataset": cfg.dataset_name})
        report = _run(stage, Path(outdir), cfg, progress)
    return report


class _Steps:
    """A progress bar over the demo's steps, with the wall time of each."""

    def __init__(self, names: list[str], progress: bool) -> None:
        self.bar = tqdm(total=len(names), desc="demo", unit="step", disable=not progress or None)
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = round(now - self._t, 2)
        self._t = now
        self.bar.set_postfix_str(name)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


STEPS = ["ideal", "measure", "naive", "aware_measured", "aware_oracle", "population", "spice", "dynamics",
         "yield", "report"]


def _run(stage: Path, final: Path, cfg: DemoConfig, progress: bool) -> dict[str, Any]:
    from circuits.spice.current_cells import CellSizing
    from sim.engine.prepare import HardwareOptions, build_program
    from sim.measure.fit import fit_chip
    from sim.measure.lab import measure_chip
    from sim.spice_commands import default_scale
    from sim.train.commands import load_for, with_banks

    steps = _Steps(STEPS, progress)
    t_start = time.perf_counter()
    model = Path(cfg.model) if cfg.model else model_file("examples", MODELS[cfg.dataset_name])
    compiled = compile_model(model, "current")
    data = load_for(compiled, cfg.data or cfg.dataset_name)
    scale = default_scale("current")
    x_te, y_te = data.x_test, data.y_test
    hw = _Hardware(cfg.seed, cfg.sizing, scale)
    ideal_acc = _accuracy(build_program(compiled, HardwareOptions()), x_te, y_te)
    quantized_acc = _accuracy(build_program(compiled, hw.opts("quantized")), x_te, y_te)
    steps.done("ideal")

    plan = cfg.plan(compiled)
    t0 = time.perf_counter()
    meas = measure_chip(compiled, cfg.seed, sizing=cfg.sizing, scale=scale, plan=plan, workers=cfg.workers,
                        progress=progress)
    measure_s = time.perf_counter() - t0
    meas.save(stage / "measurements.npz")
    chip = fit_chip(meas)
    chip.save(stage / "fits")
    fits = str(stage / "fits")
    steps.done("measure")

    naive_acc = _accuracy(build_program(compiled, hw.opts(CHIP)), x_te, y_te)
    steps.done("naive")

    histories: dict[str, list[dict]] = {}
    measured_banks, histories["aware, measured"] = _train(compiled, hw.opts("fitted", fits=fits), data, cfg,
                                                          progress)
    aware = with_banks(compiled, measured_banks)
    aware_measured_acc = _accuracy(build_program(aware, hw.opts(CHIP)), x_te, y_te)
    steps.done("aware_measured")

    oracle_banks, histories["aware, oracle"] = _train(compiled, hw.opts("chip"), data, cfg, progress)
    aware_oracle_acc = _accuracy(build_program(with_banks(compiled, oracle_banks), hw.opts(CHIP)), x_te, y_te)
    # the measured model against the oracle (draw-based, with drift) on the aware weights' outputs
    z_meas = _outputs(build_program(aware, hw.opts(MEASURED, fits=fits)), x_te)
    z_orac = _outputs(build_program(aware, hw.opts(CHIP)), x_te)
    measured_vs_oracle = _rms_pct_fs(z_meas, z_orac)
    steps.done("aware_oracle")

    pop_banks, histories["population"] = _train(compiled, hw.opts("quantized,population"), data, cfg, progress)
    steps.done("population")

    spice = _spice(compiled, aware, x_te[:cfg.n_spice], y_te[:cfg.n_spice], hw, cfg, progress)
    steps.done("spice")

    netlist = _write_aware(stage, final, model, measured_banks, aware, x_te[0], hw)
    _write_model(stage / "naive.onnx", model, None, hw)
    dyn = _dynamics(aware, x_te[:cfg.n_dynamics], hw, cfg, progress)
    steps.done("dynamics")

    yields = {"naive": _yield(compiled, x_te, y_te, hw, cfg.n_chips),
              "population": _yield(with_banks(compiled, pop_banks), x_te, y_te, hw, cfg.n_chips)}
    steps.done("yield")

    report: dict[str, Any] = {
        "dataset": cfg.data or cfg.dataset_name, "model": str(model), "network": _shape(compiled), "seed": cfg.seed,
        "sizing": cfg.sizing, "scale_a": scale, "sizing_detail": CellSizing.preset(cfg.sizing).report(), "quick": cfg.quick,
        "test_samples": int(len(y_te)),
        "ideal_accuracy": ideal_acc, "quantized_accuracy": quantized_acc,
        "chip_naive_accuracy": naive_acc, "chip_aware_measured_accuracy": aware_measured_acc,
        "chip_aware_oracle_accuracy": aware_oracle_acc,
        "measured_vs_oracle_rms_pct_fs": measured_vs_oracle,
        "spice_naive_accuracy": spice["naive_accuracy"], "spice_aware_accuracy": spice["aware_accuracy"],
        "spice_samples": spice["samples"], "engine_spice_argmax_agreement": spice["aware_agreement"],
        "engine_spice_argmax_agreement_naive": spice["naive_agreement"],
        "engine_spice_rms_pct_fs": spice["aware_rms_pct_fs"], "spice_seconds_per_sample": spice["seconds_per_sample"],
        "measurement_simulations": meas.probes, "measurement_seconds": round(measure_s, 1),
        "measurement_plan": {"configurations": plan.configs, "probes_per_configuration": plan.probes_per_config,
                             "density": plan.density},
        "measurement_identifiability": chip.report()["banks"],
        **dyn,
        "yield": yields,
        "netlist": netlist,
        "epochs": cfg.n_epochs, "training": {**TRAINING, "epochs": cfg.n_epochs},
        "step_seconds": steps.times,
    }
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    from sim.demo_report import write_report
    write_report(stage, report, meas=meas, chip=chip, histories=histories, spice=spice, yields=yields)
    steps.done("report")
    steps.close()
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    report = _finite(report)
    write_json(stage / "report.json", report)
    return report


def _finite(obj: Any) -> Any:
    """JSON-ready: NaN and infinities (a figure that could not be measured) become null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


@dataclass(frozen=True, slots=True)
class _Hardware:
    seed: int
    sizing: str
    scale: float

    def opts(self, modes: str, fits: str | None = None, chip_seed: int | None = None):
        from sim.engine.prepare import HardwareOptions
        seed = self.seed if chip_seed is None else chip_seed
        return HardwareOptions.parse(modes, chip_seed=seed if "chip" in modes else None, fits=fits,
                                     sizing=self.sizing, scale=self.scale)


def _accuracy(program, x: np.ndarray, y: np.ndarray) -> float:
    from sim.train.loop import evaluate
    return float(evaluate(program, x, y, "ce")[1])


def _outputs(program, x: np.ndarray) -> np.ndarray:
    return program.run({program.inputs[0]: x}, rng=np.random.default_rng(0))[program.outputs[0]]


def _rms_pct_fs(got: np.ndarray, ref: np.ndarray) -> float:
    """RMS of got − ref in % of ref's full scale (its largest magnitude)."""
    return float(np.sqrt(np.mean((got - ref) ** 2)) / max(float(np.max(np.abs(ref))), 1e-12) * 100)


def _train(compiled: Compiled, opts, data, cfg: DemoConfig, progress: bool):
    """Fine-tune the bundled weights for ``opts``; the programmed banks and history.

    Adam at 2e-3, batch 32, cosine-annealed to zero over 40 epochs (quick: 16). Against the constant
    rate over 10 epochs it was worth +0.6 points on unseen chips (oracle training, chips 3-8 × 3
    training seeds: 96.0 → 96.6 %, ideal 96.9 %) and +0.8 on measured fits (chips 0-2 × 5 seeds:
    96.0 → 96.8 %); 60 epochs gained nothing more. Annealed, the last epochs settle the weights the
    chip's 3-bit + sign levels are rounded from, instead of leaving them where the last minibatches
    pushed them."""
    from sim.engine.prepare import build_program
    from sim.train.commands import hardware_doc, loss_for, programmed_params
    from sim.train.loop import TrainConfig, train
    program = build_program(compiled, opts, trainable=True)
    tc = TrainConfig(epochs=cfg.n_epochs, seed=cfg.seed, loss=loss_for(compiled, "ce"), **TRAINING)
    result = train(program, data, tc, hardware=hardware_doc(opts), progress=progress)
    return programmed_params(program), result.history


def _spice(compiled: Compiled, aware: Compiled, x: np.ndarray, y: np.ndarray, hw: _Hardware, cfg: DemoConfig,
           progress: bool) -> dict[str, Any]:
    """Naive and aware weights on chip S's netlist in ngspice, against the engine's chip model."""
    from sim.engine.prepare import build_program
    from sim.spice_commands import run_network_spice
    out: dict[str, Any] = {"samples": int(len(x))}
    t0 = time.perf_counter()
    for name, c in (("naive", compiled), ("aware", aware)):
        z = run_network_spice(c, {c.graph.inputs[0]: x}, hw.scale, chip_seed=hw.seed, sizing=hw.sizing,
                              workers=cfg.workers, progress=progress)[c.graph.outputs[0]]
        e = _outputs(build_program(c, hw.opts(CHIP)), x)
        out[f"{name}_spice"], out[f"{name}_engine"] = z, e
        out[f"{name}_accuracy"] = float(np.mean(z.argmax(1) == y))
        out[f"{name}_agreement"] = float(np.mean(z.argmax(1) == e.argmax(1)))
        out[f"{name}_rms_pct_fs"] = _rms_pct_fs(e, z)
    out["seconds_per_sample"] = round((time.perf_counter() - t0) / (2 * len(x)), 3)
    return out


def _write_model(path: Path, model: Path, banks, hw: _Hardware) -> None:
    import onnx

    from circuits.files import write_bytes
    from sim.train.export import export_trained
    if banks is None:
        write_bytes(path, Path(model).read_bytes())
        return
    proto = export_trained(model, banks, {"kelvin.trained.hardware": "fitted (measured chip)",
                                          "kelvin.trained.chip_seed": hw.seed})
    onnx.checker.check_model(proto)
    write_bytes(path, proto.SerializeToString())


def _write_aware(stage: Path, final: Path, model: Path, banks, aware: Compiled, sample: np.ndarray,
                 hw: _Hardware) -> str:
    """aware.onnx and chip_aware/ (netlist.cir + inputs.inc driving test sample 0); the netlist's final path."""
    from circuits.files import ensure_dir
    from sim.spice_commands import (
        _stimulus_text,
        save_compile_inputs,
        write_netlist_files,
    )
    _write_model(stage / "aware.onnx", model, banks, hw)
    d = ensure_dir(stage / "chip_aware")
    nl = write_netlist_files(d, aware, hw.scale, 10**9, hw.seed, sizing=hw.sizing)
    write_text(d / "inputs.inc", _stimulus_text(nl, {aware.graph.inputs[0]: sample}))
    save_compile_inputs(d, stage / "aware.onnx", "current", hw.scale, hw.seed, hw.sizing)
    return str(final / "chip_aware" / "netlist.cir")


def _dynamics(aware: Compiled, x: np.ndarray, hw: _Hardware, cfg: DemoConfig, progress: bool) -> dict[str, Any]:
    """Settling, energy and efficiency from transients (`sim.energy`)."""
    from sim.energy import measure_dynamics
    # --quick: 250 time points per window (4 µs resolution in 1 ms) instead of 500, half the transient's cost
    d = measure_dynamics(aware, x, scale=hw.scale, chip_seed=hw.seed, sizing=hw.sizing, workers=cfg.workers,
                         points=250 if cfg.quick else 500, progress=progress)
    # Binas's reading: energy until the argmax stops changing; where it never changed during a step
    # (the idle argmax was already the answer) that is undefined, and the 1 %-settling energy is used
    by_argmax = bool(np.isfinite(d.median_energy_j))
    energy = d.median_energy_j if by_argmax else d.median_energy_to_settle_j
    macs_per_j = d.macs / energy if energy and np.isfinite(energy) and energy > 0 else float("nan")
    return {"settling_time_s": d.median_settling_time_s, "argmax_time_s": d.median_argmax_time_s,
            "energy_per_inference_j": energy,
            "energy_definition": "until the argmax stops changing" if by_argmax else "until 1 % settling",
            "macs_per_joule": macs_per_j, "ops_per_joule": 2 * macs_per_j, "digital_reference": {"energy_j": d.digital.energy_j,
                                                                "macs_per_j": d.digital.macs_per_j},
            "dynamics": d.summary()}


def _yield(compiled: Compiled, x: np.ndarray, y: np.ndarray, hw: _Hardware, chips: int) -> dict[str, Any]:
    """The same weights on ``chips`` unseen chip instances (seeds 1000…): `chip_yield`."""
    from sim.train.commands import chip_yield
    return chip_yield(compiled, hw.opts(CHIP), x, y, "ce", range(1000, 1000 + chips))


def _shape(compiled: Compiled) -> str:
    from circuits.current import SynapseArray
    widths = []
    for n in compiled.graph.topo():
        p = getattr(n, "primitive", None)
        if isinstance(p, SynapseArray):
            if not widths:
                widths.append(p.weights.shape[1])
            widths.append(p.weights.shape[0])
    return "-".join(map(str, widths))
