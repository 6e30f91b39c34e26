"""IBM-style crossbar readout: PWM input pulses, charge integrated on a capacitor, ADC code out.

One column (or a slice of columns sharing rows) of a PCM tile read the way Ambrogio et al.
(Nature 2023) read theirs: each input is a pulse whose *duration* carries the value, the
column's current is integrated as charge, and the charge is converted to a digital code.

Design equations (model units: inputs |xᵢ| ≤ x_fs, output y, ADC full scale y_fs):

- DAC, in time: kᵢ = clip(floor(xᵢ/Δ_x + ½), −L, L) with L = 2^(bits−1) − 1 and Δ_x = x_fs/L, the
  `Quantizer` rule of `circuits.spice.crossbar_blocks`, so Q_dac(xᵢ) = kᵢ·Δ_x. Input i is a pulse of
  duration tᵢ = |kᵢ|·t_LSB, left-aligned in a window T_pwm = L·t_LSB (8 bits: sign + 127 LSBs;
  default t_LSB = 0.5 ns, T_pwm = 63.5 ns). Its edges are ramps of t_edge each, so its area is
  exactly V_read·tᵢ.
- Signed inputs: every weight has a G+ device on row rᵢ⁺ and a G− device on row rᵢ⁻, both ending
  on one column node. Row rᵢ⁺ is pulsed to +sign(kᵢ)·V_read and rᵢ⁻ to −sign(kᵢ)·V_read, so the
  column collects (G+ᵢ − G−ᵢ)·sign(kᵢ)·V_read during tᵢ. The bias row b is one more weight
  b/x_fs pulsed at +V_read for all of T_pwm (the chip's bias row, as `CrossbarColumnBlock`).
- Conductances (Joshi et al., Nat. Commun. 2020; `ConductanceMap`): G+ − G− = n·(g_max − g_min)·w/w_max
  (n devices per side), w_max = max |w| over the column's rows.
- One op-amp integrator holds the column at virtual ground (Horowitz & Hill §4.2.6):
      V_int(T) = −(1/C_int)·Σᵢ (G+ᵢ − G−ᵢ)·sign(kᵢ)·V_read·tᵢ
               = −V_read·t_LSB·n·g_span/(w_max·Δ_x·C_int) · s,   s = Σ wᵢ·Q_dac(xᵢ) + b.
  Full scale y_fs maps to V_out,fs: a_out = V_out,fs/y_fs and
      C_ideal = V_read·T_pwm·n·g_span·y_fs / (w_max·x_fs·V_out,fs).
- Finite gain-bandwidth: with A(s) = ω_t/s the virtual ground moves by −s·V_int/ω_t, and every device
  on the column (total G_tot) leaks that into the charge; the inverting closed-loop gain
  −(Z_f/Z_i)/(1 + (1 + Z_f/Z_i)/A) with Z_f = 1/(sC), Z_i = 1/G_tot (Sedra & Smith, *Microelectronic
  Circuits*, ch. 2) gives a final charge over C_int + G_tot/ω_t. The design therefore trims
      C_int = C_ideal − G_tot/ω_t,    ω_t = 2π·GBW
  (on silicon, the per-column gain calibration IBM performs), and refuses a column with
  G_tot/ω_t ≥ C_ideal/2. What remains is the DC-gain leak G_tot/(A_0·C_int) over the window
  (≈ (Σ|w|·x_fs/y_fs)·V_out,fs/(2·A_0·V_read) relative, 2.5e-5 per unit of that ratio at A_0 = 1e5).
- The accuracy depends on ω_t·T_pwm only (time-scaling a circuit changes nothing else), so the
  default readout op-amp is the nominal card (`OpampMacro.default`) time-scaled ×2000: GBW 2 GHz
  and slew 2 V/ns, which give a 0.5 ns LSB what 1 µs gives the nominal 1 MHz part. An assumed
  on-chip integrator OTA class, not a sourced part.
- ADC: after the window and a settle time the integrator is sampled; the behavioral `Quantizer`
  (bits, V_out,fs) digitizes −V_int, saturating at ±V_out,fs, so y = Q_adc(s) with y_fs saturation.
- Reset: between windows a switch R_reset (a V(rst)-driven conductance) shorts C_int for
  20·R_reset·C_int (R_reset·C_int = T_pwm/50).

Benches (timing, the transient deck of a slice of columns, reading and judging it) are in
`circuits.spice.crossbar_pwm_bench`. The ideal function is the engine's crossbar kernel under ``quantized`` (`sim.engine.maps.Quantize` as
DAC and ADC): y = Q_adc(Σ wᵢ·Q_dac(xᵢ) + b), clipped at ±y_fs by the ADC's levels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from circuits import ideal as ideal_fn
from circuits.base import as_finite_array
from circuits.errors import ParameterError
from circuits.spice.crossbar_blocks import V_READ_MAX_V, ConductanceMap, Quantizer
from circuits.spice.netlist import Element, bsource, capacitor, fmt, instance, resistor, vcvs
from circuits.spice.opamp_macro import OpampMacro

_log = logging.getLogger(__name__)

T_LSB_S = 0.5e-9  # PWM time step: an 8-bit signed input spans 127 LSBs = 63.5 ns
TIME_SCALE = 2000.0  # readout op-amp = nominal card ×2000 faster (1 µs there ↔ 0.5 ns here)
RST_NODE = "rst"


def readout_opamp(time_scale: float = TIME_SCALE) -> OpampMacro:
    """The integrator's op-amp: the nominal macro card with GBW and slew rate × ``time_scale``."""
    nom = OpampMacro.default()
    return nom.with_(gbw_hz=nom.gbw_hz * time_scale, slew_v_per_s=nom.slew_v_per_s * time_scale,
                     name="opamp_int")


