"""Range checks on numeric CLI options, by option name, before any work starts.

argparse checks types; these check meaning (a scale of 0 or inf, a negative seed or point
count), so each bad value is one line naming the option, never a fallback or a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

from circuits.errors import InputError
from circuits.files import derived_files, read_json_object

Check = Callable[[float], bool]

_POSITIVE_FINITE: tuple[Check, str] = (lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
_AT_LEAST_1: tuple[Check, str] = (lambda v: v >= 1, "an integer >= 1")
_AT_LEAST_0: tuple[Check, str] = (lambda v: v >= 0, "an integer >= 0")
_SEED: tuple[Check, str] = (lambda v: 0 <= v < 2**63, "an integer in [0, 2^63)")  # stored as int64 in npz

CHECKS: dict[str, tuple[str, tuple[Check, str]]] = {
    "scale": ("--scale", _POSITIVE_FINITE),
    "timeout": ("--timeout", _POSITIVE_FINITE),
    "max_rms": ("--max-rms", _POSITIVE_FINITE),
    "max_devices": ("--max-devices", _AT_LEAST_1),
    "max_jobs": ("--max-jobs", _AT_LEAST_1),
    "workers": ("--workers", _AT_LEAST_1),
    "instances": ("--instances", _AT_LEAST_1),
    "chips": ("--chips", _AT_LEAST_1),
    "batch_size": ("--batch-size", _AT_LEAST_1),
    "points": ("--points", (lambda v: v >= 2, "an integer >= 2")),
    "seed": ("--seed", _SEED),
    "chip_seed": ("--chip-seed", _SEED),
    "eval_chip_seed": ("--eval-chip-seed", _SEED),
    "row": ("--row", _AT_LEAST_0),
}
"""Parsed-argument name -> (option, (accepts, what it must be)). Absent or None values are not checked."""


def check_options(args: argparse.Namespace) -> None:
    """Raise InputError for the first numeric option outside its range."""
    for dest, (option, (ok, must)) in CHECKS.items():
        value = getattr(args, dest, None)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not ok(value):
            raise InputError(f"{option} must be {must}, got {value:g}")


# command -> (attributes naming files it reads, attributes naming files or directories it writes)
_FILES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "run": (("model", "input", "fits"), ("output",)),
    "evaluate": (("model", "data", "fits"), ("output",)),
    "train": (("model", "data", "fits", "checkpoint"), ("output", "metrics", "metrics.png")),
    "measure": (("model",), ("output", "fits")),
    "fit-chip": (("data",), ("outdir",)),
    "demo": (("model", "data"), ("outdir",)),
    "compile": (("model", "cost_model"), ("outdir",)),
    "validate": (("outdir", "network_input"), ("report",)),
}
_DIRECTORY_READS = {"validate": "outdir"}
"""Commands that read a whole compile directory: every file in it is an input, except the reports
derived from it (`circuits.files.record_derived`), which a re-run may replace."""


def _path(args: argparse.Namespace, attr: str) -> str | None:
    if attr == "metrics.png":  # train's curves go beside its metrics
        metrics = getattr(args, "metrics", None)
        return os.path.splitext(metrics)[0] + ".png" if metrics else None
    value = getattr(args, attr, None)
    return value if isinstance(value, str) and value else None


def check_paths(args: argparse.Namespace) -> None:
    """Raise InputError if an output would overwrite an input of the same command, or another output
    (``evaluate m.onnx -o m.onnx``, ``train --metrics data.npz``): each was exit 0 with the file gone.
    Inputs that are not files (``--data digits``) are left alone."""
    reads, writes = _FILES.get(getattr(args, "command", ""), ((), ()))
    seen: dict[str, str] = {}
    for attr in reads:
        p = _path(args, attr)
        if p is not None and os.path.exists(p):
            seen.setdefault(os.path.realpath(p), f"{attr.replace('_', '-')} {p}")
    directory = _path(args, _DIRECTORY_READS.get(getattr(args, "command", ""), ""))
    if directory is not None and os.path.isdir(directory):
        derived = derived_files(directory)
        for entry in os.scandir(directory):
            if entry.is_file() and entry.name not in derived and not _a_validate_report(entry.path):
                seen.setdefault(os.path.realpath(entry.path), f"{entry.path} (part of the compiled directory)")
    for attr in writes:
        p = _path(args, attr)
        if p is None:
            continue
        real = os.path.realpath(p)
        clash = seen.get(real)
        if clash is not None:
            name = {"output": "-o", "outdir": "-o"}.get(attr, f"--{attr.replace('_', '-')}")
            raise InputError(f"{name} {p}: would overwrite {clash}; choose another path")
        seen[real] = f"output {p}"


def _a_validate_report(path: str) -> bool:
    """A report an earlier validate wrote before reports were recorded as derived: replaceable."""
    doc = read_json_object(path) if path.endswith(".json") else None
    return doc is not None and {"passed", "blocks", "outdir"} <= set(doc)
