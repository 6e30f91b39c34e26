"""``kelvin measure`` and ``kelvin fit-chip``: characterize one chip as a lab would, then fit its model."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from circuits.errors import OutputError
from circuits.spice.current_cells import SIZINGS

log = logging.getLogger("kelvin")


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("measure", parents=[common], help="measure a current-mode chip instance in ngspice",
                       description="Compile MODEL to the current target, make chip instance --chip-seed and "
                                   "measure it as a lab would: program test weight configurations, drive inputs, "
                                   "read the outputs and soma currents (never the mismatch draws). Writes the "
                                   "measurements (.npz or CSV, the formats `kelvin fit-chip` reads) and, with "
                                   "--fits, the fitted chip model for `--hardware fitted --fits DIR`.")
    p.add_argument("model", help="ONNX model file (a dense MLP)")
    p.add_argument("--chip-seed", type=int, required=True, help="the chip instance to measure")
    p.add_argument("--sizing", choices=SIZINGS, default="compact",
                   help="mirror sizing of the chip (default: compact, 1x2 um units; minimum: 0.26x0.52 um, the process floor)")
    p.add_argument("--scale", type=float, help="amperes per model unit (default: the target's)")
    p.add_argument("--configs", type=int,
                   help="test weight configurations (default: enough that each synapse is programmed in about 20, "
                        "at least 48 per bank after the first, at most 192 and 1,280 operating points: digits "
                        "64-16-10 128; 2 dense ones for networks above 20,000 synapses)")
    p.add_argument("--probes", type=int,
                   help="operating points (DC simulations) per configuration (default: about as many as a row has "
                        "programmed synapses, at least 6: digits 10; 12 above 20,000 synapses)")
    p.add_argument("--density", type=float,
                   help="fraction of the widest bank's synapses programmed in each configuration, every bank "
                        "as many per row (default: about 10 per row; sparse configurations identify every synapse's own current, dense "
                        "ones mostly row and column gains)")
    p.add_argument("--seed", type=int, default=0, help="seed of the test configurations and inputs (default: 0)")
    p.add_argument("-o", "--output", required=True,
                   help="measurements: a .npz file, or any other path for a directory of CSV files "
                        "(kelvin.json, probes.csv, levels.csv; see sim/measure/csv_format.py)")
    p.add_argument("--fits", help="also fit the chip model into this directory")
    p.add_argument("--workers", type=int, help="ngspice worker processes (default: one per CPU)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per simulation (default: 600)")
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("fit-chip", parents=[common], help="fit a chip model to measurements (ngspice or silicon)",
                       description="Fit the per-chip behavioral model (per-row gains per sign and bit, per-column "
                                   "gains, then every synapse's own current where the data pin it, read-out "
                                   "ratios; the mirrors' nominal Early drift removed) to DATA, the .npz or "
                                   "CSV directory `kelvin measure` writes, or the same format filled from "
                                   "silicon (see sim/measure/data.py and csv_format.py). Writes FITS for "
                                   "`kelvin train/evaluate --target current --hardware fitted --fits FITS`.")
    p.add_argument("data", help="measurements (.npz, or a directory of CSV files)")
    p.add_argument("-o", "--outdir", required=True, help="fits directory to write")
    p.set_defaults(func=cmd_fit_chip)


def cmd_measure(args: argparse.Namespace) -> int:
    import time

    from circuits.files import check_output
    from compiler.pipeline import compile_model
    from sim.measure.data import is_csv_path
    from sim.measure.fit import fit_chip
    from sim.measure.lab import default_plan, measure_chip

    check_apart(args.output, args.fits)  # first: the checks below create missing parent directories
    csv = is_csv_path(args.output)
    check_output(args.output, directory=csv, kind="measurement" if csv else None)  # before minutes of ngspice
    if args.fits:
        check_output(args.fits, directory=True, kind="measured_chip")
    compiled = compile_model(args.model, "current")
    plan = default_plan(compiled, args.seed)
    given = {k: v for k, v in (("configs", args.configs), ("probes_per_config", args.probes),
                               ("density", args.density)) if v is not None}
    plan = dataclasses.replace(plan, **given)
    t0 = time.perf_counter()
    meas = measure_chip(compiled, args.chip_seed, sizing=args.sizing, scale=args.scale, plan=plan, workers=args.workers,
                        timeout_s=args.timeout, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    chip = fit_chip(meas) if args.fits else None  # fitted before anything is written: a kill during the
    meas.save(args.output)                         # fit leaves neither output new, not a mismatched pair
    doc = {"simulations": meas.probes, "seconds": round(seconds, 1), "output": args.output}
    if chip is not None:
        chip.save(args.fits)
        for line in chip.warnings():
            log.warning("%s: %s", args.fits, line)
        doc["fits"] = args.fits
        doc["identifiability"] = chip.report()["banks"]
    print(json.dumps(doc))
    return 0


def check_apart(output: str, fits: str | None) -> None:
    """Raise OutputError if the measurements (-o, a CSV directory or an .npz file) and the --fits directory
    are one path or one lies inside the other, compared resolved.

    Each output directory is replaced whole on its next run (`circuits.files.staged_dir`), so a fits
    directory inside a measurement directory was carried into the next measurement, and a measurement
    inside --fits made the fit refuse its directory only after minutes of ngspice."""
    if not fits:
        return
    out, fit = Path(output).resolve(), Path(fits).resolve()
    if out == fit or out.is_relative_to(fit) or fit.is_relative_to(out):
        raise OutputError(f"-o {output} and --fits {fits}: one lies inside the other; write the measurements "
                          "and the fits to separate paths")


def cmd_fit_chip(args: argparse.Namespace) -> int:
    from sim.measure.data import Measurements
    from sim.measure.fit import fit_chip

    chip = fit_chip(Measurements.load(args.data))
    chip.save(args.outdir)
    for line in chip.warnings():
        log.warning("%s: %s", args.outdir, line)
    print(json.dumps({"fits": args.outdir, **chip.report()}))
    return 0
