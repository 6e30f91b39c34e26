"""``kelvin train`` and ``kelvin evaluate`` from Python: compile, build the hardware program, train or
evaluate, export, write metrics and the training-curve picture."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from circuits.errors import InputError, KelvinError, OutputError, ParameterError, UnsupportedError
from circuits.files import check_output, write_json
from compiler.samples import sample_mixing
from compiler.pipeline import Compiled, compile_model
from sim.engine.hardware import BinasLevels, ConductanceLevels
from sim.engine.prepare import HardwareOptions, build_program
from sim.engine.program import Program, check_unsupported_grad
from sim.train.data import Dataset, load_dataset
from sim.train.export import export_trained, kelvin_version, write_model
from sim.train.loop import TrainConfig, check_checkpoint_dir, evaluate, train
from sim.train.loss import accuracy, loss_and_grad
from sim.train.plot import training_curves

log = logging.getLogger(__name__)
PROGRAMMED_MAPS = (BinasLevels, ConductanceLevels)  # deterministic weight maps: what gets programmed


def _input_shape(compiled: Compiled) -> tuple:
    name = compiled.graph.inputs[0]
    return tuple(compiled.graph.shape(name) or ())


def load_for(compiled: Compiled, spec: str) -> Dataset:
    if len(compiled.graph.inputs) != 1 or len(compiled.graph.outputs) != 1:
        raise UnsupportedError("kelvin train/evaluate take models with one input and one output; this one has "
                               f"{len(compiled.graph.inputs)} inputs and {len(compiled.graph.outputs)} outputs")
    mixing = sample_mixing(compiled.graph)
    if mixing is not None:  # mini-batches would change what each sample's outputs are
        raise UnsupportedError(f"{mixing}; kelvin train/evaluate run a model in mini-batches, so they need "
                               "one that computes each sample alone")
    data = load_dataset(spec, _input_shape(compiled))
    out_shape = compiled.graph.shape(compiled.graph.outputs[0]) or ()
    outs = int(np.prod([d for d in out_shape[1:] if isinstance(d, int)])) if out_shape else 0
    if data.classification and outs and data.classes > outs:
        raise InputError(f"{spec}: labels go up to {data.classes - 1} but the model has {outs} outputs")
    return data


def loss_for(compiled: Compiled, loss: str) -> str:
    """``ce`` on a model that ends in Softmax is the cross-entropy of its probabilities (``nll``).
    Cross-entropy needs a class per output: on one output its gradient is identically 0."""
    out = compiled.graph.outputs[0]
    shape = compiled.graph.shape(out)
    if loss in ("ce", "nll") and shape and shape[-1] == 1:
        raise InputError(f"--loss {loss}: the model has one output, and cross-entropy needs one per class "
                         "(on one output it is 0 whatever the weights); use --loss mse")
    node = compiled.graph.producer(out)
    kind = node.kind if node is not None else ""
    return "nll" if loss == "ce" and kind in _softmax_kinds() else loss


def _softmax_kinds() -> set[str]:
    """The ONNX op and every target's softmax primitive (`circuits.targets` roles)."""
    from circuits.targets import TARGETS

    return {"Softmax"} | {t.roles["softmax"].kind for t in TARGETS.values() if "softmax" in t.roles}


def with_banks(compiled: Compiled, banks: dict[str, dict[str, np.ndarray]]) -> Compiled:
    """``compiled`` whose banks hold these (trained, programmed) parameters."""
    g = compiled.graph.copy()
    for name, p in banks.items():
        node = g.node(name)
        node.primitive = node.primitive.with_parameters(**{k: np.asarray(v, np.float64) for k, v in p.items()})
    return dataclasses.replace(compiled, graph=g)


def programmed_params(program: Program) -> dict[str, dict[str, np.ndarray]]:
    """Each bank's parameters as programmed: through the deterministic level maps, if any."""
    banks: dict[str, dict[str, np.ndarray]] = {}
    for step in program.primitive_steps():
        if not step.params:
            continue
        p = {fld: program.params[key] for fld, key in step.params}
        for m in step.maps.wmap:
            if isinstance(m, PROGRAMMED_MAPS):
                p, _ = m.forward(p, None)
        banks[step.node.name] = p
    return banks


