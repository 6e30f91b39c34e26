"""SPICE circuits for PCM crossbar columns and tiles: DAC rows, G+/G- conductance pairs, TIA readout, ADC.

Design equations (one output column y = Σ wᵢ·xᵢ + b, inputs |xᵢ| ≤ x_fs):

- Bias is one more row, driven at the fixed read voltage +V_fs = x_fs·v_per_unit, with
  weight w_b = b / x_fs (the chip's bias row, Ambrogio et al., Nature 2023).
- Weights to conductances (Joshi et al., Nat. Commun. 2020, g_T = |w|/w_max·g_max), with
  w_max = max |wᵢ| over the column (column-wise scaling, as aihwkit's mapping allows):
  G± = g_min + (g_max − g_min)·max(±w, 0)/w_max, so G+ − G− = (g_max − g_min)·w/w_max.
  With ``devices_per_side`` = 2 (4 devices per weight) each side is two such devices in parallel.
- Inputs to read voltages (the DAC): Vᵢ = xᵢ·v_per_unit, |Vᵢ| ≤ V_fs (about 0.2 V, below the
  PCM read-disturb level).
- Column currents I± = Σ G±ᵢ·Vᵢ into virtual grounds. Readout (Hu et al., "Dot-product engine",
  DAC 2016, TIA per column): TIA1 gives V_a = −R_f·I+; TIA2 sums I− and V_a through R_f, so
  V_out = −R_f·(I− + V_a/R_f) = R_f·(I+ − I−) — a differential readout with no current mirror.
- R_f sets the output scale a_out = V_out/y: V_out = R_f·n·(g_max − g_min)·v_per_unit/w_max · y,
  and a_out = V_out,fs / y_fs with y_fs = Σ|wᵢ|·x_fs + |b| (the largest |y| on the input box), so
  R_f = a_out·w_max / (n·(g_max − g_min)·v_per_unit). Model units back: y = V_out / a_out.
- Op-amps are `OpampMacro` (nominal card: A_0 = 1e5, ±11 V rails). Finite gain makes each
  inverting stage's gain ideal·1/(1 + β⁻¹/A_0), β⁻¹ = 1 + R_f·ΣG (TIA1) and 2 + R_f·ΣG− (TIA2)
  (Sedra & Smith, ch. 2): a relative error of a few 1e-5, far inside the 0.5 % of FS budget.
- Converters (optional, behavioral): symmetric mid-tread quantizers with L = 2^(bits−1) − 1
  levels per side, q(v) = Δ·clip(floor(v/Δ + ½), −L, L), Δ = full scale / L; the DAC over
  ±V_fs (8-bit signed inputs as in Ambrogio 2023), the ADC over ±V_out,fs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from circuits import ideal as ideal_fn

from circuits.base import as_finite_array
from circuits.crossbar import CrossbarArray
from circuits.errors import ParameterError
from circuits.spice.block import BlockCircuit, index_sweep, indexed_inputs
from circuits.spice.netlist import Deck, Element, Subckt, bsource, fmt, instance, resistor, spice_name, vsource
from circuits.spice.opamp_macro import OpampMacro

_log = logging.getLogger(__name__)

V_READ_MAX_V = 0.2  # read-voltage full scale: PCM is read at a few hundred mV at most, below its threshold switching


@dataclass(frozen=True, slots=True)
class ConductanceMap:
    """w ↔ (G+, G−): G± = g_min + (g_max − g_min)·max(±w, 0)/w_max (Joshi et al. 2020)."""

    w_max: float
    g_max_s: float = 25e-6
    g_min_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.w_max > 0:
            raise ParameterError(f"w_max: must be > 0, got {self.w_max}")
        if not self.g_max_s > 0:
            raise ParameterError(f"g_max_s: must be > 0, got {self.g_max_s}")
        if not 0 <= self.g_min_s < self.g_max_s:
            raise ParameterError(f"g_min_s: must be in [0, g_max_s={self.g_max_s}), got {self.g_min_s}")

    @property
    def g_span_s(self) -> float:
        return self.g_max_s - self.g_min_s

    def conductances(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(G+, G−) in siemens for weights ``w`` (|w| ≤ w_max)."""
        w = np.asarray(w, dtype=np.float64)
        if np.any(np.abs(w) > self.w_max * (1 + 1e-12)):
            raise ParameterError(f"weights: |w| exceeds w_max={self.w_max}")
        g_pos = self.g_min_s + self.g_span_s * np.clip(w, 0.0, None) / self.w_max
        g_neg = self.g_min_s + self.g_span_s * np.clip(-w, 0.0, None) / self.w_max
        return np.minimum(g_pos, self.g_max_s), np.minimum(g_neg, self.g_max_s)

    def weights(self, g_pos: np.ndarray, g_neg: np.ndarray) -> np.ndarray:
        """The inverse: w = (G+ − G−)·w_max / (g_max − g_min)."""
        return (np.asarray(g_pos, np.float64) - np.asarray(g_neg, np.float64)) * self.w_max / self.g_span_s


