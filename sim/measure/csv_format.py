"""Chip measurements as plain CSV: the same record as the ``.npz`` (`sim.measure.data`), in files a
lab can write from its instrument logs and read by eye.

A measurement directory holds three files:

    kelvin.json   the ``meta`` JSON of the ``.npz`` (banks, inputs, outputs, w_unit, scale, …), plus
                  "shapes": {bank: [out, in]} (each bank's synapse array) and, optionally,
                  "configurations": K (default: one past the highest configuration a probe ran with;
                  then every probed configuration must program at least one synapse)
    probes.csv    one row per probe (one DC measurement); header
                      config, x:0 … x:{n_in−1}, y:0 … y:{n_out−1}, soma:<bank>:0 … soma:<bank>:{rows−1} …
                  config is the configuration index the probe ran with; x the driven inputs and y the
                  measured outputs (model units); soma:<bank>:i the current of soma i of the bank
                  (model units; every soma is needed)
    levels.csv    the programmed weights; header  bank, config, row, column, level
                  one row per programmed synapse (level −7…7, 3 bits and a sign; a synapse not listed
                  is 0); column is the input index, or ``bias`` for the row's bias synapse

`kelvin measure -o DIR` writes this layout (any ``-o`` not ending in ``.npz``) and `kelvin fit-chip DIR`
reads it. Any defect is one `InputError` naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from circuits.errors import InputError
from circuits.files import staged_dir, write_text

META, PROBES, LEVELS = "kelvin.json", "probes.csv", "levels.csv"
LEVEL_HEADER = ["bank", "config", "row", "column", "level"]


def write_dir(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write the arrays of a measurement (`Measurements.save`'s keys) as a CSV directory, whole or not at all."""
    banks = list(meta["banks"])
    n_in, n_out = arrays["x"].shape[1], arrays["y"].shape[1]
    header = ["config"] + [f"x:{i}" for i in range(n_in)] + [f"y:{i}" for i in range(n_out)]
    columns = [arrays["config"][:, None].astype(np.float64), arrays["x"], arrays["y"]]
    for b in banks:
        soma = arrays[f"soma/{b}"]
        header += [f"soma:{b}:{i}" for i in range(soma.shape[1])]
        columns.append(soma)
    table = np.hstack(columns)
    probes = io.StringIO()
    out = csv.writer(probes, lineterminator="\n")
    out.writerow(header)
    for row in table:
        out.writerow([str(int(row[0]))] + ["" if np.isnan(v) else repr(float(v)) for v in row[1:]])
    levels = io.StringIO()
    out = csv.writer(levels, lineterminator="\n")
    out.writerow(LEVEL_HEADER)
    shapes = {}
    for b in banks:
        lev, bias = arrays[f"levels/{b}"], arrays[f"bias_levels/{b}"]
        shapes[b] = list(lev.shape[1:])
        for k, r, j in zip(*np.nonzero(lev)):
            out.writerow([b, k, r, j, int(lev[k, r, j])])
        for k, r in zip(*np.nonzero(bias)):
            out.writerow([b, k, r, "bias", int(bias[k, r])])
    doc = {**meta, "kind": "measurement", "shapes": shapes, "configurations": int(len(arrays[f"levels/{banks[0]}"])) if banks else 0}
    with staged_dir(path, kind="measurement") as stage:
        write_text(stage / PROBES, probes.getvalue())
        write_text(stage / LEVELS, levels.getvalue())
        write_text(stage / META, json.dumps(doc, indent=1) + "\n")
    return Path(path)


def _rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # a spreadsheet's byte-order mark is no column
            lines = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc})") from exc
    body = [(n, row) for n, row in enumerate(lines[1:], start=2) if any(cell.strip() for cell in row)]
    if not lines:
        raise InputError(f"{path}: empty; the first line must be the header")
    header = [h.strip() for h in lines[0]]
    if len(header) == 1 and (sep := next((c for c in ";\t|" if c in header[0]), None)):
        raise InputError(f"{path}: the header is one cell split by {sep!r}; the files are comma-separated")
    if dup := next((h for i, h in enumerate(header) if h in header[:i]), None):
        raise InputError(f"{path}: column {dup!r} appears twice in the header")
    for n, row in body:
        if len(row) != len(header):
            raise InputError(f"{path}, line {n}: {len(row)} cells, the header has {len(header)}")
    return header, body


