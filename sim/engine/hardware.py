"""Hardware models: what the circuits of a target realize, as maps around the engine's kernels.

Each model turns a `Program` step into `NodeMaps` (maps on the node's first input, its trainable
parameters and its output, `sim.engine.maps`), and may map the network inputs. Models stack:
``Stack([Quantized(...), Noise(...)])`` applies each one's maps in order, so ``quantized,noise``
first rounds the weights to the target's levels and then perturbs them.

| model        | maps                                                              | derivative                  |
|--------------|-------------------------------------------------------------------|-----------------------------|
| `ideal`      | none: exact ONNX semantics                                        | exact                       |
| `quantized`  | current: 3-bit + sign levels per row, inputs rectified (input     | STE (stated on each map)    |
|              | somas); crossbar: N-bit conductances, DAC/ADC; opamp: N-bit       |                             |
|              | weights when asked (resistor ratios are continuous otherwise)     |                             |
| `noise`      | p·(1 + σ·ε), ε fresh every forward (default σ = 1e-3)             | exact                       |
| `population` | current: every synapse's mirror gain exp(σ·ε), fresh every call   | exact                       |
| `pcm`        | crossbar: Joshi et al. 2020 programming noise, drift at t, 1/f    | drift gain (noise additive) |
|              | read noise, global drift compensation                             |                             |
| `irdrop`     | crossbar: row/column wire resistance per cell, the tiles' exact   | STE (∂w_eff/∂w = 1)         |
|              | DC solution as effective weights (`circuits.spice.crossbar_tile`)  |                             |
| `chip`       | current: one chip instance (`sim.chip`): its netlist's mismatch   | inference: exact (folded);  |
|              | folded into each bank; for training, `sim.engine.chip_map` from   | training: STE (chip_map)    |
|              | the nominal weights                                               |                             |
| `early`      | current: the mirrors' nominal Early-effect drift (n·U_T/V_A per   | none: inference only        |
|              | e-fold, `sim.chip.EarlySlopes`) on the programmed levels of       |                             |
|              | `quantized`, `chip` or a measured chip (`fitted`)                 |                             |
| `fitted`     | the `kelvin fit` families on their primitives (`sim.engine.fitted`)| exact, levels by STE        |
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numba import njit

from circuits.crossbar import CrossbarArray
from circuits.current import SynapseArray
from circuits.errors import ParameterError
from sim.engine.maps import ContentMemo, NodeMaps, ParamMap, Quantize, Rectify, RelativeNoise

Array = np.ndarray
MODES = ("ideal", "quantized", "noise", "population", "pcm", "irdrop", "chip", "early", "fitted")
TARGET_MODES = {
    "opamp": {"ideal", "quantized", "noise", "fitted"},
    "current": {"ideal", "quantized", "noise", "population", "chip", "early", "fitted"},
    "crossbar": {"ideal", "quantized", "noise", "pcm", "irdrop", "fitted"},
}


CONVERTER_MIN_BITS = 2
"""A symmetric mid-tread converter (DAC, ADC) has 2^(bits−1) − 1 levels each side of zero: none at
1 bit (`Quantize`, the netlist's `Quantizer`)."""


def check_bits(name: str, bits: int | None, minimum: int = 1) -> None:
    """Bit widths are integers in ``minimum``..16 (weights 1, converters `CONVERTER_MIN_BITS`)."""
    if bits is not None and not (isinstance(bits, int) and 1 <= bits <= 16):
        raise ParameterError(f"{name}: bit widths are integers in 1..16, got {bits}")
    if bits is not None and bits < minimum:
        raise ParameterError(f"{name}: a symmetric converter needs at least {minimum} bits (levels -1, 0, +1), "
                             f"got {bits}")


class HardwareModel:
    """Base: no maps (ideal devices)."""

    name: ClassVar[str] = "ideal"

    def node_maps(self, program, step) -> NodeMaps:
        return NodeMaps()

    def input_maps(self, program, name: str) -> NodeMaps:
        return NodeMaps()

    def describe(self) -> dict[str, Any]:
        return {"mode": self.name}


class Ideal(HardwareModel):
    name = "ideal"


@dataclass(frozen=True)
class Stack(HardwareModel):
    """Several models applied in order."""

    models: tuple[HardwareModel, ...]
    name: ClassVar[str] = "stack"

    def node_maps(self, program, step):
        out = NodeMaps()
        for m in self.models:
            out = out + m.node_maps(program, step)
        return out

    def input_maps(self, program, name):
        out = NodeMaps()
        for m in self.models:
            out = out + m.input_maps(program, name)
        return out

    def describe(self):
        return {"mode": ",".join(m.name for m in self.models), "models": [m.describe() for m in self.models]}


# --- quantized --------------------------------------------------------------------------------
@dataclass(frozen=True)
class BinasLevels(ParamMap):
    """Current-mode synapse levels (Binas et al. 2016; `circuits.spice.current_blocks`' rule), per
    output row r: unit_r = max(1/m_diode, max(|w_r|, |b_r|)/7), k = clip(rint(w/unit_r), −7, 7),
    w_q = k·unit_r, and the bias the same way. Straight-through estimator: ∂w_q/∂w = 1."""

    w_unit: float
    ste: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True

    def forward(self, p, rng):
        from circuits.spice.current_cells import MAX_LEVEL
        w = p["weights"]
        w2 = w.reshape(-1, w.shape[-1])
        peak = np.abs(w2).max(axis=1)
        b = p.get("bias")
        if b is not None:
            peak = np.maximum(peak, np.abs(b.reshape(-1)))
        unit = np.maximum(self.w_unit, peak / MAX_LEVEL).astype(w.dtype)
        out = dict(p)
        out["weights"] = (np.clip(np.rint(w2 / unit[:, None]), -MAX_LEVEL, MAX_LEVEL) * unit[:, None]).reshape(w.shape)
        if b is not None:
            out["bias"] = (np.clip(np.rint(b.reshape(-1) / unit), -MAX_LEVEL, MAX_LEVEL) * unit).reshape(b.shape)
        return out, None

    def backward(self, saved, g):
        return dict(g)


@dataclass(frozen=True)
class ConductanceLevels(ParamMap):
    """N-bit conductances per device of a G+/G− pair, column-scaled (Joshi et al. 2020 mapping,
    `circuits.spice.crossbar_blocks.ConductanceMap`): with w_max the column's largest |w| (the bias
    row counted as b/x_fs), w takes the values k·w_max/(2^N − 1), |k| ≤ 2^N − 1. For the op-amp
    target the same rule stands for N-bit programmable resistor ratios. STE: ∂w_q/∂w = 1."""

    bits: int
    x_fs: float = 1.0
    ste: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True

    def forward(self, p, rng):
        levels = 2 ** self.bits - 1
        w = p["weights"]
        w2 = w.reshape(-1, w.shape[-1])
        peak = np.abs(w2).max(axis=1)
        b = p.get("bias")
        if b is not None:
            peak = np.maximum(peak, np.abs(b.reshape(-1)) / self.x_fs)
        step = (np.where(peak > 0, peak, 1.0) / levels).astype(w.dtype)
        out = dict(p)
        out["weights"] = (np.rint(w2 / step[:, None]) * step[:, None]).reshape(w.shape)
        if b is not None:
            bs = step * w.dtype.type(self.x_fs)
            out["bias"] = (np.rint(b.reshape(-1) / bs) * bs).reshape(b.shape)
        return out, None

    def backward(self, saved, g):
        return dict(g)


@dataclass(frozen=True)
class Quantized(HardwareModel):
    """The target's realizable values (see the module table).

    ``dac_bits``/``adc_bits`` apply to crossbar tiles: each layer's DAC and ADC full scales are
    calibrated on the first batch the program sees (largest |input| and |output|), unless
    ``x_fs``/``y_fs`` fix them.
    """

    target: str
    w_unit: float = 0.25
    weight_bits: int | None = None
    dac_bits: int | None = 8
    adc_bits: int | None = 8
    x_fs: float | None = None
    y_fs: float | None = None
    name: ClassVar[str] = "quantized"

    def __post_init__(self) -> None:
        for n in ("weight_bits", "dac_bits", "adc_bits"):
            check_bits(n, getattr(self, n), 1 if n == "weight_bits" else CONVERTER_MIN_BITS)

    def node_maps(self, program, step):
        prim = getattr(step.node, "primitive", None)
        if self.target == "current" and isinstance(prim, SynapseArray) and "weights" in prim.parameters():
            return NodeMaps(wmap=(BinasLevels(self.w_unit),))
        if self.target == "crossbar" and isinstance(prim, CrossbarArray):
            pre = () if self.dac_bits is None else (Quantize(self.dac_bits, self.x_fs),)
            post = () if self.adc_bits is None else (Quantize(self.adc_bits, self.y_fs),)
            wmap = () if self.weight_bits is None else (ConductanceLevels(self.weight_bits),)
            return NodeMaps(pre=pre, wmap=wmap, post=post)
        if self.target == "opamp" and self.weight_bits is not None and prim is not None and "weights" in prim.parameters():
            return NodeMaps(wmap=(ConductanceLevels(self.weight_bits),))
        return NodeMaps()

    def input_maps(self, program, name):
        return NodeMaps(pre=(Rectify(),)) if self.target == "current" else NodeMaps()

    def describe(self):
        return {"mode": self.name, "target": self.target, "weight_bits": self.weight_bits,
                "dac_bits": self.dac_bits, "adc_bits": self.adc_bits}


# --- noise and mismatch -----------------------------------------------------------------------
@dataclass(frozen=True)
class Noise(HardwareModel):
    """A relative Gaussian error on every trainable parameter, fresh on each forward pass."""

    rel: float = 1e-3
    name: ClassVar[str] = "noise"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rel) and self.rel >= 0):
            raise ParameterError(f"--noise: a relative standard deviation ≥ 0, got {self.rel}")

    def node_maps(self, program, step):
        return NodeMaps(wmap=(RelativeNoise(self.rel),)) if step.params else NodeMaps()

    def describe(self):
        return {"mode": self.name, "rel": self.rel}