@dataclass(frozen=True, slots=True)
class Quantizer:
    """Symmetric mid-tread converter: q(v) = Δ·clip(floor(v/Δ + ½), −L, L), L = 2^(bits−1) − 1, Δ = fs/L."""

    bits: int
    full_scale_v: float

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 24:
            raise ParameterError(f"bits: must be in [2, 24], got {self.bits}")
        if not self.full_scale_v > 0:
            raise ParameterError(f"full_scale_v: must be > 0, got {self.full_scale_v}")

    @property
    def levels(self) -> int:
        return 2 ** (self.bits - 1) - 1

    @property
    def step_v(self) -> float:
        return self.full_scale_v / self.levels

    def source(self, name: str, out: str, node_in: str) -> Element:
        """The behavioral B-source card quantizing V(node_in) onto node ``out``."""
        d, lv = fmt(self.step_v), fmt(self.levels)
        return bsource(name, out, "0", f"{d}*min(max(floor(V({node_in})/{d} + 0.5), -{lv}), {lv})")


@dataclass(frozen=True, slots=True, eq=False)
class CrossbarColumnBlock(BlockCircuit):
    """One crossbar output column: optional DACs, G+/G− pairs (+ bias row), two-TIA readout, optional ADC."""

    kind: ClassVar[str] = "crossbar.tiles"
    tolerance_pct_fs: ClassVar[float] = 0.5
    dynamic: ClassVar[bool] = False

    weights: np.ndarray  # (rows,) model units
    bias: float | None = None
    volts_per_unit: float = V_READ_MAX_V
    x_fs: float = 1.0  # input full scale, model units
    g_max_s: float = 25e-6
    g_min_s: float = 0.0
    devices_per_side: int = 1
    v_out_fs_v: float = 1.0
    y_fs: float | None = None  # output full scale, model units; None: worst case Σ|wᵢ|·x_fs + |b|
    dac_bits: int | None = None
    adc_bits: int | None = None
    dac_fs_v: float | None = None  # DAC full scale in volts; None: the read range ±V_fs
    adc_fs_v: float | None = None  # ADC full scale in volts; None: ±v_out_fs_v
    opamp: OpampMacro = field(default_factory=OpampMacro.default)
    name: str = "xbar_col"

    def __post_init__(self) -> None:
        w = as_finite_array("weights", self.weights, ndim=(1,)).astype(np.float64)
        if w.size < 1:
            raise ParameterError("weights: a column needs at least one row")
        object.__setattr__(self, "weights", w)
        if self.bias is not None:
            as_finite_array("bias", self.bias, ndim=(0,))
            object.__setattr__(self, "bias", float(self.bias))
        for pname in ("volts_per_unit", "x_fs", "v_out_fs_v", "y_fs", "dac_fs_v", "adc_fs_v"):
            if getattr(self, pname) is not None and not getattr(self, pname) > 0:
                raise ParameterError(f"{pname}: must be > 0, got {getattr(self, pname)}")
        if self.v_read_fs_v > 1.0:
            raise ParameterError(f"volts_per_unit: read range ±{self.v_read_fs_v} V exceeds 1 V (PCM read disturb)")
        if self.devices_per_side not in (1, 2):
            raise ParameterError(f"devices_per_side: 1 or 2, got {self.devices_per_side}")
        ConductanceMap(1.0, self.g_max_s, self.g_min_s)  # validates g_max_s, g_min_s
        for pname in ("dac_bits", "adc_bits"):
            bits = getattr(self, pname)
            if bits is not None and not 2 <= bits <= 24:
                raise ParameterError(f"{pname}: None or an integer in [2, 24], got {bits}")

    @classmethod
    def from_primitive(cls, prim: CrossbarArray, index: int, volts_per_unit: float = V_READ_MAX_V,
                       dac_bits: int | None = None, adc_bits: int | None = None,
                       **design: Any) -> CrossbarColumnBlock:
        """Column ``index`` of ``prim`` (grouped weights: index = group·out + o)."""
        w = np.asarray(prim.weights, dtype=np.float64)
        w = w.reshape(-1, w.shape[-1])
        if not 0 <= index < w.shape[0]:
            raise ParameterError(f"index: {index} outside the {w.shape[0]} output columns")
        b = None if prim.bias is None else float(np.asarray(prim.bias, np.float64).reshape(-1)[index])
        design.setdefault("name", f"xbar_col_{index}")
        return cls(w[index], b, volts_per_unit=volts_per_unit, g_max_s=prim.g_max_us * 1e-6,
                   devices_per_side=prim.devices_per_weight // 2, dac_bits=dac_bits, adc_bits=adc_bits, **design)

    # --- design equations -------------------------------------------------------------
    @property
    def v_read_fs_v(self) -> float:
        """Read-voltage full scale V_fs = x_fs·v_per_unit (also the bias row's drive)."""
        return self.x_fs * self.volts_per_unit

    def row_weights(self) -> np.ndarray:
        """Weights of every row, the bias row last (w_b = b / x_fs)."""
        if self.bias is None:
            return self.weights
        return np.append(self.weights, self.bias / self.x_fs)

    def mapping(self) -> ConductanceMap:
        w_max = float(np.max(np.abs(self.row_weights()))) or 1.0
        return ConductanceMap(w_max, self.g_max_s, self.g_min_s)

    def conductances(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-device (G+, G−) of every row in siemens (each side has ``devices_per_side`` of them)."""
        return self.mapping().conductances(self.row_weights())

    def read_back(self) -> tuple[np.ndarray, float | None]:
        """Weights and bias recovered from the programmed conductances (the design's inverse)."""
        w = self.mapping().weights(*self.conductances())
        if self.bias is None:
            return w, None
        return w[:-1], float(w[-1] * self.x_fs)

    def full_scale(self) -> float:
        """y_fs, by default Σ|wᵢ|·x_fs + |b| (the largest |y| on the input box; a smaller y_fs
        spends the ADC's levels on typical outputs and clips the rare large ones)."""
        if self.y_fs is not None:
            return self.y_fs
        return float(np.sum(np.abs(self.row_weights())) * self.x_fs) or 1.0

    @property
    def out_volts_per_unit(self) -> float:
        """a_out = V_out,fs / y_fs."""
        return self.v_out_fs_v / self.full_scale()

    @property
    def r_f_ohm(self) -> float:
        """R_f = a_out·w_max / (n·(g_max − g_min)·v_per_unit)."""
        m = self.mapping()
        return self.out_volts_per_unit * m.w_max / (self.devices_per_side * m.g_span_s * self.volts_per_unit)

    def dac(self) -> Quantizer | None:
        return None if self.dac_bits is None else Quantizer(self.dac_bits, self.dac_fs_v or self.v_read_fs_v)

    def adc(self) -> Quantizer | None:
        return None if self.adc_bits is None else Quantizer(self.adc_bits, self.adc_fs_v or self.v_out_fs_v)

    # --- netlist ------------------------------------------------------------------------
    def n_inputs(self) -> int:
        return int(self.weights.size)

    def input_range(self) -> tuple[float, float]:
        return (-self.x_fs, self.x_fs)

    def ports(self) -> tuple[str, ...]:
        return (*(f"in_{i}" for i in range(self.n_inputs())), "out")

    def column_elements(self, rows: Sequence[str], out: str, prefix: str = "") -> list[Element]:
        """Conductance pairs from the row nodes (bias row last) into two TIAs, then the ADC, onto ``out``."""
        g_pos, g_neg = self.conductances()
        if len(rows) != g_pos.size:
            raise ParameterError(f"rows: {len(rows)} row nodes for {g_pos.size} conductance rows")
        p = self.node_prefix(prefix)
        colp, coln = f"{p}colp", f"{p}coln"
        els: list[Element] = []
        for i, row in enumerate(rows):
            for k in range(self.devices_per_side):
                if g_pos[i] > 0:
                    els.append(resistor(f"{p}gp_{i}_{k}", row, colp, 1.0 / g_pos[i]))
                if g_neg[i] > 0:
                    els.append(resistor(f"{p}gn_{i}_{k}", row, coln, 1.0 / g_neg[i]))
        return els + self.readout_elements(out, prefix)

    @staticmethod
    def node_prefix(prefix: str) -> str:
        return spice_name(prefix, "c") + "_" if prefix else ""

    def readout_elements(self, out: str, prefix: str = "") -> list[Element]:
        """The two-TIA differential readout from the virtual-ground nodes ``<p>colp``/``<p>coln``, then the ADC."""
        p = self.node_prefix(prefix)
        colp, coln, va = f"{p}colp", f"{p}coln", f"{p}va"
        tia = f"{p}tia" if self.adc_bits is not None else out
        r_f, amp = self.r_f_ohm, self.opamp.name
        els = [
            instance(f"{p}tia_p", amp, ("0", colp, va)),
            resistor(f"{p}rf_p", colp, va, r_f),
            instance(f"{p}tia_n", amp, ("0", coln, tia)),
            resistor(f"{p}rf_n", coln, tia, r_f),
            resistor(f"{p}rs_n", va, coln, r_f),
        ]
        adc = self.adc()
        if adc is not None:
            els.append(adc.source(f"{p}adc", out, tia))
        return els

    def subckts(self) -> list[Subckt]:
        ins = list(self.ports()[:-1])
        els, rows = row_drivers(ins, self.dac(), self.bias is not None, self.v_read_fs_v)
        els += self.column_elements(rows, "out")
        own = Subckt(self.name, self.ports(), els,
                     comment=f"crossbar column: {self.n_inputs()} rows, R_f {fmt(self.r_f_ohm)} ohm")
        return [self.opamp.subckt(), own]

    def dc_bench(self, points: np.ndarray) -> Deck:
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        ins = [f"in_{i}" for i in range(self.n_inputs())]
        deck = Deck(f"{self.name} dc bench", subckts=self.subckts())
        deck.elements += indexed_inputs(pts, ins, self.volts_per_unit)
        deck.elements.append(instance("dut", self.name, (*ins, "out")))
        return index_sweep(deck, len(pts))

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(vectors["out"], dtype=np.float64).reshape(-1, 1) / self.out_volts_per_unit

    def ideal(self, points: np.ndarray) -> np.ndarray:
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        b = np.asarray([self.bias or 0.0])
        return ideal_fn.dense(pts, np.asarray(self.weights, np.float64)[None, :], b).reshape(-1, 1)


def row_drivers(inputs: Sequence[str], dac: Quantizer | None, bias: bool,
                v_bias_v: float) -> tuple[list[Element], list[str]]:
    """Row nodes: each input through its DAC (or directly), plus the bias row at +V_fs; returns (cards, rows)."""
    els: list[Element] = []
    rows = list(inputs)
    if dac is not None:
        rows = [f"row_{i}" for i in range(len(inputs))]
        els += [dac.source(f"dac_{i}", row, node) for i, (row, node) in enumerate(zip(rows, inputs))]
    if bias:
        els.append(vsource("bias", "row_bias", "0", v_bias_v))
        rows.append("row_bias")
    return els, rows
