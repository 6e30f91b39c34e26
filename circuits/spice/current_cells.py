"""Binas et al. 2016 current-mode cells at transistor level: the 11-transistor synapse, the 5-transistor soma.

Subthreshold current mirrors (VDD 1.8 V, nA currents). Kelvin's reconstruction of the
circuits described in arXiv 1606.07786 (the transistor counts are the paper's, the wiring ours):

Soma (5 T, ports ``in vn vp vdd vss``): M0 diode-connected NMOS takes the net input current
and rectifies it (a negative net current cannot flow through it: ReLU). M1 copies it into
the PMOS diode M2, whose gate ``vp`` drives the next layer's PMOS branches; M3 copies it
into the NMOS diode M4, whose gate ``vn`` drives their NMOS branches. All five have
multiplicity ``m_diode`` (4) unit devices, so every diode carries I_soma = max(0, I_in).

Synapse (11 T, ports ``vn vp out b0 b1 b2 sgn vdd vss``): an NMOS bank (multiplicities
4/2/1, gates ``vn``) and a PMOS bank (4/2/1, gates ``vp``) share three drain nodes; three
NMOS switches (bits b2 b1 b0) connect them to ``out``; the sign-select pair (NMOS to vss,
PMOS to vdd, both gated by ``sgn``) powers one bank: sgn = 0 sources current into ``out``
(excitatory), sgn = 1 sinks it (inhibitory). With k = (−1)^sgn·(4·b2 + 2·b1 + b0):

    I_out = k·I_soma/m_diode = k·w_unit·I_soma,   w_unit = 1/m_diode = 0.25 (Binas' weight step)

Drain voltages differ between a diode (V_DS = V_GS ≈ V_th) and its copies (V_DS ≈ VDD − V_th,n
− V_th,p), which in subthreshold raises a copy's current by ΔV/V_A (Early effect, V_A = V_A'·L).
The copies M1, M3 and the PMOS branches are narrowed by 1/(1 + ΔV/V_A) to cancel it; the NMOS
branches drain into a soma node, like their diode M4, and need no trim.

Mismatch: each transistor can get its own ``delvto`` and β multiplier (`devices.draw_mismatch`,
Pelgrom), written into the instance cards as subcircuit parameters ``dvt_*``/``bf_*``. `ChipDraw`
keys each cell's draw by its position, ``SeedSequence([seed, node, copy, *cell])`` (network
netlists, like `sim.characterize.sweeps.instance_seed`), so a cell's devices do not depend on what
else was emitted before it; single-cell benches still draw in a fixed order from one stream.

Sizing presets (`CellSizing.preset`): ``default`` 2 µm × 4 µm unit mirrors; ``compact`` 1 µm ×
2 µm and ``minimum`` 0.26 µm × 0.52 µm, the same W/L (so the same I_spec: weak inversion over the
same signal range) at 1/4 and 1/59 of the area and 2× and 7.7× the Pelgrom spread
(σ(ΔVt) = A_vt/√(W·L)); `CellSizing.report` gives both numbers. Trims narrow the effective width
W − 2·WINT (`DeviceCard.scaled_width_m`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from circuits.errors import ParameterError
from circuits.spice.block import index_sweep, indexed_inputs
from circuits.spice.devices import DeviceCard, Polarity, draw_mismatch
from circuits.spice.netlist import Deck, Element, Subckt, instance, isource, vsource

MAX_LEVEL = 7
DEFAULT_AMPS_PER_UNIT = 100e-9  # x = 1 is 100 nA, Binas' reference peak
V_SOMA_V = 0.4  # a soma (NMOS diode) node at tens of nA: where synapse outputs and read-outs drain
SYNAPSE_PORTS = ("vn", "vp", "out", "b0", "b1", "b2", "sgn", "vdd", "vss")
SOMA_PORTS = ("in", "vn", "vp", "vdd", "vss")


@dataclass(frozen=True, slots=True)
class Mos:
    """One transistor of a cell: terminals, polarity, one unit's W and L (m), and how many units in parallel."""

    name: str
    d: str
    g: str
    s: str
    b: str
    polarity: Polarity
    w_m: float
    l_m: float
    m: int = 1


