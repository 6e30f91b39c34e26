"""Cost of a compiled network per inference: tiles, devices, energy, latency and area, per layer and in total.

A first-order, bottom-up estimate of the circuits Kelvin emits, with every constant in
`CostModel` carrying its value, unit and source (a paper, a Kelvin design, or a stated
assumption), so a reader can replace any of them (``kelvin compile --report-cost --cost-model
FILE.json``). The figures are for one input sample. Beside them stands a digital baseline from
Horowitz (ISSCC 2014, 45 nm; `../shared/SCIENCE.md`), and the published analog references
(IBM 2023: 12.4 TOPS/W; Binas et al. 2016: 7 TOp/J).

Per layer (a `PrimitiveNode`, used ``reuse`` times per sample when time-multiplexed):

- **crossbar tiles** (`circuits.crossbar.CrossbarArray`): the layer's rows (inputs + bias row) and
  output columns are cut into ``tile_rows`` × ``tile_cols`` tiles; partial sums of row tiles are
  added by one op-amp summer per output. Per use: array energy Σ G·V_read²·duty·T_pwm over the
  programmed cells (G± = g_max·|w|/w_max per column, Joshi et al. 2020), one ADC conversion per
  output (after the partial-sum summer, as the netlist builds it), one DAC/PWM row drive per row per
  column tile, and the readout op-amps
  (two TIAs per column per row tile, `circuits.spice.crossbar_blocks`) powered for T_pwm + T_adc.
  Latency per use: T_pwm + T_adc (all tiles in parallel).
- **op-amp blocks**: every op-amp of the block's device bill at the Miller op-amp's design power
  for one settling time (to 0.1 %: ln(1000) time constants at GBW·β, β = ½).
- **current-mode blocks**: VDD × the block's branch currents (I_unit per unit of |w|·x̄, plus one
  unit per soma) for the settling time ``t_settle_current_s``.
- **digital periphery** (ops the target leaves digital): one 32-bit add per output element.

Ops are counted as IBM counts them: 2 per multiply-accumulate (MAC); Binas's TOp/J counts MACs.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from circuits.crossbar import CrossbarArray
from circuits.errors import InputError, ParameterError
from compiler.ir import OpNode, PrimitiveNode
from compiler.pipeline import Compiled
from compiler.report import node_devices

IBM_TOPS_PER_W = 12.4  # Ambrogio et al., Nature 2023 (SCIENCE.md)
BINAS_TOP_PER_J = 7.0  # Binas et al. 2016, simulated (SCIENCE.md): ops = MACs
TILE_PRESETS = {"512x512": (512, 512), "ibm": (512, 2048)}


@dataclass(frozen=True, slots=True)
class Constant:
    value: float
    unit: str
    source: str


def _opamp() -> tuple[float, float, float]:
    """(power W, GBW Hz, area m²) of Kelvin's two-stage Miller op-amp design (`circuits.spice.miller_opamp`)."""
    from circuits.spice.miller_opamp import MillerOpAmp
    m = MillerOpAmp()
    power = (m.i_bias_a + m.i_tail_a + m.i_stage2_a) * m.card.vdd_v
    gates = (2 * m.w_in_m * m.l_in_m + 2 * m.w_load_m * m.l_load_m + m.w_bias_m * m.l_bias_m
             + m.w_tail_m * m.l_bias_m + m.w_sink_m * m.l_bias_m + m.w_cs_m * m.l_cs_m)
    area = 4 * gates + m.c_c_f / 2e-3  # layout ×4 over gate area; MIM capacitor at 2 fF/µm²
    return power, m.gbw_hz, area


_P_OPAMP, _GBW, _A_OPAMP = _opamp()
_MILLER = "Kelvin's Miller op-amp design (circuits.spice.miller_opamp)"


