"""Fit behavioural families to characterization data; write and read versioned model JSON.

Per chip instance, `scipy.optimize.least_squares` (trust-region reflective, bounded) minimises

    Σ over held-in points of ((predict(p, x) − y_SPICE) / FS)²

starting from the nominal circuit's fit. Fidelity is measured on the held-out points only:
rms_pct_fs = 100·√mean(e²) and max_pct_fs = 100·max|e| with e = (predict − y)/FS, FS the
block's output full scale. The population is the mean and covariance (ddof 1) of the
per-instance parameter vectors, enough to sample new chips: p ~ N(mean, cov).

A fit that does not converge (status ≤ 0, non-finite data) or misses its held-out points by
more than ``max_rms_pct_fs`` raises `FitError` naming the family and instance; model files are
written atomically, one per family, only after that family fitted, so nothing written before
is lost. ``models/fits/<family>.json`` (format ``kelvin-fit``, version 1):

    {"format", "version", "kind", "family", "parameters", "design", "circuit", "full_scale",
     "nominal": {name: value}, "population": {"mean", "cov", "std", "instances"},
     "instances": [{"instance", "seed", "params", "rms_pct_fs", "max_pct_fs"}],
     "provenance": {...}, "fidelity": {"rms_pct_fs", "max_pct_fs", "held_out_points", ...}}
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy
from scipy.optimize import least_squares
from tqdm import tqdm

from circuits.errors import InputError, KelvinError
from circuits.files import ensure_dir, write_json
from sim.characterize.families import Family, family_class
from sim.characterize.store import CharacterizationData

_log = logging.getLogger(__name__)

FIT_FORMAT = "kelvin-fit"
FIT_VERSION = 1
DEFAULT_MAX_RMS_PCT_FS = 1.0


class FitError(KelvinError):
    """A behavioural family could not be fitted to its data (names the family and instance)."""


class FitFormatError(InputError):
    """A model JSON file is not a Kelvin fit of the version this Kelvin reads."""


@dataclass(frozen=True, slots=True)
class InstanceFit:
    """One chip's fitted parameters and their held-out fidelity."""

    label: str
    params: np.ndarray
    status: int
    nfev: int
    residual_pct_fs: np.ndarray  # held-out residuals, % of full scale

    @property
    def rms_pct_fs(self) -> float:
        return float(np.sqrt(np.mean(self.residual_pct_fs**2)))

    @property
    def max_pct_fs(self) -> float:
        return float(np.max(np.abs(self.residual_pct_fs)))


def fit_instance(family: Family, x: np.ndarray, y: np.ndarray, held_out: np.ndarray, full_scale: float,
                 label: str, x0: np.ndarray | None = None,
                 max_rms_pct_fs: float = DEFAULT_MAX_RMS_PCT_FS) -> InstanceFit:
    """Fit ``family`` to (x, y) on the held-in rows; FitError if it fails or misses the held-out rows."""
    where = f"family {family.name} ({family.kind}), {label}"
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    bad = int(np.count_nonzero(~np.isfinite(y)))
    if bad:
        raise FitError(f"{where}: {bad} of {y.size} simulated outputs are not finite (NaN/inf); "
                       "re-simulate that instance (delete its npz and run kelvin characterize again)")
    lo, hi = family.bounds()
    start = family.initial() if x0 is None else np.asarray(x0, dtype=np.float64)
    start = np.clip(start, lo, hi)
    keep = ~np.asarray(held_out, dtype=bool)

    def residual(p: np.ndarray) -> np.ndarray:
        return (family.predict(p, x[keep]) - y[keep]) / full_scale

    try:
        res = least_squares(residual, start, bounds=(lo, hi), method="trf", x_scale="jac",
                            ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=200 * (len(start) + 1))
    except (ValueError, FloatingPointError) as exc:
        raise FitError(f"{where}: least_squares failed ({exc})") from exc
    if res.status <= 0 or not np.all(np.isfinite(res.x)):
        raise FitError(f"{where}: least_squares did not converge (status {res.status}: {res.message})")
    err = (family.predict(res.x, x[~keep]) - y[~keep]) / full_scale * 100.0
    fit = InstanceFit(label, res.x, int(res.status), int(res.nfev), err)
    if not np.all(np.isfinite(err)) or fit.rms_pct_fs > max_rms_pct_fs:
        raise FitError(f"{where}: misses its held-out points by {fit.rms_pct_fs:.3g} % of full scale rms "
                       f"(limit {max_rms_pct_fs:g} %); the family does not describe this circuit")
    return fit