SIZINGS = ("default", "compact", "minimum")
# unit mirror W, L of the presets below the default; minimum: trimmed copies at W_min, L at the Early table's shortest
SMALL_UNITS = {"compact": (1e-6, 2e-6), "minimum": (0.26e-6, 0.52e-6)}
U_T_V = 0.025852  # thermal voltage kT/q at 27 °C, the card's tnom


@dataclass(frozen=True, slots=True)
class CellSizing:
    """Unit mirror device W×L, switch sizes and diode multiplicity shared by soma and synapse.

    Unit 2 µm × 4 µm: weak inversion up to ~100 nA per unit (I_spec = 2·n·µCox·U_T²·W/L ≈ 240 nA
    n-type), V_A ≈ 31 V (n) / 68 V (p), σ(ΔV_t) = 3.3 mV·µm/√8 µm² ≈ 1.2 mV per unit.
    """

    card: DeviceCard = field(default_factory=DeviceCard.load)
    w_unit_m: float = 2e-6
    l_unit_m: float = 4e-6
    w_switch_m: float = 1e-6
    l_switch_m: float = 0.36e-6
    w_sign_m: float = 4e-6
    l_sign_m: float = 0.5e-6
    m_diode: int = 4
    trim: bool = True

    def __post_init__(self) -> None:
        for name in ("w_unit_m", "l_unit_m", "w_switch_m", "l_switch_m", "w_sign_m", "l_sign_m"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"CellSizing.{name} must be > 0, got {getattr(self, name)!r}")
        if not (isinstance(self.m_diode, int) and self.m_diode >= 1):
            raise ParameterError(f"CellSizing.m_diode must be an integer >= 1, got {self.m_diode!r}")

    @property
    def w_unit(self) -> float:
        """The weight step: one unit branch over the m_diode-unit diode."""
        return 1.0 / self.m_diode

    @classmethod
    def preset(cls, name: str = "default", card: DeviceCard | None = None) -> CellSizing:
        """A named sizing (`SIZINGS`): ``default`` (2 µm × 4 µm), ``compact`` (1 µm × 2 µm) or
        ``minimum`` (0.26 µm × 0.52 µm, 1/15 of compact's mirror area and 3.8× its Pelgrom spread).

        All three keep W/L = 1/2, so I_spec = 2·n·µCox·U_T²·W/L (≈ 240 nA n, 73 nA p per unit) and
        with it the inversion level over the signal range are unchanged. Compact is the smallest
        whose nominal network stays within about 1 % FS RMS of its quantized weights in ngspice
        (digits MLP, 100 inputs: 0.50 % default, 0.76 % compact, 1.76 % minimum, where the Early
        drift the quantized model leaves out has grown; the chip model, which includes it, follows
        the minimum chip 2 to 1.08 %). Minimum is the process's floor for these mirrors: the shortest L
        the card's Early table measures (0.5 µm) and the narrowest unit whose Early-trimmed copies
        (about 14 % narrower) still meet the card's W_min (0.22 µm); it is the regime of Binas et
        al.'s minimum-size transistors, where an ideally trained network loses 5-17 points on a
        chip and training for that chip wins them back. The switches keep their W/L at the minimum L.
        """
        base = cls() if card is None else cls(card=card)
        if name == "default":
            return base
        if name not in SMALL_UNITS:
            raise ParameterError(f"sizing {name!r}: choose one of {', '.join(SIZINGS)}")
        w, ln = SMALL_UNITS[name]
        lmin = base.card.l_min_m
        return replace(base, w_unit_m=w, l_unit_m=ln, w_switch_m=lmin * 1e-6 / 0.36e-6,
                       l_switch_m=lmin, w_sign_m=lmin * 4e-6 / 0.5e-6, l_sign_m=lmin)

    def report(self) -> dict[str, float]:
        """Area and Pelgrom spread of this sizing (device card's A_vt, A_β; Pelgrom et al. 1989).

        σ(ΔVt) = A_vt/√(W·L·m), σ(Δβ/β) = A_β/√(W·L·m); a unit branch (m = 1) copying an m_diode
        diode in weak inversion errs by σ(ln I) = √(σ²_unit + σ²_diode)/(n·U_T) (ΔVt only); the unit
        copy's own share, ΔVt and β, is √((σ_unit/(n·U_T))² + σ²_β) (``sigma_copy_rel``);
        gate areas Σ W·L·m over each cell's transistors (`NeuronCircuit`, `SynapseCircuit`).
        """
        c, w, ln, md = self.card, self.w_unit_m, self.l_unit_m, self.m_diode
        s_unit = c.a_vt_v_m / float(np.sqrt(w * ln))
        s_diode = c.a_vt_v_m / float(np.sqrt(w * ln * md))
        n_ut = c.subthreshold_n * U_T_V

        def area(devs: Sequence[Mos]) -> float:
            return float(sum(t.w_m * t.l_m * t.m for t in devs))

        return {
            "w_unit_m": w, "l_unit_m": ln, "unit_area_m2": w * ln,
            "soma_area_m2": area(NeuronCircuit(self).devices()),
            "synapse_area_m2": area(SynapseCircuit(self).devices()),
            "sigma_dvt_unit_v": s_unit, "sigma_dvt_diode_v": s_diode,
            "sigma_beta_unit": c.a_beta_m / float(np.sqrt(w * ln)),
            "sigma_branch_rel": float(np.hypot(s_unit, s_diode)) / n_ut,
            "sigma_copy_rel": float(np.hypot(s_unit / n_ut, c.a_beta_m / np.sqrt(w * ln))),
            "i_spec_n_a": 2 * c.subthreshold_n * c.kp_n_a_v2 * U_T_V**2 * w / ln,
            "i_spec_p_a": 2 * c.subthreshold_n * c.kp_p_a_v2 * U_T_V**2 * w / ln,
            "early_n_v": c.early_voltage_v("n", ln), "early_p_v": c.early_voltage_v("p", ln),
        }

    def trimmed_w_m(self, polarity: Polarity, dv_v: float) -> float:
        """Unit width of a copy whose drain sits ``dv_v`` further from its source than its diode's: its
        effective width divided by 1 + ΔV/V_A (`DeviceCard.scaled_width_m`, `DeviceCard.early_voltage_v`)."""
        if not self.trim:
            return self.w_unit_m
        c = self.card
        return c.scaled_width_m(self.w_unit_m, 1.0 / (1.0 + max(dv_v, 0.0) / c.early_voltage_v(polarity, self.l_unit_m)))

    def copy_w_m(self, polarity: Polarity) -> float:
        """A copy trimmed for diodes at V_th (the single-cell benches): ΔV = VDD − V_th,n − V_th,p."""
        c = self.card
        return self.trimmed_w_m(polarity, c.vdd_v - c.vth_n_v - c.vth_p_v)


