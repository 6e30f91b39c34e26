"""The engine's side of the command line: hardware options (run, train, evaluate), ``kelvin train`` and
``kelvin evaluate``. `sim.cli` builds the parser and turns errors into one line."""

from __future__ import annotations

import argparse
import json
import logging
import math

from circuits.errors import InputError
from circuits.files import json_safe
from circuits.spice.current_cells import SIZINGS
from sim.train.schedule import SCHEDULES

SPICE_TIMEOUT_S = 300.0  # seconds per ngspice simulation unless --timeout says otherwise

log = logging.getLogger(__name__)

HARDWARE_HELP = ("hardware model(s), comma-separated: ideal, quantized, noise, population, pcm, irdrop, chip, early, "
                 "fitted (default: ideal; chip when --chip-seed is given; early adds the current mirrors' Early drift "
                 "to quantized, chip or a measured chip, at inference)")


def hardware_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The engine's hardware choice (`sim.engine.prepare.HardwareOptions`)."""
    p.add_argument("--hardware", help=HARDWARE_HELP)
    p.add_argument("--noise", type=float, help="relative parameter noise for --hardware noise (default: 1e-3)")
    p.add_argument("--chip-seed", type=int, help="the chip instance (mismatch drawn from this seed)")
    p.add_argument("--fits", help="fits directory for --hardware fitted")
    p.add_argument("--pcm-time", type=float, dest="pcm_time_s", help="seconds since PCM programming (default: 1)")
    p.add_argument("--wire-ohm", type=float, dest="wire_ohm",
                   help="irdrop: crossbar row and column wire resistance per cell, ohms")
    p.add_argument("--no-drift-compensation", action="store_false", dest="drift_compensation", default=None,
                   help="pcm: no global drift compensation")
    for conv in ("weight", "dac", "adc"):
        p.add_argument(f"--{conv}-bits", type=int, help=f"{conv} resolution in bits, 2-16 (crossbar DAC/ADC "
                                                        "default 8)" if conv != "weight" else
                       "weight resolution in bits, 1-16 (crossbar conductances, op-amp resistor ratios)")
    p.add_argument("--sizing", choices=SIZINGS, help="current-mode mirror sizing (default: default)")


def _check_used(args: argparse.Namespace) -> None:
    """An option for a hardware mode nobody asked for is a mistake to say, not to ignore."""
    from sim.engine.hardware import mode_list
    eval_spec = getattr(args, "eval_hardware", None)
    eval_modes = set(mode_list(eval_spec)) if eval_spec else set()
    modes = (set(mode_list(args.hardware)) if args.hardware else set()) | eval_modes
    if getattr(args, "eval_chip_seed", None) is not None and "chip" not in eval_modes:
        raise InputError("--eval-chip-seed applies to --eval-hardware chip; add it or drop --eval-chip-seed")
    if args.fits and "fitted" not in modes:
        raise InputError("--fits applies to --hardware fitted (or --eval-hardware fitted); add it or drop --fits")
    if (args.pcm_time_s is not None or args.drift_compensation is False) and "pcm" not in modes:
        option = "--pcm-time" if args.pcm_time_s is not None else "--no-drift-compensation"
        raise InputError(f"{option} applies to --hardware pcm (crossbar target); add it or drop {option}")
    target = getattr(args, "target", None)
    spice = getattr(args, "engine", None) == "spice"
    for dest, option, needs, targets in (("noise", "--noise", "noise", None),
                                         ("wire_ohm", "--wire-ohm", "irdrop", None),
                                         ("weight_bits", "--weight-bits", "quantized", ("opamp", "crossbar")),
                                         ("dac_bits", "--dac-bits", "quantized", ("crossbar",)),
                                         ("adc_bits", "--adc-bits", "quantized", ("crossbar",))):
        if getattr(args, dest, None) is None:
            continue
        if needs not in modes:
            raise InputError(f"{option} applies to --hardware {needs}; add it or drop {option}")
        if targets is not None and target not in targets:
            raise InputError(f"{option} applies to the {' and '.join(targets)} target{'s' if len(targets) > 1 else ''}"
                             f", not {target}: drop {option}")
    if getattr(args, "chip_seed", None) is not None and args.hardware and not modes & {"chip", "fitted"} \
            and not spice and not getattr(args, "chips", None):
        raise InputError(f"--chip-seed picks the chip of --hardware chip (or one sampled from --hardware fitted's "
                         f"population fits); --hardware {args.hardware} has none: add chip or drop --chip-seed")
    chips = modes & {"chip", "fitted"} or getattr(args, "chips", None) or getattr(args, "chip_seed", None) is not None
    if getattr(args, "sizing", None) is not None:
        if target != "current":
            raise InputError(f"--sizing sizes the current target's mirrors, not the {target} target's; drop --sizing")
        if not (spice or chips or "population" in modes):
            raise InputError("--sizing sets the mirrors' mismatch, which only a chip (--hardware chip, fitted or "
                             "population, --chips) or --engine spice shows; add one or drop --sizing")
    if getattr(args, "scale", None) is not None and not spice and not chips:
        raise InputError("--scale applies to --engine spice and to a chip's engine model (--hardware chip or "
                         "fitted); drop --scale")


