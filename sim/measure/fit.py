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

Early drift. The mirrors' nominal Early-effect drift (`sim.chip.EarlySlopes`: n·U_T/V_A per e-fold
of a node's current, a property of the process and sizing, not of the chip) is not mismatch. Given
the slopes (the measurement's ``early_slopes``, or its Kelvin ``sizing``), each soma reading is first
corrected by the nominal chip's drift at that probe, I − (I_drift − I_linear) of the same programmed
levels and inputs (`sim.engine.kernels.ChipSynapseKernel`), so the factors are the chip's linear
mismatch alone, as the draw-based tables are; at inference the measured chip adds the same drift
back (`sim.engine.prepare`). Cross terms of mismatch and drift (a few % of a few %) are neglected.

Per-synapse refinement (`refine_synapses`). The factors are then the prior mean of every synapse's
own per-sign, per-bit current V[R, j, s, b] ≈ c[j, s]·A[R, s, b], with the copy's Pelgrom spread as
the prior sd; the readings are linear in V, so one ridge solve per row gives its posterior. Dense
configurations pin few of them (each synapse carries 1/64 of a digits row's current); sparse ones
(`sim.measure.lab.Plan.density`) pin many more at the same number of simulations.

Estimation: maximum a posteriori with a weak prior around nominal (every factor 1 ± 0.3), so every
parameter is defined; the posterior standard deviation against the prior's says how well the data
identify it (identifiability 1: the data alone; 0: the prior alone). Fitted with SciPy's trust-region
least squares; measurement error model 1 % of the current plus 0.002 units.

The fitted tables are `sim.engine.chip_map.ChipTable`s, the same form the draw-based chip model
gives, so training for a measured chip and for the oracle chip share one code path.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import least_squares

from circuits.errors import InputError
from circuits.files import read_npz, staged_dir, write_json, write_npz
from circuits.spice.current_cells import SIZINGS, CellSizing
from circuits.current import SynapseArray
from sim.chip import EarlySlopes
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
WEAK_ROW_FRACTION = 0.5
REL_ERR, ABS_ERR = 0.01, 0.002  # the factor model's error: per-synapse copy errors it averages, plus noise
SYN_REL_ERR, SYN_ABS_ERR = 0.003, 0.0006  # a reading's own error, once every synapse has its own value
# a soma carrying less is taken as off and gives no equation: near zero a subthreshold soma turns off
# softly (ngspice, digits chip 0: the rectified-linear model misses readings of 0.02-0.06 units by
# 40-140 % of their value), and those readings pulled the fitted gains off by several %
ACTIVE_UNITS = 0.2
MAX_SLOPE = 0.5  # an Early slope per e-fold beyond which a transistor is no current mirror
MIN_SD = 1e-4  # a synapse prior tighter than this makes the ridge solve singular, and no chip matches so
# Fit quality: the factor model's RMS relative misfit on a simulated Kelvin chip is 3-5 % (digits,
# compact; 15-42 % at minimum sizing, where refined synapses still follow the readings to 0.5-2.2 %:
# `BankFit.follows_readings`); beyond REFUSE_MISFIT it describes nothing of the data (random readings: 66 %, configurations
# numbered from 1: 57 %, inputs in amperes: 95 %), beyond WARN_MISFIT it is doubtful. The refined
# synapses fit a measured chip to about 0.1 %; WARN_SYN_MISFIT flags readings they cannot follow.
WARN_MISFIT, REFUSE_MISFIT, WARN_SYN_MISFIT = 0.15, 0.3, 0.02
FOLLOW_SYN_MISFIT = 0.05  # refined synapses this close follow a chip's readings (minimum sizing, 10 nA per
# unit: 0.5-2.2 %, where the largest row currents leave weak inversion); random readings miss by tens of %
SIGN_SLACK = 0.5  # a gain or ratio below -SIGN_SLACK is a sign error (≈ -1) or noise far beyond a chip's;
# between, a weakly pinned factor that noise pushed below 0 (5 % noise on a 6-5-3's readings: -0.4),
# which the misfit warnings report
FILE = "measured_chip.npz"


@dataclass(frozen=True)
class BankFit:
    """One bank's fitted factors, their posterior standard deviations and the fit's residuals; with
    ``syn``, each synapse's own per-sign, per-bit current (the factors' product refined, `refine_synapses`)."""

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
    syn: np.ndarray | None = None        # [R, C, 2, 3] per-bit synapse currents per unit level
    syn_bias: np.ndarray | None = None   # [R, 2, 3] the bias synapses'
    syn_identified: float = 0.0          # fraction of synapse values the data pin (posterior sd < half the prior's)
    syn_rms_rel: float = float("nan")    # RMS relative residual with the refined synapses

    @property
    def follows_readings(self) -> bool:
        """Whether the refined synapses follow the readings (misfit within `FOLLOW_SYN_MISFIT`). The
        factor model alone averages every synapse's own copy error into its row and column: its
        misfit grows with the Pelgrom spread (3-5 % at compact sizing, 15-42 % at minimum, where a
        copy errs by 26 %), so on a chip whose synapses are refined it says little about the data,
        and only a misfit of both flags readings no chip produced."""
        return bool(np.isfinite(self.syn_rms_rel) and self.syn_rms_rel <= FOLLOW_SYN_MISFIT)

    def check(self) -> None:
        """Raise ValueError naming the array if a table has another shape than the bank's or is not finite."""
        r, c, k = self.out * self.row_sides, self.inputs * self.col_sides, len(BITS)
        want = {"a": (self.a, (r, 2, k)), "a_sd": (self.a_sd, (r, 2, k)), "c": (self.c, (c, 2)),
                "c_sd": (self.c_sd, (c, 2)), "c_ref": (self.c_ref, (2,))}
        if self.syn is not None:
            want.update(syn=(self.syn, (r, c, 2, k)), syn_bias=(self.syn_bias, (r, 2, k)))
        for key, (arr, shape) in want.items():
            if arr is None or np.shape(arr) != shape:
                raise ValueError(f"bank {self.name}: {key} has shape {np.shape(arr)}, the bank needs {shape}")
            if not np.isfinite(arr).all():
                raise ValueError(f"bank {self.name}: {key} holds non-finite values")

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-synapse [R, C, 2, 3] and bias-synapse [R, 2, 3] currents per unit level and bit: the
        refined ones, else the factors' product."""
        if self.syn is not None and self.syn_bias is not None:
            return self.syn, self.syn_bias
        return factor_values(self.a, self.c, self.c_ref)

    def table(self) -> ChipTable:
        """The bank as T[R, C, sign, level] and T_bias[R, sign, level] (see `sim.engine.chip_map`)."""
        syn, syn_b = self.values()
        return ChipTable(level_table(syn), level_table(syn_b), self.out, self.inputs)

    def identifiability(self) -> dict[str, float]:
        ident_a = 1 - self.a_sd / PRIOR_SD
        ident_c = 1 - self.c_sd / PRIOR_SD
        return {"row_factors": int(self.a.size), "row_identified_fraction": float(np.mean(ident_a > 0.5)),
                "row_median_sd": float(np.median(self.a_sd)),
                "column_factors": int(self.c.size), "column_identified_fraction": float(np.mean(ident_c > 0.5)),
                "column_median_sd": float(np.median(self.c_sd)), "equations": self.equations,
                "rms_relative_residual": _finite(self.rms_rel),
                "synapse_values": 0 if self.syn is None else int(self.syn.size),
                "synapse_identified_fraction": self.syn_identified,
                "synapse_rms_relative_residual": _finite(self.syn_rms_rel)}


def _finite(v: float) -> float | None:
    """A figure for the JSON report: None where it could not be computed (no active soma)."""
    return float(v) if np.isfinite(v) else None


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

    def warnings(self) -> list[str]:
        """What a user training on this fit should know: weakly identified banks (`weakly_identified`)
        and doubtful fits (a factor misfit beyond `WARN_MISFIT`, refined synapses beyond `WARN_SYN_MISFIT`)."""
        lines = self.weakly_identified()
        for name, b in self.banks.items():
            if not b.follows_readings and np.isfinite(b.rms_rel) and b.rms_rel > WARN_MISFIT:
                lines.append(f"bank {name!r}: the chip model misses the soma readings by {100 * b.rms_rel:.0f} % RMS "
                             "(a measured chip: a few %); check the data before training on this fit")
            elif np.isfinite(b.syn_rms_rel) and b.syn_rms_rel > WARN_SYN_MISFIT:
                lines.append(f"bank {name!r}: with every synapse fitted the model still misses the readings by "
                             f"{100 * b.syn_rms_rel:.1f} % RMS (a simulated Kelvin chip: 0.1-2 %); check that each "
                             "probe's configuration is the one programmed")
        return lines

    def weakly_identified(self) -> list[str]:
        """One line per bank whose somas the measurements pin down poorly: fewer than half its row
        factors (per-soma gains per sign and bit, Binas et al.'s a_i) left their prior. The fit then mostly restates
        the nominal chip, which a user training on it should know."""
        lines = []
        for name, b in self.banks.items():
            ident = b.identifiability()
            if ident["row_identified_fraction"] < WEAK_ROW_FRACTION:
                lines.append(f"bank {name!r}: only {100 * ident['row_identified_fraction']:.0f} % of its "
                             f"{ident['row_factors']} row factors (soma gains per sign and bit) identified from "
                             f"{ident['equations']} equations; "
                             "the fit falls back to the nominal chip there (measure with more --configs, "
                             "--probes or --density)")
        return lines

    def save(self, outdir: str | os.PathLike[str]) -> Path:
        """FITS/measured_chip.npz (factors, tables, read-outs) and FITS/kelvin.json (the report), atomically."""
        arrays: dict[str, np.ndarray] = {}
        for n, b in self.banks.items():
            for f in ("a", "c", "c_ref", "a_sd", "c_sd"):
                arrays[f"{n}/{f}"] = getattr(b, f)
            arrays[f"{n}/shape"] = np.array([b.out, b.inputs, b.row_sides, b.col_sides, b.equations])
            arrays[f"{n}/rms_rel"] = np.array(b.rms_rel)
            if b.syn is not None and b.syn_bias is not None:
                arrays[f"{n}/syn"], arrays[f"{n}/syn_bias"] = b.syn, b.syn_bias
                arrays[f"{n}/syn_stats"] = np.array([b.syn_identified, b.syn_rms_rel])
        for o, m in self.readouts.items():
            arrays[f"readout/{o}"], arrays[f"readout_sd/{o}"] = m, self.readout_sd[o]
        with staged_dir(outdir, frozenset({FILE, "kelvin.json"}), kind="measured_chip") as stage:
            write_npz(stage / FILE, **arrays)
            write_json(stage / "kelvin.json", {"kind": "measured_chip", "banks": list(self.banks),
                                              "outputs": list(self.readouts), "report": self.report()})
        return Path(outdir)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> MeasuredChip:
        import json
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"MeasuredChip.load: a fits directory path, got {directory!r}")
        d = Path(directory)
        try:
            doc = json.loads((d / "kelvin.json").read_text())
            data = read_npz(d / FILE)
            banks = {}
            for n in doc["banks"]:
                out, n_in, rs, cs, eq = (int(v) for v in data[f"{n}/shape"])
                syn = data.get(f"{n}/syn")
                stats = data.get(f"{n}/syn_stats", np.array([0.0, np.nan]))
                banks[n] = BankFit(n, out, n_in, rs, cs, data[f"{n}/a"], data[f"{n}/c"], data[f"{n}/c_ref"],
                                   data[f"{n}/a_sd"], data[f"{n}/c_sd"], eq, float(data[f"{n}/rms_rel"]),
                                   syn, data.get(f"{n}/syn_bias") if syn is not None else None,
                                   float(stats[0]), float(stats[1]))
                banks[n].check()
            readouts = {o: data[f"readout/{o}"] for o in doc["outputs"]}
            sd = {o: data[f"readout_sd/{o}"] for o in doc["outputs"]}
            for o, m in readouts.items():
                if m.ndim != 2 or sd[o].shape != m.shape or not (np.isfinite(m).all() and np.isfinite(sd[o]).all()):
                    raise ValueError(f"read-out {o}: arrays of shape {m.shape} and {sd[o].shape}, or not finite")
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
        """[P, R]: each soma's input current (model units) before its rectification, from the factors."""
        return self.synapse_preactivation(*factor_values(a, c, c_ref), x_in, w_unit)

    def synapse_preactivation(self, syn: np.ndarray, syn_b: np.ndarray, x_in: np.ndarray,
                              w_unit: float) -> np.ndarray:
        """[P, R]: the same from every synapse's own per-sign, per-bit current (`refine_synapses`)."""
        rows, cols = syn.shape[:2]
        g = self.sgn * self.mag * syn[np.arange(rows)[None, :, None], np.arange(cols)[None, None, :], self.sidx,
                                      self.bidx]
        pre = np.einsum("prc,pc->pr", g, x_in)
        pre += self.bsgn * self.bmag * syn_b[np.arange(rows)[None, :], self.bsidx, self.bbidx]
        return w_unit * pre


def factor_values(a: np.ndarray, c: np.ndarray, c_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The factor model's per-synapse values: c[j, s]·A[R, s, b] [R, C, 2, 3] and c_ref[s]·A[R, s, b] [R, 2, 3]."""
    return c[None, :, :, None] * a[:, None, :, :], c_ref[None, :, None] * a


def slopes_of(meas: Measurements) -> EarlySlopes | None:
    """The Early slopes the fit removes: the measurement's ``early_slopes`` [kn, kp], else its Kelvin sizing's."""
    given = meas.meta.get("early_slopes")
    if given is not None:
        try:
            kn, kp = (float(v) for v in given)
        except (TypeError, ValueError) as exc:
            raise InputError(f"fit-chip: meta early_slopes must be [kn, kp] (n·U_T/V_A, NMOS and PMOS), "
                             f"got {given!r}") from exc
        if not (np.isfinite([kn, kp]).all() and 0 <= kn <= MAX_SLOPE and 0 <= kp <= MAX_SLOPE):
            raise InputError(f"fit-chip: meta early_slopes must be in [0, {MAX_SLOPE}] (a mirror's drift per e-fold "
                             f"of current; a few 1e-3 in weak inversion), got {given!r}")
        return EarlySlopes(kn, kp)
    sizing = meas.meta.get("sizing")
    return EarlySlopes.of(sizing) if sizing in SIZINGS else None


def synapse_spread(meas: Measurements) -> np.ndarray:
    """Prior relative sd of each synapse's own current per bit (1, 2, 4 unit copies in parallel): the
    measurement's ``synapse_sd`` [3], else its Kelvin sizing's Pelgrom spread of one copy,
    √((σ_Vt/(n·U_T))² + σ_β²)/√m, else 5 %/√m."""
    given = meas.meta.get("synapse_sd")
    if given is not None:
        sd = np.asarray(given, dtype=np.float64)
        if sd.shape != (len(BITS),) or not np.all(np.isfinite(sd)) or np.any(sd < MIN_SD) or np.any(sd > 1):
            raise InputError(f"fit-chip: meta synapse_sd must be 3 relative spreads in [{MIN_SD:g}, 1] (bits 1, 2, "
                             f"4), got {given!r}")
        return sd
    m = np.sqrt(np.array(BITS, dtype=np.float64))
    sizing = meas.meta.get("sizing")
    if sizing not in SIZINGS:
        return 0.05 / m
    return CellSizing.preset(sizing).report()["sigma_copy_rel"] / m


def nominal_drift(levels: np.ndarray, bias: np.ndarray, config: np.ndarray, x_in: np.ndarray, row_sides: int,
                  w_unit: float, slopes: EarlySlopes, from_input: bool) -> np.ndarray:
    """[P, rows]: the nominal chip's soma currents with the Early drift minus without, per probe."""
    col_sides = x_in.shape[1] // levels.shape[2]
    out = np.zeros((len(config), levels.shape[1] * row_sides))
    for k in np.unique(config):
        w = realized_levels(levels[k], row_sides, col_sides) * w_unit
        b = realized_bias(bias[k], row_sides) * w_unit
        rows = config == k
        xk = np.asarray(x_in[rows], np.float64)
        out[rows] = slopes.bank(w, b, from_input).ideal(xk) - SynapseArray(w, b, rectify=True).ideal(xk)
    return out


def fit_bank(name: str, levels: np.ndarray, bias: np.ndarray, config: np.ndarray, x_in: np.ndarray,
             soma: np.ndarray, row_sides: int, w_unit: float, drift: np.ndarray | None = None,
             synapse_sd: np.ndarray | None = None) -> BankFit:
    """MAP fit of one bank's factors from its somas' currents (single-bit levels, module docstring);
    ``drift`` [P, rows], the nominal Early drift to remove from each reading (`nominal_drift`);
    ``synapse_sd`` [3], per bit: also refine every synapse (`refine_synapses`) with that prior spread."""
    k, out, n_in = levels.shape
    col_sides = x_in.shape[1] // n_in
    design = _Design.of(name, levels, bias, config, row_sides, col_sides)
    rows, cols = out * row_sides, n_in * col_sides
    active = np.isfinite(soma) & (np.nan_to_num(soma) > ACTIVE_UNITS)
    pi, ri = np.nonzero(active)
    target = soma[pi, ri] - (0.0 if drift is None else drift[pi, ri])
    sigma = REL_ERR * np.abs(target) + ABS_ERR
    n_a, n_c = rows * 6, cols * 2

    def unpack(theta):
        return theta[:n_a].reshape(rows, 2, 3), theta[n_a:n_a + n_c].reshape(cols, 2), theta[n_a + n_c:]

    def residuals(theta):
        pred = design.preactivation(*unpack(theta), x_in, w_unit)[pi, ri]
        return np.concatenate([(pred - target) / sigma, (theta - 1.0) / PRIOR_SD])

    jac = _FactorJacobian(design, x_in, w_unit, pi, ri, sigma, rows, cols)
    theta0 = np.ones(n_a + n_c + 2)
    try:
        with np.errstate(all="ignore"):
            sol = least_squares(residuals, theta0, jac=lambda theta: jac(*unpack(theta)), method="trf", x_scale=0.1,
                                **jac.options)
    except ValueError as exc:  # residuals that overflow: readings and drift far from any chip
        raise InputError(f"fit-chip: bank {name!r}: the fit cannot start ({exc}); check the readings' units "
                         "and the meta early_slopes") from exc
    try:
        sd = np.sqrt(np.clip(np.diag(np.linalg.inv((sol.jac.T @ sol.jac).toarray())), 0, None))
    except np.linalg.LinAlgError:
        sd = np.full(len(theta0), PRIOR_SD)
    a, c, cr = unpack(sol.x)
    rms = _rms_rel(design.preactivation(a, c, cr, x_in, w_unit)[pi, ri], target)
    fit = BankFit(name, out, n_in, row_sides, col_sides, a, c, cr, sd[:n_a].reshape(rows, 2, 3),
                  sd[n_a:n_a + n_c].reshape(cols, 2), int(len(pi)), rms)
    if synapse_sd is None:
        return fit
    return refine_synapses(fit, design, x_in, w_unit, pi, ri, target,
                           SYN_REL_ERR * np.abs(target) + SYN_ABS_ERR, synapse_sd)


class _FactorJacobian:
    """The factor model's residual Jacobian, analytic: each soma reading is bilinear in its row's
    gains A and the column gains c (`_Design.preactivation`), so with g = sgn·|ℓ|·x_j·u/σ

        ∂r/∂A[R, s, b] = Σ_j g·c[j, s]·[ℓ_Rj has sign s, bit b] + g_ref·c_ref[s]·[same for the bias]
        ∂r/∂c[j, s] = g·A[R, s, b_Rj]·[ℓ_Rj has sign s],   ∂r/∂c_ref[s] = g_ref·A[R, s, b_R]

    and the prior rows are the identity over PRIOR_SD. Finite differences cost one model evaluation
    per parameter: a 196-50-10 chip's first bank (about a thousand) took ten minutes to fit, and
    digits chip 0 20 s (now 1.4 s). The matrix is sparse (each reading involves its own row's six
    gains, the columns it drives and the bias reference), and SciPy's trust-region steps solve it
    with LSMR; with LSMR's tolerances at 1e-10 the fit stops where the dense exact solve does (digits
    chip 0: tables equal to 5e-7, factors to 2e-4 along their one flat direction)."""

    def __init__(self, design: _Design, x_in, w_unit: float, pi, ri, sigma, rows: int, cols: int) -> None:
        n, n_a = len(pi), rows * 6
        n_theta = n_a + cols * 2 + 2
        scale = w_unit / sigma
        g = design.sgn[pi, ri] * design.mag[pi, ri] * x_in[pi] * scale[:, None]   # [N, C]
        i, j = np.nonzero(g)                                                  # the (reading, column) pairs used
        self.i, self.j, self.r = i, j, ri[i]
        self.s, self.b, self.g = design.sidx[pi, ri][i, j], design.bidx[pi, ri][i, j], g[i, j]
        self.gb = design.bsgn[pi, ri] * design.bmag[pi, ri] * scale           # [N]
        self.sb, self.bb, self.ri = design.bsidx[pi, ri], design.bbidx[pi, ri], ri
        self.slot = (i, self.s * 3 + self.b)                                  # ∂/∂A[R_i, s, b] by slot s·3 + b
        self.bslot = (np.arange(n), self.sb * 3 + self.bb)
        self.n = n
        # the sparsity pattern is fixed: only the values change between calls (no entry repeats)
        k = np.arange(n)
        rows_idx = np.concatenate([np.repeat(k, 6), i, k, n + np.arange(n_theta)])
        cols_idx = np.concatenate([(ri[:, None] * 6 + np.arange(6)).reshape(-1), n_a + j * 2 + self.s,
                                   n_a + cols * 2 + self.sb, np.arange(n_theta)])
        entry = np.arange(1, len(rows_idx) + 1, dtype=np.float64)  # 1-based: no stored value is 0
        self.pattern = sparse.csr_matrix((entry, (rows_idx, cols_idx)), shape=(n + n_theta, n_theta))
        assert self.pattern.nnz == len(entry)
        self.order = self.pattern.data.astype(np.int64) - 1  # CSR position → entry of the value vector
        self.prior = np.full(n_theta, 1.0 / PRIOR_SD)

    # least_squares options: LSMR's inner solves to 1e-10, so the fit also converges along the gains'
    # one flat direction (A·c up to a common scale, held only by the prior)
    options = {"tr_solver": "lsmr", "tr_options": {"atol": 1e-10, "btol": 1e-10}}

    def __call__(self, a: np.ndarray, c: np.ndarray, c_ref: np.ndarray) -> sparse.csr_matrix:
        d_a = np.zeros((self.n, 6))
        np.add.at(d_a, self.slot, self.g * c[self.j, self.s])
        np.add.at(d_a, self.bslot, self.gb * c_ref[self.sb])
        vals = np.concatenate([d_a.reshape(-1), self.g * a[self.r, self.s, self.b],
                               self.gb * a[self.ri, self.sb, self.bb], self.prior])
        m = self.pattern.copy()
        m.data = vals[self.order]
        return m


def _rms_rel(pred: np.ndarray, target: np.ndarray) -> float:
    """RMS relative residual of the active somas' readings (NaN with none)."""
    return float(np.sqrt(np.mean(((pred - target) / np.abs(target)) ** 2))) if len(target) else float("nan")


def refine_synapses(fit: BankFit, design: _Design, x_in: np.ndarray, w_unit: float, pi: np.ndarray, ri: np.ndarray,
                    target: np.ndarray, sigma: np.ndarray, synapse_sd: np.ndarray) -> BankFit:
    """Each synapse's own per-sign, per-bit current, row by row: the readings are linear in them, so
    the posterior under a Gaussian prior around the factors' product c[j, s]·A[R, s, b] (relative sd
    ``synapse_sd`` [3] per bit: a copy's own Pelgrom spread) is one ridge solve per row.

    This is what the factor model averages away (module docstring): every copy transistor's own
    error. With single-bit test levels each reading of row R is Σ_j sgn·|k|·x_j·V[R, j, s, b] plus
    its bias synapse, so configurations that give every synapse each sign and bit, and a few more
    operating points than columns per configuration, identify all of them.
    """
    rows, cols = fit.a.shape[0], fit.c.shape[0]
    prior, prior_b = factor_values(fit.a, fit.c, fit.c_ref)
    n_syn = cols * 6
    syn, syn_b = prior.copy(), prior_b.copy()
    pinned = 0
    col_idx = np.arange(cols)
    for r in range(rows):
        sel = ri == r
        p = pi[sel]
        theta0 = np.concatenate([prior[r].reshape(-1), prior_b[r].reshape(-1)])
        psd = np.concatenate([(prior[r] * synapse_sd).reshape(-1), (prior_b[r] * synapse_sd).reshape(-1)])
        if len(p):
            x = np.zeros((len(p), n_syn + 6))
            pos = (col_idx[None, :] * 6 + design.sidx[p, r] * 3 + design.bidx[p, r])
            coef = w_unit * design.sgn[p, r] * design.mag[p, r] * x_in[p]
            np.add.at(x, (np.repeat(np.arange(len(p)), cols), pos.reshape(-1)), coef.reshape(-1))
            bpos = n_syn + design.bsidx[p, r] * 3 + design.bbidx[p, r]
            x[np.arange(len(p)), bpos] += w_unit * design.bsgn[p, r] * design.bmag[p, r]
            xw = x / sigma[sel][:, None]
            prec = xw.T @ xw + np.diag(1.0 / psd**2)
            rhs = xw.T @ (target[sel] / sigma[sel]) + theta0 / psd**2
            cov = np.linalg.inv(prec)
            theta = cov @ rhs
            post_sd = np.sqrt(np.clip(np.diag(cov), 0, None))
            pinned += int(np.sum(post_sd[:n_syn] < 0.5 * psd[:n_syn]))
        else:
            theta = theta0
        syn[r] = theta[:n_syn].reshape(cols, 2, 3)
        syn_b[r] = theta[n_syn:].reshape(2, 3)
    rms = _rms_rel(design.synapse_preactivation(syn, syn_b, x_in, w_unit)[pi, ri], target)
    return dataclasses.replace(fit, syn=syn, syn_bias=syn_b, syn_identified=pinned / (rows * n_syn), syn_rms_rel=rms)


def preactivations(meas: Measurements, chip: MeasuredChip) -> dict[str, np.ndarray]:
    """Per bank [P, rows]: the fitted model's soma input currents for every probe (for transfer plots)."""
    out = {}
    for name, fit in chip.banks.items():
        src = meas.inputs[name]
        x_in = meas.x if src == "x" else meas.soma[src]
        design = _Design.of(name, meas.levels[name], meas.bias_levels[name], meas.config, fit.row_sides,
                            fit.col_sides)
        out[name] = design.synapse_preactivation(*fit.values(), x_in, meas.w_unit)
    return out


def fit_chip(meas: Measurements) -> MeasuredChip:
    """Every bank's factors and every output's read-out pair, from one measurement file.

    Raises InputError, naming the measurement's file where it was read from one, when the data cannot
    be fitted or the fit is not a chip: a factor model that misses the readings by more than
    ``REFUSE_MISFIT`` RMS where the refined synapses do not follow them either, or a negative gain
    (no mirror inverts a current)."""
    if not isinstance(meas, Measurements):
        raise TypeError(f"fit_chip: a Measurements (Measurements.load(path)), got {type(meas).__name__}")
    try:
        with np.errstate(all="ignore"):
            chip = _fit_chip(meas)
        _check_physical(chip)
    except np.linalg.LinAlgError as exc:
        raise InputError(f"{meas.origin or 'fit-chip'}: the fit is singular ({exc}); check the readings") from exc
    except InputError as exc:
        if not meas.origin:
            raise
        raise InputError(f"{meas.origin}: {str(exc).removeprefix('fit-chip: ')}") from exc
    return chip


def _check_physical(chip: MeasuredChip) -> None:
    """Refuse a fit no chip can have: a misfit beyond `REFUSE_MISFIT`, or a negative gain or ratio."""
    for name, b in chip.banks.items():
        if np.isfinite(b.rms_rel) and b.rms_rel > REFUSE_MISFIT and not b.follows_readings:
            raise InputError(f"fit-chip: bank {name!r}: the chip model misses the soma readings by "
                             f"{100 * b.rms_rel:.0f} % RMS (a measured chip: a few %); check each probe's "
                             "configuration number, the levels and the readings' units")
        for what, arr in (("row gain", b.a), ("column gain", b.c), ("bias reference gain", b.c_ref)):
            if (arr < -SIGN_SLACK).any():
                index = [int(i) for i in np.argwhere(arr < -SIGN_SLACK)[0]]
                raise InputError(f"fit-chip: bank {name!r}: fitted {what} {arr[tuple(index)]:.3g} at {index}; "
                                 "a mirror cannot invert a current: the signs of the inputs or readings are wrong, "
                                 f"or the readings too noisy for this fit ({100 * b.rms_rel:.1f} % RMS misfit)")
    for out, m in chip.readouts.items():
        signs = np.sign(m)
        cols = m.shape[1]
        half = cols // 2 if cols == 2 * m.shape[0] else cols
        want = np.concatenate([np.ones(half), -np.ones(cols - half)])
        bad = (np.abs(m) > SIGN_SLACK) & (signs != want[None, :])
        if bad.any():
            o, j = (int(i) for i in np.argwhere(bad)[0])
            raise InputError(f"fit-chip: read-out of {out!r}: output {o} takes soma {j} with ratio "
                             f"{abs(m[o, j]):.3g} of the wrong sign; check the signs of y and the soma readings")


def _fit_chip(meas: Measurements) -> MeasuredChip:
    banks: dict[str, BankFit] = {}
    slopes, spread = slopes_of(meas), synapse_spread(meas)
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
        drift = None if slopes is None else nominal_drift(
            meas.levels[name], meas.bias_levels[name], meas.config, x_in, row_sides, meas.w_unit, slopes, src == "x")
        banks[name] = fit_bank(name, meas.levels[name], meas.bias_levels[name], meas.config, x_in,
                               meas.soma[name], row_sides, meas.w_unit, drift, spread)
        try:
            banks[name].check()
        except ValueError as exc:  # e.g. readings so far apart that the least squares overflow
            raise InputError(f"fit-chip: the fit of bank {name!r} is not finite ({exc}); check the "
                             "measurement's soma and input readings") from exc
        log.info("fit-chip: bank %s: %d equations, RMS relative residual %.3f", name, banks[name].equations,
                 banks[name].rms_rel)
    readouts, sds = _fit_readouts(meas, banks, slopes)
    meta = {"probes": meas.probes, "source": meas.meta.get("source", ""),
            "simulations": meas.meta.get("simulations", meas.probes), "w_unit": meas.w_unit, "scale": meas.scale}
    if meas.meta.get("sizing") is not None:
        meta["sizing"] = meas.meta["sizing"]
    if slopes is not None:
        meta["early_slopes"] = [slopes.kn, slopes.kp]
    return MeasuredChip(banks, readouts, sds, meta)


def _fit_readouts(meas: Measurements, banks: dict[str, BankFit], slopes: EarlySlopes | None):
    """y_o = m⁺·I_pos − m⁻·I_neg per output element, least squares with the same weak prior (with
    ``slopes``, each soma current carries its read-out branch's nominal drift, `InstanceSynapseArray`)."""
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
                         f"(soma/{last} holds NaN)")
    m = np.zeros((n_out, fit.out * fit.row_sides))
    sd = np.zeros_like(m)
    for o in range(n_out):
        cols = [o] + ([fit.out + o] if fit.row_sides == 2 else [])
        signs = np.array([1.0, -1.0][: len(cols)])
        a = soma[:, cols] * signs
        if slopes is not None:
            a = slopes.readout(np.diag(signs)).ideal(np.asarray(soma[:, cols], np.float64)).astype(np.float64)
        sig = REL_ERR * np.abs(meas.y[:, o]) + ABS_ERR
        lhs = np.vstack([a / sig[:, None], np.eye(len(cols)) / PRIOR_SD])
        rhs = np.concatenate([meas.y[:, o] / sig, np.ones(len(cols)) / PRIOR_SD])
        coef, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
        cov = np.linalg.inv(lhs.T @ lhs)
        m[o, cols] = coef * np.array([1.0, -1.0][: len(cols)])
        sd[o, cols] = np.sqrt(np.diag(cov))
    return {outputs[0]: m}, {outputs[0]: sd}
