"""Benches for `circuits.spice.crossbar_pwm` columns: the PWM timing, a transient deck for a slice of
columns on shared rows, reading it back, and judging it against the ideal function.

Each input vector gets one window: reset (the integrator shorted), the PWM pulses (left-aligned,
|k|·t_LSB long), a settle time, then the sample, where the integrator and the ADC are read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from circuits.errors import ParameterError
from circuits.spice.crossbar_pwm import RST_NODE, PwmColumnBlock, as_windows, codes
from circuits.spice.netlist import Deck, vcvs, vsource

_log = logging.getLogger(__name__)

EDGE_FRACTION = 0.05  # pulse edge ramp, in LSBs


@dataclass(frozen=True, slots=True)
class PwmSchedule:
    """When each input vector's window runs in a transient: reset, pulses, settle, sample."""

    t_lsb_s: float
    levels: int
    t_reset_s: float
    t_settle_s: float

    @property
    def t_pwm_s(self) -> float:
        return self.levels * self.t_lsb_s

    @property
    def t_edge_s(self) -> float:
        return EDGE_FRACTION * self.t_lsb_s

    @property
    def period_s(self) -> float:
        return self.t_reset_s + self.t_pwm_s + self.t_edge_s + self.t_settle_s

    def window_start_s(self, j: int) -> float:
        return j * self.period_s + self.t_reset_s

    def sample_s(self, j: int) -> float:
        return (j + 1) * self.period_s

    def pulses(self, k: np.ndarray, amplitude_v: float) -> list[tuple[float, float]]:
        """PWL corners: window j carries a pulse of |k[j]| LSBs at sign(k[j])·amplitude (area exact)."""
        pts = [(0.0, 0.0)]
        e = self.t_edge_s
        for j, kj in enumerate(np.asarray(k, np.float64)):
            if kj == 0:
                continue
            t0, v = self.window_start_s(j), float(np.sign(kj)) * amplitude_v
            t1 = t0 + abs(kj) * self.t_lsb_s
            pts += [(t0, 0.0), (t0 + e, v), (t1, v), (t1 + e, 0.0)]
        return pts

    def reset(self, n: int) -> list[tuple[float, float]]:
        """V(rst): 1 V outside the windows, 0 V from just before each window until its sample."""
        e = self.t_edge_s
        pts = [(0.0, 1.0)]
        for j in range(n):
            t0 = self.window_start_s(j)
            pts += [(t0 - 2 * e, 1.0), (t0 - e, 0.0), (self.sample_s(j), 0.0), (self.sample_s(j) + e, 1.0)]
        return pts


def schedule(columns: Sequence[PwmColumnBlock]) -> PwmSchedule:
    """The shared timing: reset 20·R_reset·C_int = 0.4·T_pwm, settle 0.1·T_pwm + 40/ω_t."""
    first = columns[0]
    t_pwm = first.t_pwm_s
    slowest = min(c.omega_t for c in columns)
    return PwmSchedule(first.t_lsb_s, first.dac().levels, 0.4 * t_pwm, 0.1 * t_pwm + 40.0 / slowest)


def slice_deck(columns: Sequence[PwmColumnBlock], points: np.ndarray, title: str = "pwm crossbar slice") -> Deck:
    """A transient deck: ``columns`` on shared PWM row drivers, one window per row of ``points``.

    The rows are ideal sources and each column sits at its own virtual ground, so columns do not
    interact: a slice of a tile computes exactly what those columns compute in the whole tile.
    """
    if not columns:
        raise ParameterError("columns: a slice needs at least one column")
    first = columns[0]

    def shared(c: PwmColumnBlock) -> tuple:
        return (c.n_inputs(), c.bias is None, c.x_fs, c.v_read_v, c.dac_bits, c.t_lsb_s, c.opamp)

    for c in columns[1:]:
        if shared(c) != shared(first):
            raise ParameterError(f"columns: {c.name} differs from {first.name} in rows, bias row, input "
                                 "range, read voltage, DAC, LSB or op-amp")
    pts = as_windows(points, first.n_inputs())
    sch = schedule(columns)
    k = codes(first.dac(), pts)  # (n, rows)
    deck = Deck(title, subckts=[first.opamp.subckt()])
    rows_p, rows_n = [], []
    for i in range(first.n_inputs()):
        rows_p.append(f"rp_{i}")
        rows_n.append(f"rn_{i}")
        deck.elements += [vsource(f"x_{i}", f"rp_{i}", "0", 0.0, pwl=sch.pulses(k[:, i], first.v_read_v)),
                          vcvs(f"xn_{i}", f"rn_{i}", "0", f"rp_{i}", "0", -1.0)]
    if first.bias is not None:
        full = np.full(len(pts), first.dac().levels, dtype=np.float64)
        deck.elements += [vsource("bias_p", "rp_bias", "0", 0.0, pwl=sch.pulses(full, first.v_read_v)),
                          vcvs("bias_n", "rn_bias", "0", "rp_bias", "0", -1.0)]
        rows_p.append("rp_bias")
        rows_n.append("rn_bias")
    deck.elements.append(vsource("rst", RST_NODE, "0", 1.0, pwl=sch.reset(len(pts))))
    for j, c in enumerate(columns):
        deck.elements += c.elements(rows_p, rows_n, prefix=f"c{j}_")
    deck.options["reltol"] = 1e-5
    _log.debug("pwm slice: %d rows x %d columns, %d windows, %d cards", len(rows_p), len(columns),
               len(pts), len(deck.elements))
    return deck.tran(sch.t_lsb_s, sch.sample_s(len(pts) - 1) + sch.t_edge_s)