def dead_banks(program: Program) -> list[str]:
    """Banks whose every programmed weight is 0 at the start: the levels' straight-through gradient then
    reaches nothing through them (PyTorch's default init, |w| ≤ 0.125, rounds to level 0 on the current
    target's 0.25 steps), and training stays at chance while exiting 0."""
    lines = []
    for name, p in programmed_params(program).items():
        w = np.asarray(p.get("weights", np.zeros(0)))
        if w.size and not np.any(w) and np.any(program.params.get(f"{name}.weights", 0)):
            lines.append(f"bank {name!r}: every weight rounds to level 0 on this hardware (largest |w| "
                         f"{float(np.max(np.abs(program.params[f'{name}.weights']))):.3g}), so training cannot move "
                         "it; scale the initial weights up, or train ideally first and then for the hardware")
    return lines


def train_file(model: str, data: str, output: str, *, metrics: str | None = None, target: str = "opamp",
               hardware: HardwareOptions | None = None, eval_hardware: HardwareOptions | None = None,
               config: TrainConfig | None = None, checkpoint: str | None = None, resume: bool = False,
               val_split: float = 0.0, progress: bool = True) -> dict[str, Any]:
    """Train ``model`` on ``data`` for ``hardware``; write the trained ONNX, metrics JSON and curves PNG."""
    hardware = hardware or HardwareOptions()
    config = config or TrainConfig()
    for name, value, kind in (("hardware", hardware, HardwareOptions), ("eval_hardware", eval_hardware or hardware,
                              HardwareOptions), ("config", config, TrainConfig)):
        if not isinstance(value, kind):
            raise ParameterError(f"{name}: a {kind.__name__}, got {type(value).__name__}")
    config.check()
    if not str(output).endswith(".onnx"):
        raise OutputError(f"{output}: the trained model is written as an .onnx file (-o TRAINED.onnx)")
    check_output(output, directory=False)
    if metrics:
        check_output(metrics, directory=False)
        check_output(Path(metrics).with_suffix(".png"), directory=False)  # the training curves beside it
    check_checkpoint_dir(checkpoint, resume=resume)  # before the compile and the epochs, as -o is
    if checkpoint:
        for option, path in (("-o", output), ("--metrics", metrics)):
            if path and Path(path).resolve().parent == Path(checkpoint).resolve():
                raise OutputError(f"{option} {path}: inside --checkpoint {checkpoint}, which holds the checkpoint "
                                  "alone; write it elsewhere")
    compiled = compile_model(model, target)
    if eval_hardware is not None:  # before the training: a bad choice here used to be found after it
        try:
            build_program(compiled, eval_hardware)
        except KelvinError as exc:
            raise type(exc)(f"--eval-hardware: {exc}") from exc
    program = build_program(compiled, hardware, trainable=True)
    check_unsupported_grad(program)
    for line in dead_banks(program):
        log.warning("%s: %s", model, line)
    dataset = load_for(compiled, data)
    config = dataclasses.replace(config, loss=loss_for(compiled, config.loss))
    if val_split:
        _, dataset = dataset.split_validation(val_split, config.seed)  # the held-out part is the test split
    result = train(program, dataset, config, hardware=hardware_doc(hardware), checkpoint_dir=checkpoint,
                   resume=resume, progress=progress)
    banks = programmed_params(program)
    meta = {"kelvin.trained.hardware": ",".join(hardware.modes), "kelvin.trained.seed": config.seed,
            "kelvin.trained.chip_seed": "" if hardware.chip_seed is None else hardware.chip_seed,
            "kelvin.trained.target": target, "kelvin.trained.data": str(data)}
    exported = export_trained(model, banks, meta)
    _check_export(exported, compiled, banks, dataset)
    final_hw = eval_hardware or inference_hardware(hardware)
    # a fresh program, as `kelvin evaluate` builds it: the training program's converters were
    # calibrated on the last epoch's first batch, which the exported file does not carry
    eval_program = build_program(with_banks(compiled, banks), final_hw)
    test_loss, test_acc, _ = evaluate(eval_program, dataset.x_test, dataset.y_test, config.loss, seed=config.seed)
    last = result.history[-1] if result.history else {}
    doc = {
        "model": str(model), "output": str(output), "data": str(data), "target": target,
        "hardware": hardware_doc(hardware), "eval_hardware": hardware_doc(final_hw),
        "seed": config.seed, "epochs": config.epochs, "config": dataclasses.asdict(config),
        "train_samples": len(dataset.x_train), "test_samples": len(dataset.x_test),
        "test_accuracy": test_acc, "test_loss": test_loss,
        "train_accuracy": last.get("train_accuracy"), "train_loss": last.get("train_loss"),
        "samples_per_s": result.samples_per_s, "seconds": result.seconds,
        "resumed_from_epoch": result.resumed_from, "history": result.history,
        "kelvin_version": kelvin_version(),
    }
    if metrics:  # before the model: a metrics path that fails leaves no model behind
        write_json(metrics, doc)
        doc["plot"] = str(training_curves(result.history, Path(metrics).with_suffix(".png"),
                                          f"{Path(model).name} on {data}, {doc['hardware']['mode']}"))
    write_model(output, exported)  # last: a failed run leaves the old file
    return doc