def _number(path: Path, n: int, col: str, cell: str) -> float:
    try:
        if "_" in cell or not cell.isascii():  # Python's float reads 1_0 as 10 and other scripts' digits
            raise ValueError(cell)
        return float(cell)
    except ValueError:
        raise InputError(f"{path}, line {n}, column {col!r}: {cell!r} is not a number") from None


def _integer(path: Path, n: int, col: str, cell: str) -> int:
    try:
        if not re.fullmatch(r"[+-]?[0-9]+", cell.strip()):  # int() also takes 1_0 and other scripts' digits
            raise ValueError(cell)
        value = int(cell.strip())
    except ValueError:
        raise InputError(f"{path}, line {n}, column {col!r}: {cell!r} is not an integer") from None
    if abs(value) >= 2 ** 31:  # indices and levels are small; this also keeps NumPy's int64 from overflowing
        raise InputError(f"{path}, line {n}, column {col!r}: {value} is out of range")
    return value


def _indexed(path: Path, header: list[str], prefix: str) -> list[int]:
    """Positions of columns ``prefix0 … prefix{n−1}`` in order; they must run from 0 without a gap."""
    found = {}
    for pos, name in enumerate(header):
        if name.startswith(prefix):
            tail = name[len(prefix):]
            if not (tail.isascii() and tail.isdigit()):
                raise InputError(f"{path}: column {name!r}: expected {prefix}<index>")
            found[int(tail)] = pos
    if sorted(found) != list(range(len(found))):
        raise InputError(f"{path}: columns {prefix}0 … must run from 0 without a gap (got {sorted(found)})")
    return [found[i] for i in range(len(found))]


MAX_SYNAPSE_LEVELS = 10 ** 8
"""Most level cells (configurations × synapses) a measurement may declare: 0.8 GB as int64."""


def _configurations(root: Path, meta: dict, config: np.ndarray, lines: list[int], entries: list,
                    shapes: dict[str, tuple[int, int]]) -> int:
    """K, the number of configurations: ``configurations`` in kelvin.json, else one past the highest a
    probe ran with. Without the declaration every probed configuration must program a synapse: a probe
    numbered one past the last (a 1-based count) would otherwise run an all-zero configuration."""
    count = meta.get("configurations")
    probes, levels = root / PROBES, root / LEVELS
    if count is None:
        count = int(config.max()) + 1
        programmed = {e[2] for e in entries}
        for n, k in zip(lines, config):
            if k >= 0 and int(k) not in programmed:  # a negative one is judged below
                raise InputError(f"{probes}, line {n}: configuration {k} programs no synapse in {LEVELS}; number "
                                 f"configurations from 0, or declare \"configurations\" in {META} if an all-zero "
                                 "one was measured")
        for n, _, k, *_ in entries:
            if k >= count:
                raise InputError(f"{levels}, line {n}: configuration {k} was never probed (the highest in {PROBES} is "
                                 f"{count - 1}); declare \"configurations\" in {META} to keep it")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise InputError(f"{root / META}: 'configurations' must be a positive integer, got {count!r}")
    if count * sum(o * i + o for o, i in shapes.values()) > MAX_SYNAPSE_LEVELS:
        raise InputError(f"{root / META}: {count} configurations of these banks are more than a measurement holds "
                         f"({MAX_SYNAPSE_LEVELS:.0e} programmed levels at most)")
    for n, k in zip(lines, config):
        if not 0 <= k < count:
            raise InputError(f"{probes}, line {n}: configuration {k} is outside 0..{count - 1}")
    return count