@dataclass(frozen=True, slots=True)
class SliceReading:
    """What a slice transient gave, in model units, (windows, columns): the integrator's analog value
    −V_int/a_out and the ADC's code value V_adc/a_out, both sampled at the end of each window."""

    analog: np.ndarray
    code: np.ndarray


def read_slice(columns: Sequence[PwmColumnBlock], vectors: Mapping[str, np.ndarray], n_points: int) -> SliceReading:
    """Sample each column's integrator and ADC at the end of each window (`slice_deck`'s vectors)."""
    sch = schedule(columns)
    t = np.asarray(vectors["time"]).real
    ts = np.array([sch.sample_s(j) for j in range(n_points)])
    analog = np.empty((n_points, len(columns)))
    code = np.empty_like(analog)
    for j, c in enumerate(columns):
        a = c.out_volts_per_unit
        analog[:, j] = -np.interp(ts, t, np.asarray(vectors[f"c{j}_int"]).real) / a
        code[:, j] = np.interp(ts, t, np.asarray(vectors[f"c{j}_adc"]).real) / a
    return SliceReading(analog, code)


ANALOG_BUDGET_PCT_FS = 0.1
"""The analog path's error budget (integrator sample vs s), % of y_fs. The design's main residual is
the A_0 leak, (Σ|w|·x_fs/y_fs)·2.5e-5 of s at the defaults: a 512-row column whose ADC range is
its largest output over random inputs has Σ|w|·x_fs/y_fs ≈ 10–30, so 0.03–0.08 % FS."""


@dataclass(frozen=True, slots=True)
class SliceErrors:
    """A slice's errors against its ideal function (% of y_fs and in ADC LSBs) and the verdict.

    - ``code_*``: the ADC's output against y = Q_adc(s) (the ideal function, the engine's kernel);
    - ``analog_*``: the sampled integrator against s (before the ADC, not clipped);
    - ``bound_max_lsb``: max |code − clip(s, ±y_fs)|, which a correct converter keeps within
      ½ LSB + the analog error. Passed: analog within ``ANALOG_BUDGET_PCT_FS`` and the bound within
      ½ LSB + that budget, i.e. every code equals the ideal one except within the budget of a
      decision threshold, where it may be one LSB off.
    """

    windows: int
    columns: int
    code_max_pct_fs: float
    code_rms_pct_fs: float
    code_max_lsb: float
    code_rms_lsb: float
    codes_equal: float
    analog_max_pct_fs: float
    analog_rms_pct_fs: float
    analog_max_lsb: float
    bound_max_lsb: float
    analog_budget_pct_fs: float
    bound_tolerance_lsb: float
    passed: bool


def slice_errors(columns: Sequence[PwmColumnBlock], points: np.ndarray, reading: SliceReading,
                 analog_budget_pct_fs: float = ANALOG_BUDGET_PCT_FS) -> SliceErrors:
    """Compare a slice's reading with its columns' ideal functions."""
    pts = as_windows(points, columns[0].n_inputs())
    fs = np.array([c.full_scale() for c in columns])
    lsb = np.array([c.lsb() for c in columns])
    s = np.concatenate([c.ideal_sum(pts) for c in columns], axis=1)
    y = np.concatenate([c.ideal(pts) for c in columns], axis=1)
    code_err, analog_err = reading.code - y, reading.analog - s
    bound = np.abs(reading.code - np.clip(s, -fs, fs)) / lsb
    budget_lsb = float(np.max(analog_budget_pct_fs / 100 * fs / lsb))
    analog_pct = np.abs(analog_err) / fs * 100

    def rms(a: np.ndarray) -> float:
        return float(np.sqrt(np.mean(a**2)))

    out = SliceErrors(
        windows=len(pts), columns=len(columns),
        code_max_pct_fs=float(np.max(np.abs(code_err) / fs)) * 100, code_rms_pct_fs=rms(code_err / fs) * 100,
        code_max_lsb=float(np.max(np.abs(code_err) / lsb)), code_rms_lsb=rms(code_err / lsb),
        codes_equal=float(np.mean(np.isclose(reading.code, y, rtol=0, atol=1e-6 * lsb))),
        analog_max_pct_fs=float(np.max(analog_pct)), analog_rms_pct_fs=rms(analog_err / fs) * 100,
        analog_max_lsb=float(np.max(np.abs(analog_err) / lsb)), bound_max_lsb=float(np.max(bound)),
        analog_budget_pct_fs=analog_budget_pct_fs, bound_tolerance_lsb=0.5 + budget_lsb, passed=False)
    passed = out.analog_max_pct_fs <= analog_budget_pct_fs and out.bound_max_lsb <= out.bound_tolerance_lsb
    return replace(out, passed=passed)



__all__ = ["ANALOG_BUDGET_PCT_FS", "PwmSchedule", "SliceErrors", "SliceReading", "read_slice", "schedule",
           "slice_deck", "slice_errors"]
