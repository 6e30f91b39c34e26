"""Fit a per-chip behavioral model to measurements (`sim.measure.data.Measurements`).

Model (what the lab can identify from programmed levels, inputs and soma/output currents). A bank's
row R (a soma; signed banks have a positive and a negated soma per output) computes

    I_R = max(0, u · [ Σ_j sgn(ℓ_Rj) · c[j, s] · Σ_{b ∈ bits|ℓ_Rj|} b · A[R, s, b]
                      + sgn(ℓ_R) · c_ref[s] · Σ_{b ∈ bits|ℓ_R|} b · A[R, s, b] ])
    s = 0 for ℓ > 0 (PMOS copies), 1 for ℓ < 0 (NMOS copies),  u = the level step (w_unit)

with x_j the bank's input column (the network input, or the feeding bank's soma currents) and ℓ the
level realized at that position (a negated soma sees −k). A[R, s, b] is the row's gain per sign and
bit (its soma's mirror errors times the mean copy ratio of that bit), c[j, s] the column's (its input
soma's or pre soma's line errors), c_ref the bias reference's. Per-synapse copy errors are averaged
into A and c: in the Pelgrom draws of the compact sizing they are about a third of the variance,
and they average out in a row's sum (`sim.measure` docs). Read-outs: y_o = m⁺_o·I_pos − m⁻_o·I_neg.

Estimation: maximum a posteriori with a weak prior around nominal (every factor 1 ± 0.3), so every
parameter is defined; the posterior standard deviation against the prior's says how well the data
identify it (identifiability 1: the data alone; 0: the prior alone). Fitted with SciPy's trust-region
least squares; measurement error model 1 % of the current plus 0.002 units.

The fitted tables are `sim.engine.chip_map.ChipTable`s, the same form the draw-based chip model
gives, so training for a measured chip and for the oracle chip share one code path.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from circuits.errors import InputError
from circuits.files import staged_dir, write_json, write_npz
from sim.engine.chip_map import (
    BITS,
    ChipTable,
    level_table,
    realized_bias,
    realized_levels,
)
from sim.measure.data import Measurements

log = logging.getLogger(__name__)

PRIOR_SD = 0.3
REL_ERR, ABS_ERR = 0.01, 0.002
ACTIVE_UNITS = 0.02  # a soma carrying less is taken as rectified (off) and gives no equation
FILE = "measured_chip.npz"


@dataclass(frozen=True)
class BankFit:
    """One bank's fitted factors, their posterior standard deviations and the fit's residuals."""

    name: str
    out: int
    inputs: int
    row_sides: int
    col_sides: int
    a: np.ndarray        # [R, 2, 3]
    c: np.ndarray        # [C, 2]
    c_ref: np.ndarray    # [2]
    a_sd: np.ndarray
    c_sd: np.ndarray
    equations: int
    rms_rel: float       # RMS relative residual of the active somas

    def table(self) -> ChipTable:
        """The bank as T[R, C, sign, level] and T_bias[R, sign, level] (see `sim.engine.chip_map`)."""
        per_level = level_table(self.a)  # [R, 2, 8]
        t = self.c[None, :, :, None] * per_level[:, None, :, :]
        tb = self.c_ref[None, :, None] * per_level
        return ChipTable(t, tb, self.out, self.inputs)

    def identifiability(self) -> dict[str, float]:
        ident_a = 1 - self.a_sd / PRIOR_SD
        ident_c = 1 - self.c_sd / PRIOR_SD
        return {"row_factors": int(self.a.size), "row_identified_fraction": float(np.mean(ident_a > 0.5)),
                "row_median_sd": float(np.median(self.a_sd)),
                "column_factors": int(self.c.size), "column_identified_fraction": float(np.mean(ident_c > 0.5)),
                "column_median_sd": float(np.median(self.c_sd)), "equations": self.equations,
                "rms_relative_residual": self.rms_rel}


@dataclass(frozen=True)
class MeasuredChip:
    """A chip's fitted behavioral model: one table per bank, one read-out matrix per graph output."""

    banks: dict[str, BankFit]
    readouts: dict[str, np.ndarray]  # output name -> [n_out, rows of its bank]
    readout_sd: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def tables(self) -> dict[str, ChipTable]:
        return {name: b.table() for name, b in self.banks.items()}

    def report(self) -> dict[str, Any]:
        return {"banks": {n: b.identifiability() for n, b in self.banks.items()},
                "readouts": {o: {"factors": int(np.count_nonzero(m)),
                                 "median_sd": float(np.median(self.readout_sd[o][m != 0])) if np.any(m) else 0.0}
                             for o, m in self.readouts.items()},
                **self.meta}

    def save(self, outdir: str | os.PathLike[str]) -> Path:
        """FITS/measured_chip.npz (factors, tables, read-outs) and FITS/kelvin.json (the report), atomically."""
        arrays: dict[str, np.ndarray] = {}
        for n, b in self.banks.items():
            for f in ("a", "c", "c_ref", "a_sd", "c_sd"):
                arrays[f"{n}/{f}"] = getattr(b, f)
            arrays[f"{n}/shape"] = np.array([b.out, b.inputs, b.row_sides, b.col_sides, b.equations])
            arrays[f"{n}/rms_rel"] = np.array(b.rms_rel)
        for o, m in self.readouts.items():
            arrays[f"readout/{o}"], arrays[f"readout_sd/{o}"] = m, self.readout_sd[o]
        with staged_dir(outdir, frozenset({FILE, "kelvin.json"})) as stage:
            write_npz(stage / FILE, **arrays)
            write_json(stage / "kelvin.json", {"kind": "measured_chip", "banks": list(self.banks),
                                              "outputs": list(self.readouts), "report": self.report()})
        return Path(outdir)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> MeasuredChip:
        import json
        d = Path(directory)
        try:
            doc = json.loads((d / "kelvin.json").read_text())
            with np.load(d / FILE, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
            banks = {}
            for n in doc["banks"]:
                out, n_in, rs, cs, eq = (int(v) for v in data[f"{n}/shape"])
                banks[n] = BankFit(n, out, n_in, rs, cs, data[f"{n}/a"], data[f"{n}/c"], data[f"{n}/c_ref"],
                                   data[f"{n}/a_sd"], data[f"{n}/c_sd"], eq, float(data[f"{n}/rms_rel"]))
            readouts = {o: data[f"readout/{o}"] for o in doc["outputs"]}
            sd = {o: data[f"readout_sd/{o}"] for o in doc["outputs"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"--fits {d}: not a measured-chip directory written by `kelvin fit-chip` ({exc})") from exc
        return cls(banks, readouts, sd, {k: v for k, v in doc.get("report", {}).items() if k not in ("banks", "readouts")})


def is_measured_chip(directory: str | os.PathLike[str]) -> bool:
    return (Path(directory) / FILE).is_file()


def _bit_index(mag: np.ndarray) -> np.ndarray:
    """Index into BITS of a single-bit magnitude (0 for 0; the value is masked by the level anyway)."""
    return np.where(mag >= 4, 2, np.where(mag >= 2, 1, 0))


@dataclass(frozen=True)
class _Design:
    """Per probe and position: the realized level's sign, magnitude, sign index and bit index."""

    sgn: np.ndarray
    mag: np.ndarray
    sidx: np.ndarray
    bidx: np.ndarray
    bsgn: np.ndarray
    bmag: np.ndarray
    bsidx: np.ndarray
    bbidx: np.ndarray

    @classmethod
    def of(cls, name: str, levels: np.ndarray, bias: np.ndarray, config: np.ndarray, row_sides: int,
           col_sides: int) -> _Design:
        lev, blev = realized_levels(levels, row_sides, col_sides), realized_bias(bias, row_sides)
        if not np.all(np.isin(np.abs(lev), (0, *BITS))) or not np.all(np.isin(np.abs(blev), (0, *BITS))):
            raise InputError(f"fit-chip: bank {name!r}: this fit needs single-bit test levels (0, ±1, ±2, ±4); "
                             "program one bit per synapse in each configuration")
        return cls(np.sign(lev).astype(np.float64)[config], np.abs(lev).astype(np.float64)[config],
                   (lev < 0).astype(np.int64)[config], _bit_index(np.abs(lev))[config],
                   np.sign(blev).astype(np.float64)[config], np.abs(blev).astype(np.float64)[config],
                   (blev < 0).astype(np.int64)[config], _bit_index(np.abs(blev))[config])

    def preactivation(self, a: np.ndarray, c: np.ndarray, c_ref: np.ndarray, x_in: np.ndarray,
                      w_unit: float) -> np.ndarray:
        """[P, R]: each soma's input current (model units) before its rectification."""
        rows, cols = a.shape[0], c.shape[0]
        g = self.sgn * self.mag * a[np.arange(rows)[None, :, None], self.sidx, self.bidx] * \
            c[np.arange(cols)[None, None, :], self.sidx]
        pre = np.einsum("prc,pc->pr", g, x_in)
        pre += self.bsgn * self.bmag * a[np.arange(rows)[None, :], self.bsidx, self.bbidx] * c_ref[self.bsidx]
        return w_unit * pre


def fit_bank(name: str, levels: np.ndarray, bias: np.ndarray, config: np.ndarray, x_in: np.ndarray,
             soma: np.ndarray, row_sides: int, w_unit: float) -> BankFit:
    """MAP fit of one bank's factors from its somas' currents (single-bit levels, module docstring)."""
    k, out, n_in = levels.shape
    col_sides = x_in.shape[1] // n_in
    design = _Design.of(name, levels, bias, config, row_sides, col_sides)
    rows, cols = out * row_sides, n_in * col_sides
    active = np.isfinite(soma) & (np.nan_to_num(soma) > ACTIVE_UNITS)
    pi, ri = np.nonzero(active)
    target = soma[pi, ri]
    sigma = REL_ERR * np.abs(target) + ABS_ERR
    n_a, n_c = rows * 6, cols * 2

    def unpack(theta):
        return theta[:n_a].reshape(rows, 2, 3), theta[n_a:n_a + n_c].reshape(cols, 2), theta[n_a + n_c:]

    def residuals(theta):
        pred = design.preactivation(*unpack(theta), x_in, w_unit)[pi, ri]
        return np.concatenate([(pred - target) / sigma, (theta - 1.0) / PRIOR_SD])

    theta0 = np.ones(n_a + n_c + 2)
    sol = least_squares(residuals, theta0, method="trf", x_scale=0.1)
    try:
        sd = np.sqrt(np.clip(np.diag(np.linalg.inv(sol.jac.T @ sol.jac)), 0, None))
    except np.linalg.LinAlgError:
        sd = np.full(len(theta0), PRIOR_SD)
    a, c, cr = unpack(sol.x)
    pred = design.preactivation(a, c, cr, x_in, w_unit)[pi, ri]
    rms = float(np.sqrt(np.mean(((pred - target) / np.abs(target)) ** 2))) if len(pi) else float("nan")
    return BankFit(name, out, n_in, row_sides, col_sides, a, c, cr, sd[:n_a].reshape(rows, 2, 3),
                   sd[n_a:n_a + n_c].reshape(cols, 2), int(len(pi)), rms)


def preactivations(meas: Measurements, chip: MeasuredChip) -> dict[str, np.ndarray]:
    """Per bank [P, rows]: the fitted model's soma input currents for every probe (for transfer plots)."""
    out = {}
    for name, fit in chip.banks.items():
        src = meas.inputs[name]
        x_in = meas.x if src == "x" else meas.soma[src]
        design = _Design.of(name, meas.levels[name], meas.bias_levels[name], meas.config, fit.row_sides,
                            fit.col_sides)
        out[name] = design.preactivation(fit.a, fit.c, fit.c_ref, x_in, meas.w_unit)
    return out


def fit_chip(meas: Measurements) -> MeasuredChip:
    """Every bank's factors and every output's read-out pair, from one measurement file."""
    banks: dict[str, BankFit] = {}
    for name in meas.banks:
        src = meas.inputs[name]
        x_in = meas.x if src == "x" else meas.soma[src]
        if not np.isfinite(x_in).all():
            raise InputError(f"fit-chip: bank {name!r} is fed by bank {src!r}, whose somas were not all measured "
                             "(NaN); its inputs are unknown")
        out = meas.levels[name].shape[1]
        row_sides = meas.soma[name].shape[1] // out
        if row_sides not in (1, 2) or meas.soma[name].shape[1] != row_sides * out:
            raise InputError(f"fit-chip: bank {name!r}: soma [P, {meas.soma[name].shape[1]}] is neither out "
                             f"({out}) nor 2·out rows")
        if x_in.shape[1] % meas.levels[name].shape[2]:
            raise InputError(f"fit-chip: bank {name!r}: its input has {x_in.shape[1]} columns for "
                             f"{meas.levels[name].shape[2]} synapse columns")
        banks[name] = fit_bank(name, meas.levels[name], meas.bias_levels[name], meas.config, x_in,
                               meas.soma[name], row_sides, meas.w_unit)
        log.info("fit-chip: bank %s: %d equations, RMS relative residual %.3f", name, banks[name].equations,
                 banks[name].rms_rel)
    readouts, sds = _fit_readouts(meas, banks)
    return MeasuredChip(banks, readouts, sds, {"probes": meas.probes, "source": meas.meta.get("source", ""),
                                               "simulations": meas.meta.get("simulations", meas.probes)})


def _fit_readouts(meas: Measurements, banks: dict[str, BankFit]):
    """y_o = m⁺·I_pos − m⁻·I_neg per output element, least squares with the same weak prior."""
    outputs = meas.meta.get("outputs") or ["y"]
    if len(outputs) != 1:
        raise InputError(f"fit-chip: the measurement has {len(outputs)} graph outputs ({', '.join(outputs)}); "
                         "the read-out fit covers networks with one")
    last = meas.banks[-1]
    fit = banks[last]
    n_out = meas.y.shape[1]
    if n_out != fit.out:
        raise InputError(f"fit-chip: y has {n_out} outputs, the last bank {last!r} has {fit.out}")
    soma = meas.soma[last]
    if not np.isfinite(soma).all():
        raise InputError(f"fit-chip: the read-out fit needs every soma of the last bank {last!r} measured "
                         "(soma/{last} holds NaN)")
    m = np.zeros((n_out, fit.out * fit.row_sides))
    sd = np.zeros_like(m)
    for o in range(n_out):
        cols = [o] + ([fit.out + o] if fit.row_sides == 2 else [])
        a = soma[:, cols] * np.array([1.0, -1.0][: len(cols)])
        sig = REL_ERR * np.abs(meas.y[:, o]) + ABS_ERR
        lhs = np.vstack([a / sig[:, None], np.eye(len(cols)) / PRIOR_SD])
        rhs = np.concatenate([meas.y[:, o] / sig, np.ones(len(cols)) / PRIOR_SD])
        coef, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
        cov = np.linalg.inv(lhs.T @ lhs)
        m[o, cols] = coef * np.array([1.0, -1.0][: len(cols)])
        sd[o, cols] = np.sqrt(np.diag(cov))
    return {outputs[0]: m}, {outputs[0]: sd}