def read_dir(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The arrays of a CSV measurement directory under the ``.npz`` keys (``meta`` as its JSON text),
    for `Measurements.load` to check like a ``.npz``."""
    root = Path(path)
    for name in (META, PROBES, LEVELS):
        if not (root / name).is_file():
            raise InputError(f"{root}: missing {name} (a CSV measurement directory holds {META}, {PROBES} "
                             f"and {LEVELS}; see sim/measure/csv_format.py)")
    try:
        meta = json.loads((root / META).read_text(encoding="utf-8-sig"))
        if not (isinstance(meta["banks"], list) and all(isinstance(b, str) and b for b in meta["banks"])):
            raise TypeError(f"'banks' must list the bank names in order, got {meta['banks']!r}")
        banks = list(meta["banks"])
        shapes = {b: tuple(meta["shapes"][b]) for b in banks}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{root / META}: not the expected JSON; it needs 'banks' and 'shapes' ({exc})") from exc
    if len(set(banks)) != len(banks):
        raise InputError(f"{root / META}: 'banks' must name each bank once, got {banks}")
    for b, shape in shapes.items():
        if len(shape) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape):
            raise InputError(f"{root / META}: 'shapes' of bank {b!r} must be [out, in] >= 1, got {list(shape)}")

    p = root / PROBES
    header, body = _rows(p)
    if not header or header[0] != "config":
        raise InputError(f"{p}: the first column must be 'config'")
    if not body:
        raise InputError(f"{p}: no probes (one row per DC measurement after the header)")
    config = np.array([_integer(p, n, "config", row[0]) for n, row in body], np.int64)
    body_lines = [n for n, _ in body]

    def block(prefix: str) -> np.ndarray:
        cols = _indexed(p, header, prefix)
        return np.array([[_number(p, n, header[c], row[c]) for c in cols] for n, row in body],
                        np.float64).reshape(len(body), len(cols))

    for prefix, what in (("x:", "driven inputs"), ("y:", "measured outputs")):
        if not any(h.startswith(prefix) for h in header):
            raise InputError(f"{p}: no {prefix}<i> columns (the {what})")
    prefixes = ("x:", "y:") + tuple(f"soma:{b}:" for b in banks)
    if unknown := [h for h in header[1:] if not h.startswith(prefixes)]:
        raise InputError(f"{p}: unknown column {unknown[0]!r} (expected config, x:i, y:i, soma:<bank>:i)")
    data: dict[str, Any] = {"config": config, "x": block("x:"), "y": block("y:")}
    for b in banks:
        prefix = f"soma:{b}:"
        if not any(h.startswith(prefix) for h in header):
            raise InputError(f"{p}: no {prefix}<i> columns for bank {b!r}; give each soma's current")
        data[f"soma/{b}"] = block(prefix)

    q = root / LEVELS
    header, body = _rows(q)
    if header != LEVEL_HEADER:
        raise InputError(f"{q}: the header must be {','.join(LEVEL_HEADER)}")
    entries, seen = [], {}
    for n, (bank, k, r, j, level) in body:
        bank = bank.strip()
        if bank not in shapes:
            raise InputError(f"{q}, line {n}: bank {bank!r} is not among {META}'s banks {banks}")
        k, r, v = _integer(q, n, "config", k), _integer(q, n, "row", r), _integer(q, n, "level", level)
        bias = j.strip() == "bias"
        j = -1 if bias else _integer(q, n, "column", j)
        out, inp = shapes[bank]
        if not (0 <= r < out and (bias or 0 <= j < inp) and k >= 0):  # a literal -1 is no synonym for bias
            raise InputError(f"{q}, line {n}: config {k}, row {r}, column {'bias' if bias else j} is outside "
                             f"bank {bank!r} ({out} rows x {inp} columns, or 'bias')")
        if (first := seen.setdefault((bank, k, r, j), n)) != n:
            raise InputError(f"{q}, line {n}: bank {bank!r} config {k} row {r} column {'bias' if bias else j} "
                             f"is listed again (first on line {first})")
        entries.append((n, bank, k, r, j, v))
    count = _configurations(root, meta, config, body_lines, entries, shapes)
    for b, (out, inp) in shapes.items():
        data[f"levels/{b}"] = np.zeros((count, out, inp), np.int64)
        data[f"bias_levels/{b}"] = np.zeros((count, out), np.int64)
    for n, bank, k, r, j, v in entries:
        if k >= count:
            raise InputError(f"{q}, line {n}: config {k} beyond the {count} configurations {META} declares")
        if j < 0:
            data[f"bias_levels/{bank}"][k, r] = v
        else:
            data[f"levels/{bank}"][k, r, j] = v
    data["meta"] = json.dumps({k: v for k, v in meta.items() if k not in ("kind", "shapes", "configurations")})
    return data