def _momentum(args: argparse.Namespace) -> float:
    """--momentum is SGD's: Adam has none, so giving it there would change nothing."""
    if args.momentum is not None and args.optimizer != "sgd":
        raise InputError(f"--momentum applies to --optimizer sgd, not {args.optimizer}; drop --momentum")
    return 0.9 if args.momentum is None else args.momentum


def check_spice_only(args: argparse.Namespace) -> None:
    """--workers, --dask and --timeout drive ngspice: without --engine spice they would change nothing."""
    if getattr(args, "engine", None) == "spice":
        return
    for dest, option in (("workers", "--workers"), ("dask", "--dask"), ("timeout", "--timeout")):
        if getattr(args, dest, None) is not None:
            raise InputError(f"{option} applies to --engine spice; add it or drop {option}")


def hardware_from_args(args: argparse.Namespace, spec: str | None = None, chip_seed: int | None = None):
    from sim.engine.prepare import HardwareOptions

    if spec is None:
        _check_used(args)

    return HardwareOptions.parse(spec if spec is not None else args.hardware, noise=args.noise,
                                 chip_seed=chip_seed if chip_seed is not None else args.chip_seed, fits=args.fits,
                                 pcm_time_s=args.pcm_time_s, drift_compensation=args.drift_compensation,
                                 wire_ohm=getattr(args, "wire_ohm", None),
                                 weight_bits=args.weight_bits, dac_bits=args.dac_bits, adc_bits=args.adc_bits,
                                 sizing=args.sizing, scale=getattr(args, "scale", None),
                                 seed=getattr(args, "seed", None))