@dataclass(frozen=True)
class CostModel:
    """Every constant of the estimate, with its source. Override with `from_json`."""

    v_read_v: Constant = Constant(0.2, "V", "PCM read voltage full scale (crossbar_blocks.V_READ_MAX_V, below read disturb)")
    t_pwm_s: Constant = Constant(128e-9, "s", "assumption: 8-bit PWM inputs (Ambrogio 2023) with a 0.5 ns LSB")
    duty: Constant = Constant(0.5, "1", "assumption: mean input pulse fill of uniformly distributed activations")
    e_adc_j: Constant = Constant(2.56e-12, "J", "assumption: 8-bit ADC at a Walden FoM of 10 fJ/conversion-step "
                                                "(typical SAR, Murmann ADC survey)")
    t_adc_s: Constant = Constant(100e-9, "s", "assumption: one 8-bit conversion at 10 MS/s")
    e_dac_j: Constant = Constant(50e-15, "J", "assumption: PWM row driver per row per MVM (a ~100 fF row wire to 0.2 V, "
                                              "×10 for the driver)")
    p_opamp_w: Constant = Constant(_P_OPAMP, "W", f"(I_bias + I_tail + I_2)·VDD of {_MILLER}")
    gbw_hz: Constant = Constant(_GBW, "Hz", f"gm1/(2π·Cc) of {_MILLER}")
    vdd_current_v: Constant = Constant(1.8, "V", "device card VDD (models/devices, current target)")
    i_unit_a: Constant = Constant(10e-9, "A", "current target scale, 10 nA per unit (circuits.targets.CURRENT)")
    x_mean: Constant = Constant(0.5, "unit", "assumption: mean input activation, model units")
    t_settle_current_s: Constant = Constant(472e-6, "s", "measured: settling of the digits 64-16-10 chip at 10 nA/unit "
                                                         "(kelvin demo, sim.energy transient)")
    a_pcm_m2: Constant = Constant(0.05e-12, "m²", "assumption: 1T1R PCM cell of ~250 F² at F = 14 nm")
    a_opamp_m2: Constant = Constant(_A_OPAMP, "m²", f"4 × gate area + Cc at 2 fF/µm² of {_MILLER}")
    a_adc_m2: Constant = Constant(2000e-12, "m²", "assumption: 8-bit SAR ADC, 0.002 mm²")
    a_dac_m2: Constant = Constant(50e-12, "m²", "assumption: PWM row driver")
    a_mosfet_m2: Constant = Constant(8e-12 * 4, "m²", "current_cells default sizing unit (2 × 4 µm) × 4 for layout")
    a_passive_m2: Constant = Constant(100e-12, "m²", "assumption: one poly resistor or capacitor of the op-amp blocks")
    e_mult8_j: Constant = Constant(0.2e-12, "J", "Horowitz ISSCC 2014, 45 nm: 8-bit multiply")
    e_add32_j: Constant = Constant(0.1e-12, "J", "Horowitz ISSCC 2014, 45 nm: 32-bit add")
    e_sram32_j: Constant = Constant(5e-12, "J", "Horowitz ISSCC 2014, 45 nm: 32-bit SRAM read (8 KB)")

    @property
    def t_settle_opamp_s(self) -> float:
        """ln(1000)·τ, τ = 1/(2π·GBW·β), β = ½: one op-amp stage settled to 0.1 %."""
        return math.log(1000) / (2 * math.pi * self.gbw_hz.value * 0.5)

    @classmethod
    def from_json(cls, path: str | Path) -> CostModel:
        """Constants from a JSON object {name: value} or {name: {"value", "unit", "source"}}; unknown names refused."""
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"--cost-model {path}: not a readable JSON file ({e})") from None
        if not isinstance(doc, dict):
            raise InputError(f"--cost-model {path}: expected a JSON object of constants")
        base, known, changes = cls(), {f.name for f in fields(cls)}, {}
        for k, v in doc.items():
            if k not in known:
                raise InputError(f"--cost-model {path}: unknown constant {k!r}; known: {', '.join(sorted(known))}")
            value = v.get("value") if isinstance(v, dict) else v
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InputError(f"--cost-model {path}: {k} must be a finite number ≥ 0, got {value!r}")
            old = getattr(base, k)
            source = v.get("source", f"user: {path}") if isinstance(v, dict) else f"user: {path}"
            changes[k] = Constant(float(value), old.unit, str(source))
        return replace(base, **changes)

    def table(self) -> dict[str, dict[str, Any]]:
        return {f.name: {"value": getattr(self, f.name).value, "unit": getattr(self, f.name).unit,
                         "source": getattr(self, f.name).source} for f in fields(self)}


@dataclass
class LayerCost:
    name: str
    kind: str
    placement: str = "analog"
    macs: int = 0
    uses: int = 1
    tiles: int = 0
    utilization: float | None = None
    devices: Counter = field(default_factory=Counter)
    energy_j: dict[str, float] = field(default_factory=dict)
    latency_s: float = 0.0
    area_m2: float = 0.0

    def doc(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "placement": self.placement, "macs": self.macs, "uses_per_sample": self.uses,
                "tiles": self.tiles, "utilization": self.utilization, "devices": dict(sorted(self.devices.items())),
                "energy_j": {k: v for k, v in sorted(self.energy_j.items())}, "energy_total_j": sum(self.energy_j.values()),
                "latency_s": self.latency_s, "area_m2": self.area_m2}


