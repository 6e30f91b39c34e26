"""Behavioural op-amp macro-model: finite DC gain, one pole, slew limit, offset, soft output rails.

A single-pole macro-model in the spirit of Boyle, Cohn, Pederson & Solomon (IEEE JSSC 9(6),
1974), reduced to what the analog-computer blocks need and kept DC-convergent:

    I_1   = I_max·tanh(g_m·(V(inp) + V_os − V(inn)) / I_max)     into the gain node n1
    R_1   = A_0/g_m,  C_1 = g_m/(2π·GBW)      →  A(s) = A_0 / (1 + s·A_0/(2π·GBW))
    I_max = SR·C_1                             (slew rate SR; small-signal gain is g_m·R_1)
    n1 is held inside [V_rail−, V_rail+] by a clamp current g_c·(softplus(V−V_rail+) − softplus(V_rail−−V))
    V(out) = V(n1) through R_out

The clamp acts on the gain node, so a saturated op-amp keeps a bounded internal state and
recovers at the slew rate; its softplus knee (``KNEE_V`` wide) is smooth for Newton and
contributes nothing measurable more than a few knee widths inside the rails.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, fields, replace

from circuits.data import model_file
from circuits.errors import InputError, ParameterError
from circuits.spice.netlist import Element, Subckt, bsource, capacitor, fmt, resistor, spice_name, vcvs, vsource

CLAMP_S = 1.0  # clamp conductance beyond the rail: 1 S keeps the overshoot below I_max/1 S (~0.2 mV)
KNEE_V = 0.01  # softplus knee width of the rail clamp


@dataclass(frozen=True, slots=True)
class OpampMacro:
    """Parameters of one op-amp macro-model (``models/devices/opamp_macro.json`` holds the nominal card)."""

    a0: float
    gbw_hz: float
    v_rail_pos_v: float
    v_rail_neg_v: float
    v_offset_v: float = 0.0
    r_out_ohm: float = 1.0
    slew_v_per_s: float = 1e6
    gm_s: float = 1e-3
    name: str = "opamp_macro"

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name != "name" and not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ParameterError(f"OpampMacro.{f.name}: expected a finite number, got {v!r}")
        for key in ("a0", "gbw_hz", "slew_v_per_s", "gm_s"):
            if not getattr(self, key) > 0:
                raise ParameterError(f"OpampMacro.{key}: must be > 0, got {getattr(self, key)!r}")
        if not self.a0 > 1:
            raise ParameterError(f"OpampMacro.a0: open-loop gain must exceed 1, got {self.a0!r}")
        if not self.v_rail_neg_v < self.v_rail_pos_v:
            raise ParameterError(f"OpampMacro.v_rail_neg_v ({self.v_rail_neg_v}) must be below "
                                 f"v_rail_pos_v ({self.v_rail_pos_v})")
        if self.r_out_ohm < 0:
            raise ParameterError(f"OpampMacro.r_out_ohm: must be >= 0, got {self.r_out_ohm!r}")
        if not self.name or spice_name(self.name) != self.name:
            raise ParameterError(f"OpampMacro.name: {self.name!r} is not a sanitized SPICE name")

    @classmethod
    def default(cls) -> OpampMacro:
        """The nominal card from ``models/devices/opamp_macro.json``."""
        return _load_default()

    def with_(self, **changes: float | str) -> OpampMacro:
        """A copy with some parameters changed (give a new ``name`` if both are used in one deck)."""
        return replace(self, **changes)

    @property
    def r1_ohm(self) -> float:
        return self.a0 / self.gm_s

    @property
    def c1_f(self) -> float:
        return self.gm_s / (2 * math.pi * self.gbw_hz)

    @property
    def i_max_a(self) -> float:
        return self.slew_v_per_s * self.c1_f

    def closed_loop_gain(self, ideal_gain: float, beta: float) -> float:
        """Ideal gain times the finite-gain factor 1/(1 + 1/(A_0·β)) (feedback factor β)."""
        return ideal_gain / (1.0 + 1.0 / (self.a0 * beta))

    def subckt(self) -> Subckt:
        """The ``.subckt <name> inp inn out`` definition."""
        pi = "inp"
        elements: list[Element] = []
        if self.v_offset_v != 0.0:
            pi = "pi"
            elements.append(vsource("os", "pi", "inp", self.v_offset_v))  # V(pi) = V(inp) + V_os
        i_max = self.i_max_a
        elements.append(bsource("gm", "0", "n1", f"{fmt(i_max)}*tanh({fmt(self.gm_s / i_max)}*(V({pi})-V(inn)))",
                                current=True))
        elements += [resistor("gain", "n1", "0", self.r1_ohm), capacitor("pole", "n1", "0", self.c1_f)]
        above = _softplus(f"V(n1)-({fmt(self.v_rail_pos_v)})")
        below = _softplus(f"({fmt(self.v_rail_neg_v)})-V(n1)")
        elements.append(bsource("clamp", "n1", "0", f"{fmt(CLAMP_S)}*({above}-{below})", current=True))
        if self.r_out_ohm > 0:
            elements += [vcvs("buf", "n2", "0", "n1", "0", 1.0), resistor("out", "n2", "out", self.r_out_ohm)]
        else:
            elements.append(vcvs("buf", "out", "0", "n1", "0", 1.0))
        return Subckt(self.name, ("inp", "inn", "out"), elements,
                      comment=f"op-amp macro A0={fmt(self.a0)} GBW={fmt(self.gbw_hz)} Hz "
                              f"rails {fmt(self.v_rail_neg_v)}..{fmt(self.v_rail_pos_v)} V")


def _softplus(u: str) -> str:
    """Smooth max(u, 0) with knee width KNEE_V, written so exp() never overflows."""
    k = fmt(KNEE_V)
    return f"(max({u},0)+{k}*ln(1+exp(-abs({u})/{k})))"


@functools.lru_cache(maxsize=1)
def _load_default() -> OpampMacro:
    path = model_file("devices", "opamp_macro.json")
    try:
        data = json.loads(path.read_text())
        params = {k: float(v["value"]) for k, v in data["parameters"].items()}
        return OpampMacro(name=spice_name(data.get("name", "opamp_macro")), **params)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a valid op-amp macro card ({exc})") from exc
