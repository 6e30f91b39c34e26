"""Shared parts of the op-amp analog-computer blocks: device cards, textbook stages, the DC bench.

Stages return element lists for a block's ``.subckt``; every resistor value comes from a
design equation in the caller. Signal convention: V = volts_per_unit · (model-unit value).
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from circuits.data import model_file
from circuits.errors import InputError, ParameterError
from circuits.spice.block import BlockCircuit, index_sweep, indexed_inputs
from circuits.spice.netlist import (
    Deck, Element, Subckt, bjt, capacitor, diode, instance, resistor, spice_name, vsource,
)
from circuits.spice.opamp_macro import OpampMacro

_log = logging.getLogger(__name__)

BOLTZMANN_J_PER_K = 1.38064852e-23  # the constants ngspice uses (CODATA 2014)
CHARGE_C = 1.6021766208e-19
ZERO_CELSIUS_K = 273.15
NOMINAL_TEMP_C = 27.0  # ngspice's default TEMP and TNOM
R_LOAD_OHM = 10e3  # the bench loads each block output like a next stage's input resistor
BENCH_RELTOL = 1e-6  # ngspice's default 1e-3 stops Newton early enough to show in 0.1 % checks
OUT_NODE = "out"


def thermal_voltage_v(temp_c: float = NOMINAL_TEMP_C) -> float:
    """V_T = k·T/q (25.86 mV at 27 °C)."""
    return BOLTZMANN_J_PER_K * (temp_c + ZERO_CELSIUS_K) / CHARGE_C


@dataclass(frozen=True, slots=True)
class ModelCard:
    """One ``.model`` card from ``models/devices/``: its text, model name and numeric parameters."""

    name: str
    text: str
    params: Mapping[str, float]

    @classmethod
    def load(cls, filename: str) -> ModelCard:
        path = model_file("devices", filename)
        text = path.read_text()
        joined = re.sub(r"\n\+", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("*")))
        found = re.search(r"^\.model\s+(\w+)\s+\w+\s*\((.*?)\)", joined, re.MULTILINE | re.DOTALL | re.IGNORECASE)
        if not found:
            raise InputError(f"{path}: no '.model name type (...)' card found")
        params = {k.lower(): float(v) for k, v in re.findall(r"(\w+)\s*=\s*([-+0-9.eE]+)", found.group(2))}
        return cls(found.group(1).lower(), text.strip(), MappingProxyType(params))

    def get(self, key: str, default: float) -> float:
        return self.params.get(key, default)


@functools.cache
def npn_card() -> ModelCard:
    """Kelvin's generic Gummel-Poon NPN (``models/devices/npn_generic.lib``)."""
    return ModelCard.load("npn_generic.lib")


@functools.cache
def diode_card() -> ModelCard:
    """Kelvin's generic small-signal diode (``models/devices/diode_generic.lib``)."""
    return ModelCard.load("diode_generic.lib")


def check_positive(owner: str, **values: float) -> None:
    """ParameterError naming ``owner.param`` unless every value is a finite number > 0."""
    for key, v in values.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ParameterError(f"{owner}.{key}: must be a finite number > 0, got {v!r}")


def check_finite(owner: str, **values: float) -> None:
    for key, v in values.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v)):
            raise ParameterError(f"{owner}.{key}: must be a finite number, got {v!r}")


# --- stages -------------------------------------------------------------------------------

def opamp(name: str, inp: str, inn: str, out: str, macro: OpampMacro) -> Element:
    return instance(name, macro.name, (inp, inn, out))


def inverting_sum(prefix: str, out: str, terms: Sequence[tuple[str, float]], r_f_ohm: float,
                  macro: OpampMacro) -> list[Element]:
    """Inverting summer V_out = −Σ g_k·V_k with R_k = R_f/g_k (g_k > 0; Horowitz & Hill §4.09)."""
    s = f"{prefix}_s"
    els = [opamp(f"{prefix}", "0", s, out, macro), resistor(f"{prefix}_f", out, s, r_f_ohm)]
    for k, (node, gain) in enumerate(terms):
        if not gain > 0:
            raise ParameterError(f"inverting_sum {prefix}: gain {k} must be > 0, got {gain}")
        els.append(resistor(f"{prefix}_{k}", node, s, r_f_ohm / gain))
    return els


def half_wave(prefix: str, inputs: Sequence[tuple[str, float]], pos: tuple[str, float] | None,
              neg: tuple[str, float] | None, diode_model: str, macro: OpampMacro) -> list[Element]:
    """Precision half-wave rectifier stage (inverting; Tietze & Schenk §25.5).

    With I = Σ V_k/R_k into the summing node: the ``pos`` branch (node, R) carries −R·I when
    I > 0, the ``neg`` branch −R·I when I < 0, each 0 otherwise. An absent branch is
    replaced by a clamp diode so the op-amp never saturates.
    """
    s, o = f"{prefix}_s", f"{prefix}_o"
    els = [opamp(prefix, "0", s, o, macro)]
    els += [resistor(f"{prefix}_{k}", node, s, r) for k, (node, r) in enumerate(inputs)]
    if pos is None:
        els.append(diode(f"{prefix}_cp", s, o, diode_model))
    else:
        els += [resistor(f"{prefix}_p", s, pos[0], pos[1]), diode(f"{prefix}_p", pos[0], o, diode_model)]
    if neg is None:
        els.append(diode(f"{prefix}_cn", o, s, diode_model))
    else:
        els += [resistor(f"{prefix}_n", s, neg[0], neg[1]), diode(f"{prefix}_n", o, neg[0], diode_model)]
    return els


