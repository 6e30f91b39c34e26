"""The ``fitted`` hardware model: behavioral families fitted to ngspice (`kelvin fit`) applied to the
primitives they describe.

A fits directory holds one ``kelvin-fit`` JSON per family (format version 1; `models/fits/` ships
the default cards' fits), and, if ``kelvin fit`` wrote it since it records its output's kind, a
``kelvin.json`` ({"kind": "fits"}) that is not a fit and is skipped. Each describes one primitive kind with the family's parameters: the
nominal circuit's values and a population (mean, covariance over Monte Carlo chips). The model
uses the nominal values, or, with a ``chip_seed``, draws one chip from the population (every bank
and element its own draw, keyed by the seed and the node): a chip sampled from the fit.

| kind                    | family          | maps                                                                 |
|-------------------------|-----------------|----------------------------------------------------------------------|
| opamp.summer            | summer          | weights × the fitted resistor-ratio gains; + output offset           |
| opamp.rectifier         | rectifier       | x − threshold before, gain·y + offset after                          |
| opamp.diffpair          | diffpair        | slope·(x − input offset) before, gain·y + offset after               |
| current.neuron          | current_neuron  | x − threshold before, gain·y + leak after                            |
| current.synapse_array   | synapse, neuron | 3-bit + sign levels with the fitted per-branch errors (STE); soma gain and threshold |
| crossbar.tiles          | crossbar        | weights + the fitted conductance errors (× column w_max); + offset   |

Kinds without a fit or without an adapter here run ideally (``describe()`` lists what applied).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from circuits.errors import InputError
from circuits.files import output_kind
from circuits.spice.current_cells import MAX_LEVEL
from sim.engine.hardware import BinasLevels, HardwareModel
from sim.engine.maps import NodeMaps, ParamMap, SignalMap

FORMAT, VERSION = "kelvin-fit", 1
ADAPTED = {"opamp.summer": "summer", "opamp.rectifier": "rectifier", "opamp.diffpair": "diffpair",
           "current.neuron": "current_neuron", "current.synapse_array": "synapse", "crossbar.tiles": "crossbar"}


@dataclass(frozen=True)
class Fit:
    """One family's fit: parameter names, nominal values, population mean and covariance."""

    path: Path
    kind: str
    family: str
    names: tuple[str, ...]
    nominal: np.ndarray
    mean: np.ndarray
    cov: np.ndarray

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """``shape`` draws from the population, (*shape, parameters). A covariance from fewer chips than
        parameters is singular (rank chips − 1): Cholesky fails on it, the eigen-decomposition does not
        (the draws then stay in the span those chips show)."""
        try:
            return rng.multivariate_normal(self.mean, self.cov, size=shape, method="cholesky")
        except np.linalg.LinAlgError:
            return rng.multivariate_normal(self.mean, self.cov, size=shape, method="eigh")

    def value(self, name: str, params: np.ndarray) -> np.ndarray:
        return params[..., self.names.index(name)]


