"""Range checks on numeric CLI options, by option name, before any work starts.

argparse checks types; these check meaning (a scale of 0 or inf, a negative seed or point
count), so each bad value is one line naming the option, never a fallback or a traceback.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from circuits.errors import InputError

Check = Callable[[float], bool]

_POSITIVE_FINITE: tuple[Check, str] = (lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
_AT_LEAST_1: tuple[Check, str] = (lambda v: v >= 1, "an integer >= 1")
_AT_LEAST_0: tuple[Check, str] = (lambda v: v >= 0, "an integer >= 0")

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
    "seed": ("--seed", _AT_LEAST_0),
    "chip_seed": ("--chip-seed", _AT_LEAST_0),
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