def retile(compiled: Compiled, tile: str) -> Compiled:
    """Set every crossbar layer's tile size: ``512x512`` (default), ``ibm`` (512 × 2048) or ``RxC``."""
    shape = parse_tile(tile)
    for node in compiled.graph.nodes:
        if isinstance(node, PrimitiveNode) and isinstance(node.primitive, CrossbarArray):
            node.primitive = replace(node.primitive, tile_rows=shape[0], tile_cols=shape[1])
    return compiled


def parse_tile(text: str) -> tuple[int, int]:
    if text in TILE_PRESETS:
        return TILE_PRESETS[text]
    try:
        r, c = (int(t) for t in text.lower().split("x"))
    except ValueError:
        raise ParameterError(f"--tile: ROWSxCOLS (e.g. 512x512) or one of {', '.join(TILE_PRESETS)}, got {text!r}") from None
    if r < 1 or c < 1:
        raise ParameterError(f"--tile: rows and columns must be ≥ 1, got {text!r}")
    return r, c


def _macs(prim) -> int:
    w = getattr(prim, "weights", None)
    return int(np.count_nonzero(w)) if isinstance(w, np.ndarray) else 0


def _crossbar(node: PrimitiveNode, prim: CrossbarArray, m: CostModel) -> LayerCost:
    groups, rt, ct = prim.tile_grid()
    w = np.asarray(prim.weights, np.float64).reshape(groups, *prim.weights.shape[-2:])
    out_f, in_f = w.shape[-2:]
    rows = in_f + (prim.bias is not None)
    lc = LayerCost(node.name, prim.kind, placement=f"analog: {rt}×{ct} crossbar tile(s) per group"
                   + (f", time-multiplexed over {node.reuse} positions" if node.reuse > 1 else ""),
                   macs=node.reuse * groups * out_f * in_f, uses=node.reuse)
    lc.tiles = groups * rt * ct
    lc.utilization = groups * rows * out_f / (lc.tiles * prim.tile_rows * prim.tile_cols)
    lc.devices = prim.devices(node.lanes)  # one copy, time-multiplexed: the bill as the netlist builds it
    # programmed conductances: per column g_max·|w|/w_max on one device of the pair (Joshi et al. 2020)
    b = None if prim.bias is None else np.asarray(prim.bias, np.float64).reshape(groups, out_f, 1)
    rows_w = w if b is None else np.concatenate([w, b], axis=2)
    w_max = np.abs(rows_w).max(axis=2, keepdims=True)
    g_sum = float(np.sum(np.abs(rows_w) / np.where(w_max > 0, w_max, 1.0))) * prim.g_max_us * 1e-6
    t_use = m.t_pwm_s.value + m.t_adc_s.value
    lc.energy_j = {
        "array": node.reuse * g_sum * m.v_read_v.value ** 2 * m.duty.value * m.t_pwm_s.value,
        "adc": node.reuse * lc.devices["adc"] * m.e_adc_j.value,
        "dac": node.reuse * lc.devices["dac"] * m.e_dac_j.value,
        "opamps": node.reuse * lc.devices["opamp"] * m.p_opamp_w.value * t_use,
    }
    lc.latency_s = node.reuse * t_use
    lc.area_m2 = (lc.devices["pcm"] * m.a_pcm_m2.value + lc.devices["adc"] * m.a_adc_m2.value
                  + lc.devices["dac"] * m.a_dac_m2.value + lc.devices["opamp"] * m.a_opamp_m2.value
                  + lc.devices["resistor"] * m.a_passive_m2.value)
    return lc


