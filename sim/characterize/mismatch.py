"""Monte Carlo mismatch for the op-amp and crossbar blocks, applied to a bench deck.

The op-amp blocks (`circuits.spice.blocks_*`) and the crossbar column are designed from
nominal values and carry no mismatch of their own; the current-mode blocks draw Pelgrom
mismatch per transistor themselves (``mismatch_seed``). This module perturbs a finished
bench `Deck` device by device, so every resistor, capacitor, NPN and op-amp of the block
gets its own error while the bench (sources, load) stays ideal:

| device | error drawn (z ~ N(0, 1), one per device) | source |
|---|---|---|
| resistor | R·(1 + σ_R·z), σ_R = 0.5 % | discrete 1 % parts, σ ≈ tolerance/2 |
| capacitor | C·(1 + σ_C·z), σ_C = 1 % | |
| NPN | emitter area 1 + σ_IS·z (I_S ∝ area), σ_IS = 1 % | log-pair matching |
| op-amp | input offset V_os = σ_os·z in series with its + input, σ_os = 0.3 mV | precision bipolar part (the log amp's smallest input is 2.5 mV) |
| PCM device (``gp_*``/``gn_*``) | G + σ_prog(g_T)·z, kept ≥ 0.1 % of G | Joshi et al. 2020 (SCIENCE.md) |

with σ_prog(g_T) = max(−1.1731·g_T² + 1.9650·g_T + 0.2635, 0) µS·(g_max/25 µS), g_T = G/g_max.
Each op-amp instance gets its own copy of the macro subcircuit (``<macro>_mc<k>``) with its
offset, so two op-amps of one block never share an error. Resistors written inside behavioural
switches (the integrator's input and reset paths) are not perturbed; its gain error comes
from C. Devices are visited in deck order, so one generator state is one reproducible chip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from circuits.errors import ParameterError
from circuits.spice.netlist import Deck, Element, Subckt, fmt, spice_name
from circuits.spice.opamp_macro import OpampMacro

_log = logging.getLogger(__name__)

PCM_PREFIXES = ("gp_", "gn_")  # crossbar conductance devices (crossbar_blocks.column_elements)
PCM_PROG_COEFF_US = (0.2635, 1.9650, -1.1731)  # σ_prog polynomial in g_T (Joshi et al. 2020), µS at 25 µS
PCM_REF_G_MAX_S = 25e-6


@dataclass(frozen=True, slots=True)
class OpampMismatch:
    """Spreads of the passive parts, NPNs, op-amp offsets and PCM devices of one block instance."""

    sigma_r_rel: float = 5e-3
    sigma_c_rel: float = 1e-2
    sigma_is_rel: float = 1e-2
    sigma_offset_v: float = 0.3e-3
    pcm_g_max_s: float = 25e-6
    pcm_noise_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("sigma_r_rel", "sigma_c_rel", "sigma_is_rel", "sigma_offset_v", "pcm_noise_scale"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise ParameterError(f"OpampMismatch.{name}: must be a finite number >= 0, got {v!r}")
        if not self.pcm_g_max_s > 0:
            raise ParameterError(f"OpampMismatch.pcm_g_max_s: must be > 0, got {self.pcm_g_max_s!r}")

    def describe(self) -> dict[str, float]:
        """JSON-ready spreads, recorded with the characterization's provenance."""
        return {"sigma_r_rel": self.sigma_r_rel, "sigma_c_rel": self.sigma_c_rel,
                "sigma_is_rel": self.sigma_is_rel, "sigma_offset_v": self.sigma_offset_v,
                "pcm_g_max_s": self.pcm_g_max_s, "pcm_noise_scale": self.pcm_noise_scale}

    def pcm_sigma_s(self, g_s: float) -> float:
        """σ_prog of a device programmed to ``g_s`` siemens (Joshi et al. 2020, scaled to g_max)."""
        g_t = min(max(g_s / self.pcm_g_max_s, 0.0), 1.0)
        c0, c1, c2 = PCM_PROG_COEFF_US
        sigma_us = max(c0 + c1 * g_t + c2 * g_t * g_t, 0.0) * self.pcm_g_max_s / PCM_REF_G_MAX_S
        return self.pcm_noise_scale * sigma_us * 1e-6


def perturb_deck(deck: Deck, macro: OpampMacro, rng: np.random.Generator,
                 spread: OpampMismatch = OpampMismatch()) -> Deck:
    """A copy of ``deck`` whose block subcircuits carry one drawn instance of device errors.

    Every subcircuit except the op-amp macro ``macro`` is perturbed (the bench's top-level
    elements are not). Op-amp instances are re-pointed to per-instance macro copies.
    """
    macro_name = spice_name(macro.name)
    variants: list[Subckt] = []
    subckts: list[Subckt] = []
    for sub in deck.subckts:
        if spice_name(sub.name) == macro_name:
            subckts.append(sub)
            continue
        elements = []
        for el in sub.elements:
            if el.letter.upper() == "X" and el.value == macro_name:
                k = len(variants)
                offset = float(spread.sigma_offset_v * rng.standard_normal())
                variant = macro.with_(v_offset_v=macro.v_offset_v + offset, name=f"{macro_name}_mc{k}")
                variants.append(variant.subckt())
                el = replace(el, value=spice_name(variant.name))
            else:
                el = _perturb_element(el, rng, spread)
            elements.append(el)
        subckts.append(Subckt(sub.name, sub.ports, elements, dict(sub.params), sub.comment))
    _log.debug("perturbed deck %r: %d op-amp instances", deck.title, len(variants))
    return Deck(deck.title + " (mismatch)", list(deck.models), variants + subckts, list(deck.elements),
                list(deck.analyses), dict(deck.options), list(deck.includes), list(deck.prints))


def _perturb_element(el: Element, rng: np.random.Generator, spread: OpampMismatch) -> Element:
    """One device with its drawn error (unchanged for sources and behavioural elements)."""
    letter = el.letter.upper()
    if letter == "R":
        ohms = float(el.value)
        if el.name.startswith(PCM_PREFIXES):
            g = 1.0 / ohms
            g_new = g + spread.pcm_sigma_s(g) * rng.standard_normal()
            g_new = max(g_new, 1e-3 * g)  # a programmed device never becomes an open circuit
            return replace(el, value=fmt(1.0 / g_new))
        return replace(el, value=fmt(ohms * _factor(rng, spread.sigma_r_rel)))
    if letter == "C":
        return replace(el, value=fmt(float(el.value) * _factor(rng, spread.sigma_c_rel)))
    if letter == "Q":
        params = dict(el.params)
        params["area"] = float(params.get("area", 1.0)) * _factor(rng, spread.sigma_is_rel)
        return replace(el, params=params)
    return el


def _factor(rng: np.random.Generator, sigma: float) -> float:
    """1 + σ·z, kept positive (a 4σ draw of a 1 % spread is still far from 0)."""
    return max(1.0 + sigma * float(rng.standard_normal()), 1e-3)