@dataclass(frozen=True)
class MirrorGains(ParamMap):
    """Each synapse's current is copied by mirrors of its own: w → w·exp(σ·ε), ε ~ N(0, 1) drawn
    afresh on every call (a new chip from the population each time). Weak inversion makes a
    threshold mismatch ΔVt a gain exp(ΔVt/(n·U_T)) (Binas et al. 2016, Eq. 2), so
    σ = σ(ΔVt of a branch pair)/(n·U_T) (`CellSizing.report`'s ``sigma_branch_rel``). Exact
    derivative: the drawn gain."""

    sigma: float

    def forward(self, p, rng):
        if rng is None:
            raise ValueError("population needs a random generator")
        gains = {k: np.exp(self.sigma * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in p.items()}
        return {k: v * gains[k] for k, v in p.items()}, gains

    def backward(self, saved, g):
        return {k: v * saved[k] for k, v in g.items()}


@dataclass(frozen=True)
class Population(HardwareModel):
    """Fresh mismatch on every call: robustness across chips (current target)."""

    sigma: float
    name: ClassVar[str] = "population"

    def node_maps(self, program, step):
        prim = getattr(step.node, "primitive", None)
        if isinstance(prim, SynapseArray) and step.params:
            return NodeMaps(wmap=(MirrorGains(self.sigma),))
        return NodeMaps()

    def describe(self):
        return {"mode": self.name, "sigma_rel": self.sigma}


# --- PCM --------------------------------------------------------------------------------------
T0_S = 20.0  # drift reference time (Joshi et al. 2020)
T_READ_S = 250e-9


@njit(cache=True, nogil=True, error_model="numpy")
def _pcm_programmed(w, eps, z, log_t, g_max, w_max, now, q_s, drift):  # pragma: no cover - compiled
    """The deterministic part of `PcmDevices.forward`, per device: the programmed conductance after
    drift (g_max units), its read-noise scale Q_s and its drift factor; per row w_max. One fused pass
    (instead of ~20 NumPy passes per layer), two transcendentals per device: ln(g/g_max) serves both
    the drift exponent's statistics and Q_s's power law, g_T^0.65 = g_max^0.65·exp(0.65·ln(g/g_max))."""
    rows, cols = w.shape
    g_max_065 = g_max ** 0.65
    for r in range(rows):
        wm = 0.0
        for c in range(cols):
            wm = max(wm, abs(w[r, c]))
        w_max[r] = wm if wm > 0.0 else 1.0
        for c in range(cols):
            gn = abs(w[r, c]) / w_max[r]
            gt = gn * g_max
            prog = 0.0
            if gt > 0.0:
                prog = max(gt + max(-1.1731 * gt * gt + 1.9650 * gt + 0.2635, 0.0) * eps[r, c], 0.0)
            lg = np.log(max(gn, 1e-12))
            mu = min(max(-0.0155 * lg + 0.0244, 0.049), 0.1)
            sd = min(max(-0.0125 * lg - 0.0059, 0.008), 0.045)
            d = np.exp(-abs(mu + sd * z[r, c]) * log_t)
            now[r, c] = prog * d
            drift[r, c] = d
            q_s[r, c] = min(0.0088 / (g_max_065 * np.exp(0.65 * lg)), 0.2) if gt > 0.0 else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def _pcm_read(w, w_max, now, q_s, drift, rn, read_coef, compensate, g_max, out, gain):  # pragma: no cover
    """One read of the programmed devices: 1/f noise now·Q_s·coef·ε, the row's drift compensation
    Σ g_prog / Σ g(t) (Σ g_prog = Σ now/drift), and the signed weights."""
    rows, cols = w.shape
    for r in range(rows):
        num = 0.0
        den = 0.0
        for c in range(cols):
            g = now[r, c]
            if drift[r, c] > 0.0:
                num += g / drift[r, c]
            if read_coef > 0.0:
                g = max(g + g * q_s[r, c] * read_coef * rn[r, c], 0.0)
            out[r, c] = g
            den += g
        scale = num / den if compensate and den > 0.0 else 1.0
        for c in range(cols):
            sign = 1.0 if w[r, c] > 0 else (-1.0 if w[r, c] < 0 else 0.0)
            out[r, c] = sign * out[r, c] / g_max * w_max[r] * scale
            gain[r, c] = drift[r, c] * scale


@dataclass
class PcmDevices(ParamMap):
    """One programmed crossbar layer read at time t (Joshi et al. 2020; `../shared/SCIENCE.md`).

    Per column the weights map to g_T = |w|/w_max·g_max on the G+ or G− device. Programming adds
    g_prog = g_T + σ_prog(g_T)·ε (drawn once per programming, keyed by the seed and node), drift
    gives g(t) = g_prog·(t/t0)^−ν with ν ~ |N(μ_ν, σ_ν)|, and each read adds 1/f noise
    σ = g(t)·Q_s·√ln((t + t_r)/(2·t_r)), Q_s = min(0.0088/g_T^0.65, 0.2) (g_T in µS), fresh per
    forward. With compensation the layer's outputs are scaled by Σ|g_prog|/Σ|g(t)| (the ratio a
    calibration input measures, as IBM's global drift compensation).
    Estimator (stated, like a straight-through one): ∂w_eff/∂w = the drift and compensation gain,
    with the programming and read noise held fixed, as noise-injection training treats them.
    The programmed, drifted state is kept until the weights change, so a read costs one normal draw
    and no transcendental per device (ResNet-18: 0.27 s instead of 0.8 s per batch of 8).
    """

    t_s: float
    compensate: bool
    key: np.random.SeedSequence
    g_max_us: float = 25.0
    _prog: dict = field(default_factory=dict)
    _state: ContentMemo = field(default_factory=ContentMemo)
    ste: ClassVar[bool] = True

    def _programmed(self, w: Array) -> tuple[Array, Array]:
        """The programming-noise and drift-exponent normals (ε, z) of this layer, drawn once from the key."""
        ident = (w.shape, w.dtype.str)
        if ident not in self._prog:
            rng = np.random.default_rng(self.key)
            self._prog[ident] = tuple(rng.standard_normal(w.shape).astype(w.dtype) for _ in range(2))
        return self._prog[ident]

    def _drifted(self, w2: Array) -> tuple[Array, ...]:
        """(w_max, now, Q_s, drift) of ``w2`` as programmed and drifted to t."""
        eps, z = self._programmed(w2)
        state = (np.empty(w2.shape[0]), np.empty_like(w2), np.empty_like(w2), np.empty_like(w2))
        _pcm_programmed(w2, eps, z, math.log(max(self.t_s, T0_S) / T0_S), self.g_max_us, *state)
        return state

    def forward(self, p, rng):
        w = p["weights"]
        w2 = np.ascontiguousarray(w.reshape(-1, w.shape[-1]))
        # kept while the weights stay the same: a re-read of the same devices draws only read noise
        w_max, now, q_s, drift = self._state.get({"w": w2}, lambda: self._drifted(w2))
        read = rng is not None and self.t_s > 0
        rn = rng.standard_normal(w2.shape, dtype=w2.dtype) if read else now
        coef = math.sqrt(math.log((self.t_s + T_READ_S) / (2 * T_READ_S))) if read else 0.0
        out, gain = np.empty_like(w2), np.empty_like(w2)
        _pcm_read(w2, w_max, now, q_s, drift, rn, coef, self.compensate, self.g_max_us, out, gain)
        res = dict(p)
        res["weights"] = out.reshape(w.shape)
        return res, gain.reshape(w.shape)

    def backward(self, saved, g):
        out = dict(g)
        out["weights"] = g["weights"] * saved
        return out


@dataclass(frozen=True)
class Pcm(HardwareModel):
    """PCM crossbar tiles at inference time ``t_s`` after programming (crossbar target)."""

    t_s: float = 1.0
    compensate: bool = True
    seed: int = 0
    name: ClassVar[str] = "pcm"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.t_s) and self.t_s >= 0):
            raise ParameterError(f"--pcm-time: seconds after programming, ≥ 0, got {self.t_s}")

    def node_maps(self, program, step):
        prim = getattr(step.node, "primitive", None)
        if isinstance(prim, CrossbarArray):
            key = np.random.SeedSequence([self.seed, program.layer_key(step)])
            return NodeMaps(wmap=(PcmDevices(self.t_s, self.compensate, key, prim.g_max_us),))
        return NodeMaps()

    def describe(self):
        return {"mode": self.name, "t_s": self.t_s, "drift_compensation": self.compensate, "seed": self.seed}