def _check_evaluate_args(data, hardware, chips, seed, engine, loss) -> None:
    """The API's arguments get the CLI's checks (a wrong type was a raw TypeError, an unknown engine ran
    the behavioral one)."""
    if not isinstance(data, (str, os.PathLike)):
        raise ParameterError(f"data: a data set name or an .npz path, got {data!r}")
    if not isinstance(hardware, HardwareOptions):
        raise ParameterError(f"hardware: a HardwareOptions, got {type(hardware).__name__}")
    for name, value, low in (("chips", chips, 1), ("seed", seed, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ParameterError(f"{name}: an integer ≥ {low}, got {value!r}")
    if engine not in ("behavioral", "ideal", "spice"):
        raise ParameterError(f"engine: behavioral (alias ideal) or spice, got {engine!r}")
    if loss not in ("ce", "mse"):
        raise ParameterError(f"loss: ce or mse, got {loss!r}")


def inference_hardware(h: HardwareOptions) -> HardwareOptions:
    """The hardware a model trained for ``h`` is scored on: ``h``, less the parameter maps a chip's
    inference model has nothing to act on (`sim.engine.prepare.TRAINING_ONLY_WITH_CHIP`)."""
    from sim.engine.prepare import TRAINING_ONLY_WITH_CHIP
    if "chip" not in h.modes:
        return h
    return dataclasses.replace(h, modes=tuple(m for m in h.modes if m not in TRAINING_ONLY_WITH_CHIP))


def hardware_doc(h: HardwareOptions) -> dict[str, Any]:
    d = {"mode": ",".join(h.modes)}
    if "noise" in h.modes:
        d["noise"] = h.noise
    if h.chip_seed is not None:
        d["chip_seed"] = h.chip_seed
    if "pcm" in h.modes:
        d.update(pcm_time_s=h.pcm_time_s, drift_compensation=h.drift_compensation)
    if "irdrop" in h.modes:
        d["wire_ohm"] = h.wire_ohm
    if "quantized" in h.modes:
        d.update(weight_bits=h.weight_bits, dac_bits=h.dac_bits, adc_bits=h.adc_bits)
    if h.sizing != "default":
        d["sizing"] = h.sizing
    return d


def _check_export(exported: onnx.ModelProto, compiled: Compiled, banks, data: Dataset) -> None:
    """The exported file, compiled afresh and run ideally, equals the programmed weights' network."""
    again = compile_model(exported, compiled.target.name)
    ref = Program(compiled.graph)
    for step in ref.primitive_steps():
        for fld, key in step.params:
            if step.node.name in banks and fld in banks[step.node.name]:
                ref.params[key][...] = banks[step.node.name][fld]
    x = {compiled.graph.inputs[0]: data.x_test[:64]}
    want = ref.run(x)[compiled.graph.outputs[0]]
    got = Program(again.graph).run({again.graph.inputs[0]: data.x_test[:64]})[again.graph.outputs[0]]
    err = float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-12))
    if not err <= 1e-4:
        raise UnsupportedError(f"export: the exported model differs from the trained one by {err:.2e} of full "
                               "scale; its layers could not all be mapped back to the original graph")