def load_fits(directory: str | Path) -> dict[str, Fit]:
    """Every fit in ``directory`` by family name; one clear error per missing or foreign file."""
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"--fits {d}: not a directory (give the directory `kelvin fit` wrote)")
    fits: dict[str, Fit] = {}
    for path in sorted(d.glob("*.json")):
        if path.name == "kelvin.json":  # the directory's kind (`kelvin fit`), not a fit; older ones have none
            continue
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise InputError(f"{path}: not a readable fit file ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise InputError(f"{path}: not a Kelvin fit (format {doc.get('format') if isinstance(doc, dict) else '?'!r}, "
                             f"expected {FORMAT!r})")
        if doc.get("version") != VERSION:
            raise InputError(f"{path}: fit format version {doc.get('version')!r}; this Kelvin reads version {VERSION}: "
                             "re-run kelvin fit")
        try:
            names = tuple(doc["parameters"])
            nominal = np.array([doc["nominal"][n] for n in names], dtype=np.float64)
            mean = np.asarray(doc["population"]["mean"], dtype=np.float64)
            cov = np.asarray(doc["population"]["cov"], dtype=np.float64)
            fits[doc["family"]] = Fit(path, doc["kind"], doc["family"], names, nominal, mean, cov)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: field {exc} is missing or malformed") from exc
        if mean.shape != (len(names),) or cov.shape != (len(names), len(names)) or nominal.shape != (len(names),):
            raise InputError(f"{path}: population mean/cov do not match its {len(names)} parameters")
        for key, arr in (("nominal", nominal), ("population.mean", mean), ("population.cov", cov)):
            if not np.isfinite(arr).all():
                raise InputError(f"{path}: field {key!r} holds non-finite values")
    if not fits:
        raise InputError(f"--fits {d}: {_not_fits(d)}")
    return fits


_OTHER_OUTPUTS = {
    "measurement": "is a chip measurement; fit it first: kelvin fit-chip {d} -o FITS",
    "characterization": "is a characterization; fit it first: kelvin fit {d} -o FITS",
}
"""What a Kelvin output directory given as --fits is, by its kelvin.json kind, and what to run instead (the
kinds whose directories hold no other JSON file, which would be refused first as not a fit)."""


def _not_fits(d: Path) -> str:
    """Why a directory with no fit files is not a fits directory: what it is if Kelvin wrote it (a lab's
    measurement is the likely mix-up), else that fits come from kelvin characterize and kelvin fit."""
    hint = _OTHER_OUTPUTS.get(output_kind(d) or "")
    return hint.format(d=d) if hint else "no fit files (*.json) in it; run kelvin characterize and kelvin fit"


# --- maps -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Affine(SignalMap):
    """y = a·x + b, elementwise with broadcasting (a fitted gain and offset). Exact derivative: a."""

    a: Any
    b: Any = 0.0

    def forward(self, x, rng):
        return x * np.asarray(self.a, x.dtype) + np.asarray(self.b, x.dtype), None

    def backward(self, saved, gy):
        return gy * np.asarray(self.a, gy.dtype)


@dataclass(frozen=True)
class ParamAffine(ParamMap):
    """p[k] → p[k]·gain[k] + shift[k] (fitted gain errors, conductance errors, a threshold on a bias).
    Exact derivative: gain."""

    gain: dict = field(default_factory=dict)
    shift: dict = field(default_factory=dict)
    deterministic: ClassVar[bool] = True

    def forward(self, p, rng):
        out = {}
        for k, v in p.items():
            out[k] = v * np.asarray(self.gain.get(k, 1.0), v.dtype) + np.asarray(self.shift.get(k, 0.0), v.dtype)
        return out, None

    def backward(self, saved, g):
        return {k: v * np.asarray(self.gain.get(k, 1.0), v.dtype) for k, v in g.items()}


@dataclass(frozen=True)
class FittedLevels(ParamMap):
    """Binas levels with the synapse family's fitted branch errors: w_eff = unit·k_eff(k)
    (`SynapseFamily.k_eff`). Straight-through estimator: ∂w_eff/∂w = k_eff(k)/k (1 + ε at k = 0)."""

    family: Any
    params: np.ndarray  # (7,) or (out, in, 7)
    w_unit: float
    ste: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True

    def forward(self, p, rng):
        w = p["weights"]
        b = p.get("bias")
        peak = np.abs(w).max(axis=1)
        if b is not None:
            peak = np.maximum(peak, np.abs(b))
        unit = np.maximum(self.w_unit, peak / MAX_LEVEL)[:, None]
        k = np.rint(w / unit)
        eff = self.family.k_eff(self.params, k)
        one = np.where(k == 0, 1.0, k)
        ratio = self.family.k_eff(self.params, one) / one
        return {**p, "weights": (unit * eff).astype(w.dtype)}, ratio.astype(w.dtype)

    def backward(self, saved, g):
        return {**g, "weights": g["weights"] * saved}


# --- the model --------------------------------------------------------------------------------
@dataclass
class Fitted(HardwareModel):
    """See the module docstring. ``chip_seed``: sample one chip from the population fits."""

    fits: dict[str, Fit]
    w_unit: float = 0.25
    chip_seed: int | None = None
    name: ClassVar[str] = "fitted"
    applied: set = field(default_factory=set)

    def _params(self, fit: Fit, program, step, shape: tuple[int, ...] = ()) -> np.ndarray:
        if self.chip_seed is None:
            return np.broadcast_to(fit.nominal, (*shape, len(fit.names)))
        rng = np.random.default_rng([self.chip_seed, program.layer_key(step), len(self.applied)])
        return fit.draw(rng, shape)

    def node_maps(self, program, step):
        prim = getattr(step.node, "primitive", None)
        family = ADAPTED.get(getattr(prim, "kind", ""))
        fit = self.fits.get(family) if family else None
        if fit is None:
            return NodeMaps()
        self.applied.add(prim.kind)
        if family == "summer":
            out = prim.weights.shape[0]
            gains = [n for n in fit.names if n.startswith("gain_")]
            p = self._params(fit, program, step, (out,))
            g = np.mean([fit.value(n, p) for n in gains], axis=0)  # a row's resistor-ratio error
            return NodeMaps(wmap=(ParamAffine(gain={"weights": g[:, None]}),),
                            post=(Affine(1.0, fit.value("offset", p)),))
        if family in ("rectifier", "current_neuron"):
            p = self._params(fit, program, step)
            tail = fit.value("offset", p) if "offset" in fit.names else fit.value("leak", p)
            return NodeMaps(pre=(Affine(1.0, -fit.value("threshold", p)),), post=(Affine(fit.value("gain", p), tail),))
        if family == "diffpair":
            p = self._params(fit, program, step)
            slope = fit.value("slope", p)
            return NodeMaps(pre=(Affine(slope, -slope * fit.value("input_offset", p)),),
                            post=(Affine(fit.value("gain", p), fit.value("offset", p)),))
        if family == "synapse":
            from sim.characterize.families_arrays import SynapseFamily
            syn = SynapseFamily(self.w_unit)
            p = self._params(fit, program, step, prim.weights.shape) if self.chip_seed is not None else fit.nominal
            maps = [FittedLevels(syn, p, self.w_unit)]
            neuron = self.fits.get("current_neuron")
            post: tuple = ()
            if neuron is not None and prim.rectify:
                q = self._params(neuron, program, step, (prim.weights.shape[0],))
                shift = {"bias": -neuron.value("threshold", q)} if prim.bias is not None else {}
                maps.append(ParamAffine(shift=shift))
                post = (Affine(neuron.value("gain", q), 0.0),)
            return NodeMaps(wmap=(BinasLevels(self.w_unit), *maps), post=post)
        if family == "crossbar":
            dws = [n for n in fit.names if n.startswith("dw_")]
            p = self._params(fit, program, step, prim.weights.shape)
            dw = np.mean([fit.value(n, p) for n in dws], axis=0) if self.chip_seed is None else fit.value(dws[0], p)
            w_max = np.abs(prim.weights).reshape(-1, prim.weights.shape[-1]).max(axis=1)
            shift = dw * w_max.reshape(*prim.weights.shape[:-1], 1)
            out_shape = prim.weights.shape[:-1]
            q = self._params(fit, program, step, out_shape)
            return NodeMaps(wmap=(ParamAffine(shift={"weights": shift}),), post=(Affine(1.0, fit.value("offset", q)),))
        return NodeMaps()

    def describe(self):
        return {"mode": self.name, "fits": sorted(f.family for f in self.fits.values()),
                "applied_to": sorted(self.applied), "sampled_chip": self.chip_seed}