# --- wire resistance ---------------------------------------------------------------------------
@dataclass
class WiredTiles(ParamMap):
    """One crossbar layer on resistive wires: (W, b) → the tiles' effective (W_eff, b_eff)
    (`circuits.spice.crossbar_tile.wired_weights`, exact for the mesh). The solution depends only on
    the programmed weights, so it is cached per weight array. Estimator (stated): ∂w_eff/∂w = 1, a
    straight-through estimator; IR drop is a near-identity, weight-dependent attenuation."""

    prim: CrossbarArray
    wires: Any
    _wired: ContentMemo = field(default_factory=ContentMemo)
    ste: ClassVar[bool] = True

    def forward(self, p, rng):
        from dataclasses import replace

        from circuits.spice.crossbar_tile import wired_weights

        w, b = p["weights"], p.get("bias")

        def solve():
            bias = None if b is None else np.asarray(b, np.float64)
            return wired_weights(replace(self.prim, weights=np.asarray(w, np.float64), bias=bias), self.wires)

        w_eff, b_eff = self._wired.get({"w": w, "b": b}, solve)
        out = dict(p)
        out["weights"] = w_eff.astype(w.dtype)
        if b is not None:
            out["bias"] = b_eff.astype(b.dtype)
        return out, None

    def backward(self, saved, g):
        return dict(g)


