"""Chip measurements as a lab records them: programmed configuration, driven input, measured currents.

This is the one format `kelvin measure` writes and `kelvin fit-chip` reads, whether the numbers come
from ngspice or from silicon. An ``.npz`` with, for P probes (one DC measurement each) over K weight
configurations of a network whose synapse banks are named ``<bank>`` (the compiled graph's node
names, e.g. ``fc1``):

    config              int   [P]           which configuration probe p ran with
    x                   float [P, n_in]     the network input driven (model units: amperes / scale; ≥ 0,
                                            the input somas take only positive currents)
    y                   float [P, n_out]    the measured network outputs (model units)
    levels/<bank>       int   [K, out, in]  each synapse's programmed level k in -7..7 (3 bits + sign)
    bias_levels/<bank>  int   [K, out]      each row's bias-synapse level
    soma/<bank>         float [P, rows]     the current of each of the bank's somas (model units):
                                            rows = out for a rectified bank; 2·out for a signed bank
                                            (positive somas, then their negated twins); every soma is
                                            needed: each feeds the next bank's fit or the read-out's
    meta                str   (JSON)        {"banks": [in order], "inputs": {bank: "x" | other bank},
                                             "outputs": [the network's output name: the read-out],
                                             "w_unit": level step in model units, "scale": A per unit,
                                             optional "sizing": the Kelvin sizing of a simulated chip
                                             (default, compact, minimum), "source": free text,
                                             optional "early_slopes": [kn, kp] (n·U_T/V_A of the NMOS
                                             and PMOS mirrors: the drift the fit removes; default from
                                             a Kelvin "sizing", else none), optional "synapse_sd":
                                             [3] the prior spread of one synapse's bit-1, 2, 4 copies}

A lab with silicon fills the same arrays: program ``levels``, drive ``x``, read ``y`` (and the somas
its test multiplexer exposes). Nothing here refers to transistors or mismatch draws. The same record
also reads and writes as a directory of CSV files (`sim.measure.csv_format`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from circuits.errors import InputError
from circuits.files import read_npz, write_npz
from circuits.spice.current_cells import MAX_LEVEL, SIZINGS
from sim.measure import csv_format


def is_csv_path(path: str | os.PathLike[str]) -> bool:
    """Whether a measurement written to ``path`` is a CSV directory: any name not ending in ``.npz``."""
    return Path(path).suffix.lower() != ".npz"


LARGEST = 1e15
"""Largest |reading| accepted, in model units (a soma current of 10 nA per unit is 1 A at 1e8):
beyond it a record is corrupt, and squares in the fit would overflow."""


def _reals(p: Path, data: dict, key: str) -> np.ndarray:
    a = np.asarray(data[key])
    if a.dtype.kind not in "iuf":
        raise InputError(f"{p}: array {key!r} has dtype {a.dtype}; measurements are numbers")
    a = a.astype(np.float64)
    big = np.isfinite(a) & (np.abs(a) > LARGEST)  # NaN and Inf are judged below
    if big.any():
        index = [int(i) for i in np.argwhere(big)[0]]
        raise InputError(f"{p}: array {key!r} holds {a[tuple(index)]:g} at index {index}, beyond "
                         f"±{LARGEST:g} model units; no chip reads that")
    return a


def _integers(p: Path, data: dict, key: str) -> np.ndarray:
    a = np.asarray(data[key])
    if a.dtype.kind == "f" and np.isfinite(a).all() and np.array_equal(a, np.round(a)):
        a = a.astype(np.int64)
    if a.dtype.kind not in "biu":
        raise InputError(f"{p}: array {key!r} must hold integer levels, got {a.dtype}"
                         + (" with fractions" if a.dtype.kind == "f" else ""))
    return a.astype(np.int64)


def _check_chain(p: Path, banks: tuple[str, ...], inputs: dict[str, str], x: np.ndarray,
                 levels: dict[str, np.ndarray], soma: dict[str, np.ndarray]) -> None:
    """Each bank's soma count is its out (rectified) or 2·out (signed) rows, and its synapse columns
    match what feeds it: the network input's columns, or the feeding bank's outputs (whose soma
    lines, one or two per output, are then this bank's input lines)."""
    for b in banks:
        out, n_in = levels[b].shape[1:]
        rows = soma[b].shape[1]
        if rows not in (out, 2 * out):
            raise InputError(f"{p}: bank {b!r}: soma/{b} has {rows} columns; a bank with {out} outputs has {out} "
                             f"somas (rectified) or {2 * out} (signed: positive, then negated)")
        src = inputs[b]
        fed = x.shape[1] if src == "x" else levels[src].shape[1]
        if n_in != fed:
            what = "the network input x" if src == "x" else f"bank {src!r}"
            raise InputError(f"{p}: bank {b!r} has {n_in} synapse columns, but {what} feeding it has {fed} "
                             f"{'columns' if src == 'x' else 'outputs'}")


@dataclass(frozen=True)
class Measurements:
    """P probes over K configurations (module docstring for every field)."""

    config: np.ndarray
    x: np.ndarray
    y: np.ndarray
    levels: dict[str, np.ndarray]
    bias_levels: dict[str, np.ndarray]
    soma: dict[str, np.ndarray]
    banks: tuple[str, ...]
    inputs: dict[str, str]
    w_unit: float
    scale: float
    meta: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # the file or directory it was read from, for messages about its data

    @property
    def probes(self) -> int:
        return int(len(self.config))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the ``.npz`` atomically, or the CSV directory (`sim.measure.csv_format`) when ``path``
        does not end in ``.npz``."""
        arrays: dict[str, np.ndarray] = {"config": self.config, "x": self.x, "y": self.y}
        for b in self.banks:
            arrays[f"levels/{b}"] = self.levels[b].astype(np.int8)
            arrays[f"bias_levels/{b}"] = self.bias_levels[b].astype(np.int8)
            arrays[f"soma/{b}"] = self.soma[b]
        meta = {**self.meta, "banks": list(self.banks), "inputs": self.inputs, "w_unit": self.w_unit,
                "scale": self.scale}
        if is_csv_path(path):
            return csv_format.write_dir(path, arrays, meta)
        arrays["meta"] = np.array(json.dumps(meta))
        return write_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Measurements:
        """Read and check a measurement ``.npz`` or CSV directory; any defect is one InputError naming
        the file and array (and for CSV the line and column)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"Measurements.load: a path to a .npz or CSV directory, got {path!r}")
        p = Path(path)
        if p.is_dir():
            data = csv_format.read_dir(p)
        else:
            try:
                data = read_npz(p)
            except (OSError, ValueError) as exc:
                raise InputError(f"{p}: not a readable measurement .npz or CSV directory ({exc})") from exc
        for key in ("config", "x", "y", "meta"):
            if key not in data:
                raise InputError(f"{p}: missing array {key!r} (see `kelvin fit-chip --help` for the format)")
        try:
            meta = json.loads(str(data["meta"]))
            if not (isinstance(meta["banks"], list) and all(isinstance(b, str) and b for b in meta["banks"])):
                raise TypeError(f"'banks' must list the bank names in order, got {meta['banks']!r}")
            banks = tuple(meta["banks"])
            inputs = {str(k): str(v) for k, v in meta["inputs"].items()}
            w_unit, scale = float(meta["w_unit"]), float(meta["scale"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{p}: array 'meta' is not the expected JSON object with banks, inputs, w_unit "
                             f"and scale ({type(exc).__name__}: {exc})") from exc
        if len(set(banks)) != len(banks) or not banks:
            raise InputError(f"{p}: meta 'banks' must name each bank once, got {list(banks)}")
        config = np.asarray(data["config"])
        x, y = _reals(p, data, "x"), _reals(p, data, "y")
        n = len(config)
        if config.ndim != 1 or x.ndim != 2 or y.ndim != 2 or len(x) != n or len(y) != n or n == 0 \
                or 0 in x.shape[1:] + y.shape[1:]:
            raise InputError(f"{p}: config [P], x [P, n_in] and y [P, n_out] must agree on P >= 1 probes, "
                             f"with n_in, n_out >= 1 (got {config.shape}, {x.shape}, {y.shape})")
        if not (np.isfinite(w_unit) and w_unit > 0 and np.isfinite(scale) and scale > 0):
            raise InputError(f"{p}: meta 'w_unit' and 'scale' must be positive numbers, got {w_unit} and {scale}")
        if config.dtype.kind not in "iu" and not (config.dtype.kind == "f" and np.isfinite(config).all()
                                                  and np.array_equal(config, np.round(config))):
            raise InputError(f"{p}: array 'config' must hold configuration indices (integers), got {config.dtype}")
        levels, bias, soma = {}, {}, {}
        for b in banks:
            for key in (f"levels/{b}", f"bias_levels/{b}", f"soma/{b}"):
                if key not in data:
                    raise InputError(f"{p}: missing array {key!r} for bank {b!r}")
            levels[b] = _integers(p, data, f"levels/{b}")
            bias[b] = _integers(p, data, f"bias_levels/{b}")
            soma[b] = _reals(p, data, f"soma/{b}")
            if not np.isfinite(soma[b]).all():
                index = [int(i) for i in np.argwhere(~np.isfinite(soma[b]))[0]]
                raise InputError(f"{p}: array 'soma/{b}' has no finite reading at [probe, soma] {index}; the fit "
                                 "needs every soma's current (each feeds the next bank or the read-out)")
            k = len(levels[b])
            if levels[b].ndim != 3 or bias[b].shape != (k, levels[b].shape[1]) or soma[b].ndim != 2 \
                    or len(soma[b]) != n:
                raise InputError(f"{p}: bank {b!r}: levels [K, out, in], bias_levels [K, out] and soma "
                                 f"[P, rows] disagree ({levels[b].shape}, {bias[b].shape}, {soma[b].shape})")
            if np.abs(levels[b]).max(initial=0) > MAX_LEVEL or np.abs(bias[b]).max(initial=0) > MAX_LEVEL:
                raise InputError(f"{p}: bank {b!r}: levels beyond +-{MAX_LEVEL} (3 bits and a sign)")
            if config.min() < 0 or config.max() >= k:
                raise InputError(f"{p}: config values must index the {k} configurations of bank {b!r}")
        if unknown := sorted(set(inputs) - set(banks)):
            raise InputError(f"{p}: meta 'inputs' names {unknown[0]!r}, which is not among the banks {list(banks)}")
        for i, b in enumerate(banks):  # the banks in order, each fed by the input or an earlier bank
            if inputs.get(b) not in ("x", *banks[:i]):
                raise InputError(f"{p}: meta 'inputs' must feed bank {b!r} from 'x' or a bank listed before it "
                                 f"(got {inputs.get(b)!r}; banks in order: {list(banks)})")
        for name, arr in (("x", x), ("y", y)):
            if not np.isfinite(arr).all():
                raise InputError(f"{p}: array {name!r} holds non-finite values")
        if (x < 0).any():
            index = [int(i) for i in np.argwhere(x < 0)[0]]
            raise InputError(f"{p}: array 'x' holds {x[tuple(index)]:g} at [probe, input] {index}; the chip's input "
                             "somas take only positive currents (drive 0 for none)")
        _check_chain(p, banks, inputs, x, levels, soma)
        sizing = meta.get("sizing")
        if sizing is not None and sizing not in SIZINGS:
            raise InputError(f"{p}: meta 'sizing' {sizing!r} is not a Kelvin sizing ({', '.join(SIZINGS)}); omit it "
                             "for another chip and give 'early_slopes' and 'synapse_sd' instead")
        outputs = meta.get("outputs", [])
        if not isinstance(outputs, list) or not all(isinstance(o, str) and o for o in outputs):
            raise InputError(f"{p}: meta 'outputs' must list the network's output names, got {outputs!r}")
        return cls(config.astype(np.int64), x, y, levels, bias, soma, banks, inputs, w_unit, scale, meta, str(p))