def add_parsers(sub, common: argparse.ArgumentParser, targets: list[str]) -> None:
    p = sub.add_parser("train", parents=[common], help="train a model through the behavioral engine",
                       description="Train MODEL on DATA for the chosen hardware (noise-, quantization-, mismatch- "
                                   "or PCM-aware) and write TRAINED.onnx: the original graph with the trained (as "
                                   "programmed) weights.")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--data", required=True, help="an .npz with x_train, y_train, x_test, y_test, or digits, iris, mnist")
    p.add_argument("-o", "--output", required=True, help="trained model (.onnx)")
    p.add_argument("--metrics", help="write metrics here (.json); the training curves go beside it (.png)")
    p.add_argument("--target", choices=targets, default="opamp", help="hardware target (default: opamp)")
    hardware_options(p)
    p.add_argument("--eval-hardware", help="hardware for the final evaluation (default: the training hardware)")
    p.add_argument("--eval-chip-seed", type=int, help="chip seed for --eval-hardware chip")
    p.add_argument("--epochs", type=int, default=10, help="passes over the training set (default: 10)")
    p.add_argument("--batch-size", type=int, default=32, help="minibatch size (default: 32)")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate (default: 0.01)")
    p.add_argument("--lr-schedule", choices=SCHEDULES, default="constant", dest="lr_schedule",
                   help="constant, or cosine annealing to zero over the run (default: constant)")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd", help="(default: sgd with momentum)")
    p.add_argument("--momentum", type=float, help="SGD momentum (default: 0.9; --optimizer sgd only)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay (default: 0)")
    p.add_argument("--loss", choices=["ce", "mse"], default="ce", help="cross-entropy or mean squared error")
    p.add_argument("--seed", type=int, default=0, help="data order, noise draws and calibration (default: 0)")
    p.add_argument("--checkpoint", help="directory for a checkpoint every epoch")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint")
    p.add_argument("--pipelined", action="store_true",
                   help="each block updates as soon as its gradient is ready (seed 000's pipelined scheme)")
    p.add_argument("--val-split", type=float, default=0.0,
                   help="hold out this fraction of the training set as the test split (default: 0)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", parents=[common], help="accuracy of a model on a data set's test split",
                       description="Evaluate MODEL on DATA's test split on the chosen hardware, in the engine or "
                                   "in ngspice; with --chips N, on N chip instances (a yield figure).")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--data", required=True, help="an .npz with x_train, y_train, x_test, y_test, or digits, iris, mnist")
    p.add_argument("--target", choices=targets, default="opamp", help="hardware target (default: opamp)")
    hardware_options(p)
    p.add_argument("--chips", type=int, help="evaluate this many chip instances (seeds from --chip-seed, default 0)")
    p.add_argument("--engine", choices=["behavioral", "ideal", "spice"], default="behavioral",
                   help="behavioral (NumPy) or spice (the whole netlist in ngspice, one run per sample)")
    p.add_argument("--samples", type=int, help="test samples for --engine spice (default: all)")
    p.add_argument("--scale", type=float, help="signal scale per model unit for --engine spice")
    p.add_argument("--workers", type=int, help="ngspice worker processes (default: one per CPU)")
    p.add_argument("--timeout", type=float, help="seconds allowed per simulation (default: 300)")
    p.add_argument("--loss", choices=["ce", "mse"], default="ce", help="loss reported (default: ce)")
    p.add_argument("--seed", type=int, default=0, help="noise draws (default: 0)")
    p.add_argument("-o", "--output", help="also write the result as JSON here")
    p.set_defaults(func=cmd_evaluate)


def cmd_train(args: argparse.Namespace) -> int:
    from sim.train.commands import train_file
    from sim.train.loop import TrainConfig

    hw = hardware_from_args(args)
    eval_hw = None
    if args.eval_hardware:
        eval_hw = hardware_from_args(args, args.eval_hardware,
                                     args.eval_chip_seed if args.eval_chip_seed is not None else args.chip_seed)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule=args.lr_schedule,
                      optimizer=args.optimizer, momentum=_momentum(args), weight_decay=args.weight_decay,
                      loss=args.loss, seed=args.seed, pipelined=args.pipelined)
    doc = train_file(args.model, args.data, args.output, metrics=args.metrics, target=args.target, hardware=hw,
                     eval_hardware=eval_hw, config=cfg, checkpoint=args.checkpoint, resume=args.resume,
                     val_split=args.val_split, progress=not args.quiet)
    acc = doc["test_accuracy"]
    print(f"trained {args.epochs} epochs on {args.data} ({doc['hardware']['mode']}): test loss "
          f"{doc['test_loss'] + 0.0:.4f}" + ("" if acc is None else f", accuracy {acc:.4f}") +
          f"; {doc['samples_per_s']:.0f} samples/s")
    print(f"wrote {args.output}" + (f", {args.metrics} and {doc.get('plot')}" if args.metrics else ""))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sim.train.commands import evaluate_file

    check_spice_only(args)
    hw = hardware_from_args(args)
    doc = evaluate_file(args.model, args.data, target=args.target, hardware=hw, chips=args.chips, loss=args.loss,
                        seed=args.seed, engine=args.engine, samples=args.samples,
                        spice={"scale": args.scale, "workers": args.workers,
                               "timeout_s": SPICE_TIMEOUT_S if args.timeout is None else args.timeout},
                        output=args.output, progress=not args.quiet)
    keys = ("test_accuracy", "test_loss", "mean", "std", "p5", "worst", "samples", "chips")
    loss = doc.get("test_loss")
    if isinstance(loss, float) and not math.isfinite(loss):
        log.warning("%s: the model's outputs on the test set are not finite (loss %s; written as null)",
                    args.model, loss)
    print(json.dumps(json_safe({k: doc[k] for k in keys if k in doc})))
    return 0