@dataclass(frozen=True)
class IrDrop(HardwareModel):
    """Crossbar tiles whose row and column wires have ``wire_ohm`` per cell pitch (IR drop)."""

    wire_ohm: float
    name: ClassVar[str] = "irdrop"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.wire_ohm) and self.wire_ohm >= 0):
            raise ParameterError(f"--wire-ohm: wire resistance per cell, ≥ 0 Ω, got {self.wire_ohm}")

    def node_maps(self, program, step):
        from circuits.ir_drop import Wires

        prim = getattr(step.node, "primitive", None)
        if isinstance(prim, CrossbarArray):
            return NodeMaps(wmap=(WiredTiles(prim, Wires.uniform(self.wire_ohm)),))
        return NodeMaps()

    def describe(self):
        return {"mode": self.name, "wire_ohm": self.wire_ohm}


def mode_list(spec: str | Sequence[str]) -> list[str]:
    """``"quantized,chip"`` → ["quantized", "chip"], checked against the known modes."""
    modes = [m.strip() for m in (spec.split(",") if isinstance(spec, str) else spec) if m.strip()]
    if not modes:
        raise ParameterError("--hardware: give at least one mode")
    for m in modes:
        if m not in MODES:
            raise ParameterError(f"--hardware: unknown mode {m!r}; choose from {', '.join(MODES)}")
    if len(set(modes)) != len(modes):
        raise ParameterError(f"--hardware: a mode is listed twice in {','.join(modes)}")
    return modes


def check_target_modes(modes: Sequence[str], target: str) -> None:
    allowed = TARGET_MODES.get(target, {"ideal"})
    bad = [m for m in modes if m not in allowed]
    if bad:
        raise ParameterError(f"--hardware {','.join(bad)}: not available on target {target!r}; "
                             f"it has {', '.join(sorted(allowed))}")


__all__ = ["MODES", "HardwareModel", "Ideal", "IrDrop", "Noise", "Pcm", "Population", "Quantized", "Stack",
           "check_target_modes", "mode_list"]