def fit_data(data: CharacterizationData, *, max_rms_pct_fs: float = DEFAULT_MAX_RMS_PCT_FS,
             progress: bool = False) -> dict[str, Any]:
    """Fit the nominal circuit and every instance of one kind; the model document (JSON-ready)."""
    fam, x, fs = data.family, data.points, data.full_scale
    nominal = fit_instance(fam, x, data.nominal, data.held_out, fs, "nominal", max_rms_pct_fs=max_rms_pct_fs)
    fits = []
    for i in tqdm(range(len(data.instances)), desc=f"fit {fam.name}", unit="chip", file=sys.stderr,
                  disable=not progress):
        fits.append(fit_instance(fam, x, data.instances[i], data.held_out, fs, f"instance {i}",
                                 x0=nominal.params, max_rms_pct_fs=max_rms_pct_fs))
    params = np.stack([f.params for f in fits])
    cov = np.cov(params, rowvar=False, ddof=1).reshape(len(fam.parameters()), -1) if len(fits) > 1 \
        else np.zeros((params.shape[1], params.shape[1]))
    pooled = np.concatenate([f.residual_pct_fs for f in fits])
    worst = max(fits, key=lambda f: f.rms_pct_fs)
    man = data.manifest
    return {
        "format": FIT_FORMAT, "version": FIT_VERSION, "kind": data.kind, "family": fam.name,
        "parameters": list(fam.parameters()), "design": fam.design(), "circuit": man.get("circuit", {}),
        "full_scale": fs,
        "nominal": dict(zip(fam.parameters(), map(float, nominal.params))),
        "population": {"mean": params.mean(axis=0).tolist(), "cov": cov.tolist(),
                       "std": np.sqrt(np.diag(cov)).tolist(), "instances": len(fits)},
        "instances": [{"instance": i, "seed": data.instance_seeds[i], "params": f.params.tolist(),
                       "rms_pct_fs": f.rms_pct_fs, "max_pct_fs": f.max_pct_fs} for i, f in enumerate(fits)],
        "provenance": {**man.get("provenance", {}), "seed": man.get("seed"), "points": man.get("points"),
                       "created": man.get("created"), "netlist_sha256": data.netlist_sha256,
                       "fit": {"method": "scipy.optimize.least_squares (trf, bounded)", "scipy": scipy.__version__,
                               "held_out": "every other sweep point"}},
        "fidelity": {"rms_pct_fs": float(np.sqrt(np.mean(pooled**2))), "max_pct_fs": float(np.max(np.abs(pooled))),
                     "held_out_points": int(np.count_nonzero(data.held_out)),
                     "worst_instance_rms_pct_fs": worst.rms_pct_fs, "nominal_rms_pct_fs": nominal.rms_pct_fs,
                     "nominal_max_pct_fs": nominal.max_pct_fs, "limit_rms_pct_fs": max_rms_pct_fs},
    }


def write_fit(doc: dict[str, Any], out_dir: str | Path) -> Path:
    """``out_dir/<family>.json``, atomically."""
    return write_json(ensure_dir(out_dir) / f"{doc['family']}.json", doc)


@dataclass(frozen=True, slots=True)
class FittedModel:
    """A loaded model file: the family, nominal and per-instance parameters, the population."""

    path: Path
    kind: str
    family: Family
    parameters: tuple[str, ...]
    nominal: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    instances: np.ndarray
    full_scale: float
    fidelity: dict[str, Any]
    provenance: dict[str, Any]

    def predict(self, x: np.ndarray, params: np.ndarray | None = None) -> np.ndarray:
        """Outputs at ``x`` for ``params`` (default: the nominal circuit's fit)."""
        return self.family.predict(self.nominal if params is None else params, x)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` new chips' parameters drawn from N(mean, cov), clipped to the family's bounds."""
        lo, hi = self.family.bounds()
        draws = rng.multivariate_normal(self.mean, self.cov, size=n, method="eigh")
        return np.clip(draws, lo, hi)


def shipped_model(kind: str) -> FittedModel:
    """The model Kelvin ships for primitive ``kind`` (``models/fits/<family>.json``)."""
    from circuits.data import model_file

    return load_fit(model_file("fits", f"{family_class(kind).name}.json"))


def load_fit(path: str | Path) -> FittedModel:
    """Read ``models/fits/<family>.json``; FitFormatError for another format or version."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise FitFormatError(f"{p}: unreadable model file ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FIT_FORMAT:
        raise FitFormatError(f"{p}: not a Kelvin fit (format {doc.get('format') if isinstance(doc, dict) else None!r}, "
                             f"expected {FIT_FORMAT!r})")
    if doc.get("version") != FIT_VERSION:
        raise FitFormatError(f"{p}: fit format version {doc.get('version')!r}, but this Kelvin reads version "
                             f"{FIT_VERSION}; regenerate it with kelvin characterize and kelvin fit")
    try:
        fam = family_class(doc["kind"]).from_design(doc["design"])
        names = tuple(doc["parameters"])
        if names != fam.parameters():
            raise FitFormatError(f"{p}: parameters {names} do not match family {fam.name} {fam.parameters()}")
        pop = doc["population"]
        return FittedModel(p, doc["kind"], fam, names, np.array([doc["nominal"][k] for k in names]),
                           np.asarray(pop["mean"], dtype=np.float64), np.asarray(pop["cov"], dtype=np.float64),
                           np.array([i["params"] for i in doc["instances"]], dtype=np.float64),
                           float(doc["full_scale"]), doc["fidelity"], doc["provenance"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FitFormatError(f"{p}: malformed Kelvin fit ({type(exc).__name__}: {exc})") from exc