def chip_yield(compiled: Compiled, hardware: HardwareOptions, x: np.ndarray, y: np.ndarray, loss: str,
               seeds, seed: int = 0) -> dict[str, Any]:
    """Accuracy on each chip instance in ``seeds`` (``hardware``'s other modes kept): a yield figure."""
    seeds = list(seeds)
    modes = tuple(m for m in hardware.modes if m not in ("ideal", "chip")) + ("chip",)
    accs = [evaluate(build_program(compiled, dataclasses.replace(hardware, modes=modes, chip_seed=s)), x, y, loss,
                     seed=seed)[1] for s in seeds]
    a = np.asarray(accs, dtype=np.float64)
    return {"chips": len(seeds), "chip_seeds": [seeds[0], seeds[-1]], "accuracies": accs, "mean": float(a.mean()),
            "std": float(a.std()), "p5": float(np.percentile(a, 5)), "worst": float(a.min())}


def evaluate_file(model: str, data: str, *, target: str = "opamp", hardware: HardwareOptions | None = None,
                  chips: int | None = None, loss: str = "ce", seed: int = 0, engine: str = "behavioral",
                  samples: int | None = None, spice: dict | None = None, output: str | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Accuracy and loss of ``model`` on ``data``'s test split (or on ``chips`` chip instances)."""
    hardware = hardware or HardwareOptions()
    _check_evaluate_args(data, hardware, chips, seed, engine, loss)
    if output:
        check_output(output, directory=False)  # before minutes of evaluation; never into a Kelvin output dir
    compiled = compile_model(model, target)
    dataset = load_for(compiled, data)
    loss = loss_for(compiled, loss)
    x, y = dataset.x_test, dataset.y_test
    doc: dict[str, Any] = {"model": str(model), "data": str(data), "target": target,
                           "hardware": hardware_doc(hardware), "test_samples": len(x)}
    if samples is not None and engine != "spice":
        raise InputError("--samples applies to --engine spice (the engine evaluates the whole test split)")
    if engine == "spice":
        from sim.engine.prepare import check_spice_modes
        from sim.spice_commands import default_scale, run_network_spice
        check_spice_modes(hardware, target)
        if chips:
            raise InputError("--chips (a yield over chip instances) runs in the engine; with --engine spice give "
                             "one chip with --chip-seed")
        k = len(x) if samples is None else samples
        if k < 1:
            raise InputError(f"--samples: at least 1, got {k}")
        if k > len(x):
            raise InputError(f"--samples {k}: the test split of {data} has {len(x)} samples")
        x, y = x[:k], y[:k]
        opts = dict(spice or {})
        scale = opts.pop("scale", None) or default_scale(target)
        from sim.engine.prepare import crossbar_converters
        conv = crossbar_converters(compiled, hardware, {compiled.graph.inputs[0]: dataset.x_test})  # as evaluate
        z = run_network_spice(compiled, {compiled.graph.inputs[0]: x}, scale, progress=progress, converters=conv or None,
                              chip_seed=hardware.chip_seed, sizing=hardware.sizing, **opts)[compiled.graph.outputs[0]]
        value, _ = loss_and_grad(loss, z, y)
        doc.update(engine="spice", samples=k, test_loss=value, test_accuracy=accuracy(z, y))
    elif chips:
        if chips < 1:
            raise InputError(f"--chips: at least 1, got {chips}")
        y_doc = chip_yield(compiled, hardware, x, y, loss, range(hardware.chip_seed or 0, (hardware.chip_seed or 0) + chips),
                           seed=seed)
        doc.update(y_doc, test_accuracy=y_doc["mean"])
    else:
        value, acc, _ = evaluate(build_program(compiled, hardware), x, y, loss, seed=seed)
        doc.update(test_loss=value, test_accuracy=acc)
    if output:
        write_json(output, doc)
    return doc