def cell_subckt(card: DeviceCard, name: str, ports: Sequence[str], devices: Sequence[Mos], mismatch: bool,
                comment: str) -> Subckt:
    """A cell as a .subckt; with ``mismatch`` each device's delvto and β are parameters dvt_*/bf_*."""
    elements, params = [], {}
    for t in devices:
        if mismatch:
            params[f"dvt_{t.name}"], params[f"bf_{t.name}"] = 0.0, 1.0
            el = card.mosfet(t.name, t.d, t.g, t.s, t.b, t.polarity, t.w_m, t.l_m, t.m,
                             delvto=f"{{dvt_{t.name}}}", beta=f"{{bf_{t.name}}}")
        else:
            el = card.mosfet(t.name, t.d, t.g, t.s, t.b, t.polarity, t.w_m, t.l_m, t.m)
        elements.append(el)
    return Subckt(name + ("_mm" if mismatch else ""), tuple(ports), elements, params, comment)


def mismatch_params(card: DeviceCard, devices: Sequence[Mos], rng: np.random.Generator) -> dict[str, float]:
    """Instance parameters dvt_*/bf_* for one cell instance, drawn from ``rng`` (Pelgrom)."""
    dvt, beta = draw_mismatch(rng, [(t.w_m, t.l_m, t.m) for t in devices], card.a_vt_v_m, card.a_beta_m)
    out: dict[str, float] = {}
    for t, d, b in zip(devices, dvt, beta, strict=True):
        out[f"dvt_{t.name}"], out[f"bf_{t.name}"] = float(d), float(b)
    return out