def codes(q: Quantizer, v: np.ndarray) -> np.ndarray:
    """Integer codes of `Quantizer` ``q``'s rule: clip(floor(v/Δ + ½), −L, L) (its B-source, numerically)."""
    return np.clip(np.floor(np.asarray(v, np.float64) / q.step_v + 0.5), -q.levels, q.levels)


def quantized(q: Quantizer, v: np.ndarray) -> np.ndarray:
    """q(v) = Δ·codes(v)."""
    return codes(q, v) * q.step_v


def as_windows(points: np.ndarray, n_inputs: int) -> np.ndarray:
    """``points`` as (windows, n_inputs) float64; a 1-D array is one window."""
    pts = np.asarray(points, np.float64)
    pts = pts[None, :] if pts.ndim == 1 else pts
    if pts.ndim != 2 or pts.shape[1] != n_inputs:
        raise ParameterError(f"points: shape {pts.shape} for {n_inputs} inputs per window")
    return pts


@dataclass(frozen=True, slots=True, eq=False)
class PwmColumnBlock:
    """One crossbar column read by PWM pulses into an op-amp integrator and an ADC (module docstring)."""

    weights: np.ndarray  # (rows,) model units
    bias: float | None = None
    x_fs: float = 1.0
    v_read_v: float = V_READ_MAX_V
    g_max_s: float = 25e-6
    g_min_s: float = 0.0
    devices_per_side: int = 1
    v_out_fs_v: float = 1.0
    y_fs: float | None = None  # None: worst case Σ|wᵢ|·x_fs + |b|
    dac_bits: int = 8
    adc_bits: int = 8
    t_lsb_s: float = T_LSB_S
    opamp: OpampMacro = field(default_factory=readout_opamp)
    name: str = "pwm_col"

    def __post_init__(self) -> None:
        w = as_finite_array("weights", self.weights, ndim=(1,)).astype(np.float64)
        if w.size < 1 and self.bias is None:
            raise ParameterError("PwmColumnBlock.weights: a column needs at least one row (or a bias row)")
        object.__setattr__(self, "weights", w)
        if self.bias is not None:
            object.__setattr__(self, "bias", float(as_finite_array("bias", self.bias, ndim=(0,))))
        for pname in ("x_fs", "v_read_v", "v_out_fs_v", "y_fs", "t_lsb_s"):
            v = getattr(self, pname)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ParameterError(f"PwmColumnBlock.{pname}: must be a finite number > 0, got {v}")
        if self.v_read_v > 1.0:
            raise ParameterError(f"PwmColumnBlock.v_read_v: {self.v_read_v} V exceeds 1 V (PCM read disturb)")
        if self.devices_per_side not in (1, 2):
            raise ParameterError(f"PwmColumnBlock.devices_per_side: 1 or 2, got {self.devices_per_side}")
        Quantizer(self.dac_bits, 1.0), Quantizer(self.adc_bits, 1.0)  # validates the bit counts
        self.mapping()
        if self.g_total_s / self.omega_t >= 0.5 * self.c_ideal_f:
            raise ParameterError(
                f"PwmColumnBlock.t_lsb_s/opamp: the column's {self.g_total_s:.3g} S load the integrator more "
                f"than its capacitor absorbs (G_tot/ω_t = {self.g_total_s / self.omega_t:.3g} F ≥ C_ideal/2 = "
                f"{self.c_ideal_f / 2:.3g} F); use a longer t_lsb_s, a faster op-amp or a larger y_fs")

    # --- design equations -------------------------------------------------------------
    def row_weights(self) -> np.ndarray:
        """Weights of every row, the bias row last (w_b = b / x_fs)."""
        return self.weights if self.bias is None else np.append(self.weights, self.bias / self.x_fs)

    def mapping(self) -> ConductanceMap:
        w_max = float(np.max(np.abs(self.row_weights()))) or 1.0
        return ConductanceMap(w_max, self.g_max_s, self.g_min_s)

    def conductances(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-device (G+, G−) of every row in siemens (bias row last)."""
        return self.mapping().conductances(self.row_weights())

    @property
    def g_total_s(self) -> float:
        """Every device on the column node: G_tot = n·Σ(G+ᵢ + G−ᵢ)."""
        g_pos, g_neg = self.conductances()
        return float(self.devices_per_side * (np.sum(g_pos) + np.sum(g_neg)))

    def dac(self) -> Quantizer:
        """The input DAC in model units (full scale x_fs)."""
        return Quantizer(self.dac_bits, self.x_fs)

    def adc(self) -> Quantizer:
        """The ADC on the integrator's (sign-flipped) output voltage, full scale V_out,fs."""
        return Quantizer(self.adc_bits, self.v_out_fs_v)

    def full_scale(self) -> float:
        """y_fs, by default Σ|wᵢ|·x_fs + |b| (no input can saturate the ADC)."""
        if self.y_fs is not None:
            return self.y_fs
        return float(np.sum(np.abs(self.row_weights())) * self.x_fs) or 1.0

    def lsb(self) -> float:
        """One ADC step in model units: y_fs / L."""
        return self.full_scale() / Quantizer(self.adc_bits, 1.0).levels

    @property
    def out_volts_per_unit(self) -> float:
        """a_out = V_out,fs / y_fs."""
        return self.v_out_fs_v / self.full_scale()

    @property
    def t_pwm_s(self) -> float:
        """T_pwm = L_dac·t_LSB."""
        return self.dac().levels * self.t_lsb_s

    @property
    def omega_t(self) -> float:
        return 2 * math.pi * self.opamp.gbw_hz

    @property
    def c_ideal_f(self) -> float:
        """C_ideal = V_read·T_pwm·n·g_span·y_fs / (w_max·x_fs·V_out,fs)."""
        m = self.mapping()
        return (self.v_read_v * self.t_pwm_s * self.devices_per_side * m.g_span_s * self.full_scale()
                / (m.w_max * self.x_fs * self.v_out_fs_v))

    @property
    def c_int_f(self) -> float:
        """C_int = C_ideal − G_tot/ω_t (the finite-GBW trim)."""
        return self.c_ideal_f - self.g_total_s / self.omega_t

    @property
    def r_reset_ohm(self) -> float:
        """R_reset·C_int = T_pwm/50."""
        return self.t_pwm_s / (50 * self.c_int_f)

    def n_inputs(self) -> int:
        return int(self.weights.size)

    def input_range(self) -> tuple[float, float]:
        return (-self.x_fs, self.x_fs)

    # --- ideal function -----------------------------------------------------------------
    def ideal_sum(self, points: np.ndarray) -> np.ndarray:
        """s = Σ wᵢ·Q_dac(xᵢ) + b (rows of ``points``), before the ADC: shape (n, 1)."""
        x = quantized(self.dac(), as_windows(points, self.n_inputs()))
        if self.n_inputs() == 0:  # a tile holding only the layer's bias row
            return np.full((len(x), 1), self.bias)
        b = None if self.bias is None else np.asarray([self.bias])
        return ideal_fn.dense(x, self.weights[None, :], b).reshape(-1, 1)

    def ideal(self, points: np.ndarray) -> np.ndarray:
        """y = Q_adc(s), saturating at ±y_fs: the engine's quantized crossbar kernel."""
        return quantized(Quantizer(self.adc_bits, self.full_scale()), self.ideal_sum(points))

    # --- netlist ------------------------------------------------------------------------
    def elements(self, rows_p: Sequence[str], rows_n: Sequence[str], prefix: str) -> list[Element]:
        """Devices from the row nodes (bias row last) onto ``<prefix>col``, the integrator with its
        reset switch onto ``<prefix>int``, the ADC onto ``<prefix>adc`` (volts, = a_out·y)."""
        g_pos, g_neg = self.conductances()
        if len(rows_p) != g_pos.size or len(rows_n) != g_pos.size:
            raise ParameterError(f"{self.name}: {len(rows_p)} row nodes for {g_pos.size} conductance rows")
        p = prefix
        col, out = f"{p}col", f"{p}int"
        els: list[Element] = []
        for i in range(g_pos.size):
            for k in range(self.devices_per_side):
                if g_pos[i] > 0:
                    els.append(resistor(f"{p}gp_{i}_{k}", rows_p[i], col, 1.0 / g_pos[i]))
                if g_neg[i] > 0:
                    els.append(resistor(f"{p}gn_{i}_{k}", rows_n[i], col, 1.0 / g_neg[i]))
        ctl = f"V({RST_NODE})"
        els += [
            instance(f"{p}amp", self.opamp.name, ("0", col, out)),
            capacitor(f"{p}cint", col, out, self.c_int_f),
            bsource(f"{p}rst", col, out, f"{ctl}*(V({col})-V({out}))/{fmt(self.r_reset_ohm)}", current=True),
            vcvs(f"{p}neg", f"{p}pos", "0", out, "0", -1.0),  # the ADC reads +a_out·s
            self.adc().source(f"{p}adc", f"{p}adc", f"{p}pos"),
        ]
        return els


__all__ = ["PwmColumnBlock", "as_windows", "codes", "quantized", "readout_opamp"]
