"""A transistor-level two-stage Miller op-amp on a `DeviceCard` (default: Kelvin's BSIM3 180 nm, VDD 1.8 V).

Topology (Allen & Holberg, *CMOS Analog Circuit Design*, §6.2; Gray, Hurst, Lewis & Meyer §9.2):

    M1/M2  NMOS differential pair (inn on M1, inp on M2), M5 tail, M8 bias diode (I_bias in)
    M3/M4  PMOS mirror load; first-stage output x at the M2/M4 drains
    M6     PMOS common-source second stage, M7 NMOS current sink (mirror of M8)
    Cc, Rz Miller capacitor from x to out with a series nulling resistor

Design equations (I_D from the mirror ratios, gm from the EKV interpolation
gm/I_D = 2/(n·U_T·(1 + √(1 + 4·IC))), IC = I_D/I_spec, I_spec = 2·n·µCox·U_T²·W/L):

    I_tail = I_bias·(W/L)5/(W/L)8,  I_6 = I_bias·(W/L)7/(W/L)8
    A_v(0) = gm1/(gds2 + gds4) · gm6/(gds6 + gds7)
    GBW    = gm1/(2π·Cc)                   slew = I_tail/Cc
    p2     ≈ gm6/(2π·C_L)                  zero z = 1/(2π·Cc·(1/gm6 − Rz)) → LHP for Rz > 1/gm6
    Rz     = (1 + C_L/Cc)/gm6 places the zero on p2 (Allen & Holberg eq. 6.2-35)
    no systematic offset when (W/L)6/(W/L)4 = 2·(W/L)7/(W/L)5

The bias current is an ideal source inside the subcircuit, standing for an on-chip reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from circuits.errors import ParameterError
from circuits.spice.devices import DeviceCard
from circuits.spice.netlist import Deck, Element, Subckt, capacitor, instance, isource, resistor, vsource

THERMAL_VOLTAGE_V = 0.025852  # kT/q at 300 K
PORTS = ("inp", "inn", "out", "vdd", "vss")


def gm_over_id(i_d_a: float, w_over_l: float, kp_a_v2: float, n: float) -> float:
    """EKV all-region gm/I_D (1/V): 1/(n·U_T) in weak inversion, falling as 1/√IC in strong."""
    i_spec = 2 * n * kp_a_v2 * THERMAL_VOLTAGE_V**2 * w_over_l
    ic = i_d_a / i_spec
    return 2.0 / (n * THERMAL_VOLTAGE_V * (1.0 + math.sqrt(1.0 + 4.0 * ic)))


@dataclass(frozen=True, slots=True)
class MillerOpAmp:
    """Sizes (W, L in m) and bias of one two-stage Miller op-amp; design figures as properties."""

    card: DeviceCard = field(default_factory=DeviceCard.load)
    i_bias_a: float = 10e-6
    c_c_f: float = 3e-12
    c_load_f: float = 5e-12
    w_in_m: float = 8e-6   # M1, M2
    l_in_m: float = 0.5e-6
    w_load_m: float = 4e-6  # M3, M4
    l_load_m: float = 1e-6
    w_bias_m: float = 4e-6  # M8 (diode), reference for M5 and M7
    w_tail_m: float = 8e-6  # M5
    w_sink_m: float = 40e-6  # M7
    l_bias_m: float = 1e-6  # M5, M7, M8
    w_cs_m: float = 40e-6  # M6
    l_cs_m: float = 1e-6
    r_z_ohm: float | None = None  # None: (1 + C_L/Cc)/gm6

    def __post_init__(self) -> None:
        for name in ("i_bias_a", "c_c_f", "c_load_f", "w_in_m", "l_in_m", "w_load_m", "l_load_m", "w_bias_m",
                     "w_tail_m", "w_sink_m", "l_bias_m", "w_cs_m", "l_cs_m"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"MillerOpAmp.{name} must be > 0, got {getattr(self, name)!r}")
        if self.r_z_ohm is not None and not self.r_z_ohm > 0:
            raise ParameterError(f"MillerOpAmp.r_z_ohm must be > 0, got {self.r_z_ohm!r}")

    # --- design figures -------------------------------------------------------------------
    @property
    def i_tail_a(self) -> float:
        return self.i_bias_a * self.w_tail_m / self.w_bias_m

    @property
    def i_stage2_a(self) -> float:
        return self.i_bias_a * self.w_sink_m / self.w_bias_m

    @property
    def gm1_s(self) -> float:
        c = self.card
        return self.i_tail_a / 2 * gm_over_id(self.i_tail_a / 2, self.w_in_m / self.l_in_m, c.kp_n_a_v2,
                                              c.subthreshold_n)

    @property
    def gm6_s(self) -> float:
        c = self.card
        return self.i_stage2_a * gm_over_id(self.i_stage2_a, self.w_cs_m / self.l_cs_m, c.kp_p_a_v2,
                                            c.subthreshold_n)

    @property
    def gbw_hz(self) -> float:
        """GBW = gm1/(2π·Cc)."""
        return self.gm1_s / (2 * math.pi * self.c_c_f)

    @property
    def slew_v_per_s(self) -> float:
        """Slew rate = I_tail/Cc (the second stage sources far more than I_tail)."""
        return self.i_tail_a / self.c_c_f

    @property
    def p2_hz(self) -> float:
        return self.gm6_s / (2 * math.pi * self.c_load_f)

    @property
    def nulling_r_ohm(self) -> float:
        return self.r_z_ohm if self.r_z_ohm is not None else (1 + self.c_load_f / self.c_c_f) / self.gm6_s

    # --- netlist --------------------------------------------------------------------------
    def subckt(self, name: str = "miller_opamp") -> Subckt:
        """The op-amp as ``.subckt name inp inn out vdd vss``."""
        c = self.card
        m = [
            c.mosfet("1", "a", "inn", "tail", "vss", "n", self.w_in_m, self.l_in_m),
            c.mosfet("2", "x", "inp", "tail", "vss", "n", self.w_in_m, self.l_in_m),
            c.mosfet("3", "a", "a", "vdd", "vdd", "p", self.w_load_m, self.l_load_m),
            c.mosfet("4", "x", "a", "vdd", "vdd", "p", self.w_load_m, self.l_load_m),
            c.mosfet("5", "tail", "bias", "vss", "vss", "n", self.w_tail_m, self.l_bias_m),
            c.mosfet("6", "out", "x", "vdd", "vdd", "p", self.w_cs_m, self.l_cs_m),
            c.mosfet("7", "out", "bias", "vss", "vss", "n", self.w_sink_m, self.l_bias_m),
            c.mosfet("8", "bias", "bias", "vss", "vss", "n", self.w_bias_m, self.l_bias_m),
        ]
        passives: list[Element] = [
            isource("bias", "vdd", "bias", self.i_bias_a),
            resistor("z", "x", "xz", self.nulling_r_ohm),
            capacitor("c", "xz", "out", self.c_c_f),
        ]
        comment = (f"two-stage Miller op-amp: I_tail {self.i_tail_a:.3g} A, I_2 {self.i_stage2_a:.3g} A, "
                   f"GBW {self.gbw_hz:.3g} Hz (design)")
        return Subckt(name, PORTS, [*m, *passives], comment=comment)

    def _supplies(self) -> list[Element]:
        return [vsource("dd", "vdd", "0", self.card.vdd_v), vsource("ss", "vss", "0", 0.0)]

    def open_loop_bench(self, v_cm_v: float | None = None, f_stop_hz: float = 1e9) -> Deck:
        """AC open-loop gain: out fed back to inn through 1 GΩ with 1 F to ground (DC closed, AC open).

        Read ``out`` (complex) over ``frequency``; the AC source on inp has magnitude 1.
        """
        vcm = self.card.vdd_v / 2 if v_cm_v is None else v_cm_v
        sub = self.subckt()
        deck = Deck("miller op-amp open-loop AC", models=self.card.models(), subckts=[sub])
        deck.elements += [
            *self._supplies(),
            vsource("inp", "inp", "0", vcm, ac_v=1.0),
            resistor("fb", "out", "inn", 1e9),
            capacitor("fb", "inn", "0", 1.0),
            capacitor("load", "out", "0", self.c_load_f),
            instance("amp", sub.name, ("inp", "inn", "out", "vdd", "vss")),
        ]
        return deck.ac(20, 1.0, f_stop_hz)

    def buffer_bench(self, v_start_v: float, v_stop_v: float, v_step_v: float) -> Deck:
        """Unity-gain buffer (out tied to inn) with inp swept by ``.dc``; read ``out`` vs ``v-sweep``."""
        sub = self.subckt()
        deck = Deck("miller op-amp unity-gain buffer", models=self.card.models(), subckts=[sub])
        deck.elements += [
            *self._supplies(),
            vsource("inp", "inp", "0", v_start_v),
            capacitor("load", "out", "0", self.c_load_f),
            instance("amp", sub.name, ("inp", "out", "out", "vdd", "vss")),
        ]
        return deck.dc("inp", v_start_v, v_stop_v, v_step_v)