@dataclass(frozen=True, slots=True)
class NeuronCircuit:
    """The 5-transistor soma: rectifying NMOS diode plus the mirrors making ``vn`` and ``vp``."""

    sizing: CellSizing = field(default_factory=CellSizing)
    name: str = "cm_soma"

    def devices(self) -> list[Mos]:
        s, md = self.sizing, self.sizing.m_diode
        w, ln = s.w_unit_m, s.l_unit_m
        return [
            Mos("m0", "in", "in", "vss", "vss", "n", w, ln, md),  # rectifying diode
            Mos("m1", "vp", "in", "vss", "vss", "n", s.copy_w_m("n"), ln, md),
            Mos("m2", "vp", "vp", "vdd", "vdd", "p", w, ln, md),  # vp diode
            Mos("m3", "vn", "vp", "vdd", "vdd", "p", s.copy_w_m("p"), ln, md),
            Mos("m4", "vn", "vn", "vss", "vss", "n", w, ln, md),  # vn diode
        ]

    def subckt(self, mismatch: bool = False) -> Subckt:
        return cell_subckt(self.sizing.card, self.name, SOMA_PORTS, self.devices(), mismatch,
                           "Binas soma: diode rectifier M0, mirrors to vp (M1, M2) and vn (M3, M4)")


@dataclass(frozen=True, slots=True)
class SynapseCircuit:
    """The 11-transistor synapse: 4/2/1 NMOS and PMOS banks, three bit switches, sign-select pair."""

    sizing: CellSizing = field(default_factory=CellSizing)
    name: str = "cm_synapse"

    def devices(self) -> list[Mos]:
        s = self.sizing
        w, ln, wp = s.w_unit_m, s.l_unit_m, s.copy_w_m("p")
        bank = [Mos(f"mn{m}", f"c{m}", "vn", "ns", "vss", "n", w, ln, m) for m in (4, 2, 1)]
        bank += [Mos(f"mp{m}", f"c{m}", "vp", "ps", "vdd", "p", wp, ln, m) for m in (4, 2, 1)]
        switches = [Mos(f"ms{m}", f"c{m}", bit, "out", "vss", "n", s.w_switch_m, s.l_switch_m)
                    for m, bit in ((4, "b2"), (2, "b1"), (1, "b0"))]
        sign = [Mos("msn", "ns", "sgn", "vss", "vss", "n", s.w_sign_m, s.l_sign_m),
                Mos("msp", "ps", "sgn", "vdd", "vdd", "p", s.w_sign_m, s.l_sign_m)]
        return bank + switches + sign

    def subckt(self, mismatch: bool = False) -> Subckt:
        return cell_subckt(self.sizing.card, self.name, SYNAPSE_PORTS, self.devices(), mismatch,
                           "Binas synapse: I_out = k*I_soma/m_diode, k = (-1)^sgn (4 b2 + 2 b1 + b0)")


def level_bits(k: int) -> tuple[int, int, int, int]:
    """(b0, b1, b2, sgn) for weight level k in −7..7 (k = 0 is written with sgn = 0)."""
    if not (isinstance(k, int | np.integer) and -MAX_LEVEL <= k <= MAX_LEVEL):
        raise ParameterError(f"weight level must be an integer in -{MAX_LEVEL}..{MAX_LEVEL}, got {k!r}")
    mag = abs(int(k))
    return mag & 1, (mag >> 1) & 1, (mag >> 2) & 1, int(k < 0)