def transdiode(prefix: str, inputs: Sequence[tuple[str, float]], out: str, npn: str, macro: OpampMacro,
               c_comp_f: float = 100e-12) -> list[Element]:
    """Transdiode log stage: V_out = −n·V_T·ln(I/I_S), I = Σ V_k/R_k > 0 (Tietze & Schenk §11.7.2).

    The NPN's collector sits at the virtual ground and its base at ground (V_CB = 0: no Early
    effect, base current taken from ground); C_comp across it keeps the loop stable in transients.
    """
    s = f"{prefix}_s"
    els = [opamp(prefix, "0", s, out, macro), bjt(prefix, s, "0", out, npn), capacitor(f"{prefix}_c", out, s, c_comp_f)]
    els += [resistor(f"{prefix}_{k}", node, s, r) for k, (node, r) in enumerate(inputs)]
    return els


def transimpedance(prefix: str, node: str, out: str, r_f_ohm: float, macro: OpampMacro,
                   c_f_f: float = 10e-12) -> list[Element]:
    """Current-to-voltage stage with its input ``node`` a virtual ground: V_out = R_f·(current drawn from node)."""
    return [opamp(prefix, "0", node, out, macro), resistor(f"{prefix}_f", out, node, r_f_ohm),
            capacitor(f"{prefix}_c", out, node, c_f_f)]


def difference(prefix: str, plus: str, g_plus: float, minus: str, g_minus: float, out: str, r_ohm: float,
               macro: OpampMacro) -> list[Element]:
    """V_out = g₊·V₊ − g₋·V₋ with one op-amp (needs g₊ ≤ 1 + g₋).

    R1 = r from V₋, R2 = g₋·r feedback; V₊ through a divider of ratio f = g₊/(1 + g₋)
    (R3 = r, R4 = r·f/(1 − f)), since V_out = −(R2/R1)·V₋ + (1 + R2/R1)·V(inp).
    """
    f = g_plus / (1.0 + g_minus)
    if not (g_minus > 0 and 0 < f <= 1):
        raise ParameterError(f"difference {prefix}: need g_minus > 0 and 0 < g_plus <= 1 + g_minus, "
                             f"got {g_plus}, {g_minus}")
    n, p = f"{prefix}_n", f"{prefix}_p"
    els = [opamp(prefix, p, n, out, macro), resistor(f"{prefix}_1", minus, n, r_ohm),
           resistor(f"{prefix}_2", out, n, g_minus * r_ohm), resistor(f"{prefix}_3", plus, p, r_ohm)]
    if f < 1:
        els.append(resistor(f"{prefix}_4", p, "0", r_ohm * f / (1 - f)))
    return els


def reference(name: str, node: str, volts: float) -> Element:
    """An ideal reference voltage inside a block (an on-board reference in hardware)."""
    return vsource(name, node, "0", volts)


# --- the DC bench -------------------------------------------------------------------------

class OpampBlock(BlockCircuit):
    """Common bench of the op-amp blocks: ports x0..x{n-1}, y; one ``.dc`` index sweep over the points.

    Subclasses (frozen dataclasses) define ``name``, ``volts_per_unit``, ``opamp`` and
    ``elements()``; blocks with devices also ``models()`` (card text for the deck).
    """

    name: str
    volts_per_unit: float
    opamp: OpampMacro

    def elements(self) -> list[Element]:
        raise NotImplementedError

    def models(self) -> list[str]:
        """Model cards (``.model`` text) the block's subcircuit uses; the deck must include them."""
        return []

    def temperature_c(self) -> float:
        return NOMINAL_TEMP_C

    def ports(self) -> tuple[str, ...]:
        return (*(f"x{j}" for j in range(self.n_inputs())), "y")

    def subckts(self) -> list[Subckt]:
        own = Subckt(self.name, self.ports(), self.elements(), comment=f"{self.kind} {type(self).__name__}")
        return [self.opamp.subckt(), own]

    def bench_deck(self, title: str, nodes: Sequence[str] | None = None) -> Deck:
        """A deck with this block's models, subcircuits and options, the instance ``Xdut`` on
        ``nodes`` (default in0.., out) and the load on ``out``."""
        if nodes is None:
            nodes = [*(f"in{j}" for j in range(self.n_inputs())), OUT_NODE]
        deck = Deck(title, models=self.models(), subckts=self.subckts(),
                    options={"temp": self.temperature_c(), "reltol": BENCH_RELTOL})
        deck.elements += [instance("dut", self.name, nodes), resistor("load", OUT_NODE, "0", R_LOAD_OHM)]
        return deck

    def dc_bench(self, points: np.ndarray) -> Deck:
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        deck = self.bench_deck(f"{self.kind} {self.name} dc bench, {len(pts)} points")
        deck.elements += indexed_inputs(pts, [f"in{j}" for j in range(self.n_inputs())], self.volts_per_unit)
        return index_sweep(deck, len(pts))

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        """Output in model units, one value per swept point (shape (rows,))."""
        return np.asarray(vectors[OUT_NODE], dtype=np.float64).real / self.volts_per_unit

    def warn_swing(self) -> None:
        """Log when full scale times volts_per_unit does not fit inside the op-amp's rails."""
        swing = self.full_scale() * self.volts_per_unit
        limit = min(self.opamp.v_rail_pos_v, -self.opamp.v_rail_neg_v)
        if swing > limit:
            _log.info("%s %s: full scale %.3g V exceeds the op-amp rail %.3g V; lower volts_per_unit",
                         type(self).__name__, self.name, swing, limit)


def block_name(kind: str, index: int) -> str:
    """A subcircuit name for instance ``index`` of a ``kind`` bank."""
    return spice_name(f"{kind}_{index}".replace(".", "_"), "blk")