def _analog(node: PrimitiveNode, m: CostModel, current: bool) -> LayerCost:
    prim = node.primitive
    devices = node_devices(node)
    where = (f"time-multiplexed over {node.reuse} positions" if node.reuse > 1
             else f"{node.copies} parallel copies" if node.copies > 1 else "one bank")
    lc = LayerCost(node.name, prim.kind, placement=f"analog: {where}",
                   macs=_macs(prim) * node.copies * node.reuse, uses=node.reuse, devices=devices)
    if current:
        w = getattr(prim, "weights", None)
        outs = node.lanes * node.copies
        units = (float(np.abs(w).sum()) * m.x_mean.value * node.copies if isinstance(w, np.ndarray) else 0.0) + outs
        t = m.t_settle_current_s.value
        lc.energy_j = {"branches": node.reuse * m.vdd_current_v.value * units * m.i_unit_a.value * t}
        lc.latency_s = 0.0  # the whole network settles together: counted once, in the total
        lc.area_m2 = devices["mosfet"] * m.a_mosfet_m2.value
    else:
        t = m.t_settle_opamp_s
        lc.energy_j = {"opamps": node.reuse * devices["opamp"] * m.p_opamp_w.value * t}
        lc.latency_s = node.reuse * t
        passives = sum(v for k, v in devices.items() if k in ("resistor", "capacitor", "diode", "bjt", "current_source"))
        lc.area_m2 = devices["opamp"] * m.a_opamp_m2.value + passives * m.a_passive_m2.value
    return lc


def _digital(node: OpNode, compiled: Compiled, m: CostModel) -> LayerCost:
    elements = 0
    for t in node.outputs:
        shape = compiled.graph.shape(t) if t else None
        if shape is not None:
            elements += int(np.prod([d if isinstance(d, int) else 1 for d in shape]))
    lc = LayerCost(node.name, f"digital.{node.kind}",
                   placement=f"digital periphery: target {compiled.target.name!r} has no circuit for {node.kind}")
    lc.energy_j = {"digital": elements * m.e_add32_j.value}
    return lc


def cost_report(compiled: Compiled, model: CostModel | None = None) -> dict[str, Any]:
    """Per-layer and total cost of one inference of ``compiled`` (module docstring), with the digital baseline."""
    m = model or CostModel()
    current = compiled.target.signal == "current"
    layers: list[LayerCost] = []
    for node in compiled.graph.topo():
        if isinstance(node, PrimitiveNode) and node.primitive is not None:
            if isinstance(node.primitive, CrossbarArray):
                layers.append(_crossbar(node, node.primitive, m))
            else:
                layers.append(_analog(node, m, current))
        elif isinstance(node, OpNode) and node.placement == "digital":
            layers.append(_digital(node, compiled, m))
    macs = sum(lc.macs for lc in layers)
    energy = sum(sum(lc.energy_j.values()) for lc in layers)
    latency = sum(lc.latency_s for lc in layers) + (m.t_settle_current_s.value if current else 0.0)
    devices: Counter = Counter()
    for lc in layers:
        devices.update(lc.devices)
    params = sum(int(np.count_nonzero(getattr(n.primitive, "weights", np.zeros(0))))
                 for n in compiled.graph.nodes if isinstance(n, PrimitiveNode) and n.primitive is not None
                 and isinstance(getattr(n.primitive, "weights", None), np.ndarray))
    digital_compute = macs * (m.e_mult8_j.value + m.e_add32_j.value)
    digital_weights = params * m.e_sram32_j.value / 4  # each 8-bit weight read once per sample
    tiles = sum(lc.tiles for lc in layers)
    cells = sum(lc.utilization * lc.tiles for lc in layers if lc.utilization is not None)
    return {
        "target": compiled.target.name,
        "layers": [lc.doc() for lc in layers],
        "total": {
            "macs": macs, "energy_j": energy, "latency_s": latency, "area_m2": sum(lc.area_m2 for lc in layers),
            "tiles": tiles, "utilization": (cells / tiles) if tiles else None,
            "devices": dict(sorted(devices.items())),
            "tops_per_w": (2 * macs / energy / 1e12) if energy > 0 else None,
            "macs_per_j": (macs / energy) if energy > 0 else None,
        },
        "digital_baseline": {
            "energy_compute_j": digital_compute, "energy_with_weight_reads_j": digital_compute + digital_weights,
            "tops_per_w_compute": (2 * macs / digital_compute / 1e12) if macs else None,
            "source": "Horowitz ISSCC 2014, 45 nm: 8-bit multiply + 32-bit add per MAC; each 8-bit weight read "
                      "once from SRAM (5 pJ per 32 bits)",
        },
        "references": {"ibm_2023_tops_per_w": IBM_TOPS_PER_W, "binas_2016_top_per_j": BINAS_TOP_PER_J},
        "constants": m.table(),
    }


__all__ = ["TILE_PRESETS", "CostModel", "cost_report", "parse_tile", "retile"]