def bit_nodes(k: int) -> tuple[str, str, str, str]:
    """The synapse bit ports tied to the rails for a fixed weight level k."""
    return tuple("vdd" if bit else "vss" for bit in level_bits(k))  # type: ignore[return-value]


def quantize(weights: np.ndarray, w_unit: float) -> np.ndarray:
    """Levels k = clip(round(w/w_unit), −7, 7) (Binas: 3 bits + sign, weight = k·w_unit)."""
    return np.clip(np.rint(np.asarray(weights, dtype=np.float64) / w_unit), -MAX_LEVEL, MAX_LEVEL).astype(int)


class ChipDraw:
    """Per-instance mismatch parameters from one seed (None: nominal devices).

    ``params(devices, key)`` draws a cell from ``SeedSequence([seed, *key])``: the same seed and key
    give the same devices whatever was drawn before (network netlists key cells by node, copy and
    position in the node). Without a key, cells draw in call order from one stream ``[seed, stream]``
    (single-cell benches).
    """

    def __init__(self, card: DeviceCard, seed: int | None, stream: int = 0) -> None:
        if seed is not None and not card.supports_delvto:
            raise ParameterError(f"mismatch_seed: {card.name} devices do not support per-instance delvto")
        if seed is not None and not (isinstance(seed, int | np.integer) and seed >= 0):
            raise ParameterError(f"mismatch_seed: must be an integer >= 0, got {seed!r}")
        self.card = card
        self.seed = None if seed is None else int(seed)
        self.rng = None if seed is None else np.random.default_rng([int(seed), stream])

    @property
    def enabled(self) -> bool:
        return self.rng is not None

    def params(self, devices: Sequence[Mos], key: Sequence[int] | None = None) -> dict[str, float]:
        if self.rng is None or self.seed is None:
            return {}
        rng = self.rng if key is None else np.random.default_rng(np.random.SeedSequence([self.seed, *map(int, key)]))
        return mismatch_params(self.card, devices, rng)


def supplies(card: DeviceCard) -> list[Element]:
    return [vsource("dd", "vdd", "0", card.vdd_v), vsource("ss", "vss", "0", 0.0)]


def synapse_level_bench(sizing: CellSizing, i_in_a: float, levels: Sequence[int], v_out_v: float,
                        mismatch_seed: int | None = None) -> Deck:
    """One soma fed ``i_in_a`` driving one synapse whose bits step through ``levels`` in one .dc sweep.

    ``out`` is held at ``v_out_v`` (a soma node's voltage) by source ``Vout``: the synapse current
    into ``out`` is ``vout#branch`` (positive = excitatory), ideally k·i_in_a/m_diode.
    """
    soma, syn = NeuronCircuit(sizing), SynapseCircuit(sizing)
    draw = ChipDraw(sizing.card, mismatch_seed)
    bits = np.array([level_bits(int(k)) for k in levels], dtype=np.float64)
    deck = Deck("Binas synapse levels", models=sizing.card.models(),
                subckts=[soma.subckt(draw.enabled), syn.subckt(draw.enabled)])
    deck.elements += [
        *supplies(sizing.card),
        isource("in", "vdd", "pre", i_in_a),
        instance("pre", soma.subckt(draw.enabled).name, ("pre", "vn", "vp", "vdd", "vss"),
                 draw.params(soma.devices())),
        instance("syn", syn.subckt(draw.enabled).name, ("vn", "vp", "out", "b0", "b1", "b2", "sgn", "vdd", "vss"),
                 draw.params(syn.devices())),
        vsource("out", "out", "0", v_out_v),
        *indexed_inputs(bits, ["b0", "b1", "b2", "sgn"], sizing.card.vdd_v),
    ]
    return index_sweep(deck, len(bits))


def count_mosfets(subckt: Subckt) -> int:
    """Transistor cards of a cell's subckt (M cards, or X cards of a PDK's transistor subcircuits)."""
    return sum(e.letter.upper() in "MX" for e in subckt.elements)
