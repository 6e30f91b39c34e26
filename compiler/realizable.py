"""Can a block's emitted components be built? Resistors, capacitors, source levels and mirror gains
outside what a circuit can realize (a 1e-25 Ω resistor from a weight of 1e30) are a compile error.

The limits are those of the circuits Kelvin emits itself: resistors from the op-amp macro's 1 Ω
output stage to the 1 TΩ leak that keeps nodes DC-defined; subthreshold currents below 1 mA;
a DC level inside the supply rails; a mirror ratio (soma ``gain``) up to 1000.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from circuits.spice.netlist import Element, Subckt

R_OHM = (1.0, 1e12)
C_F = (1e-18, 1.0)
I_MAX_A = 1e-3
GAIN_MAX = 1e3  # soma / mirror ratio: a mirror of more than ~1000 unit devices is not a circuit


@dataclass(frozen=True, slots=True)
class Problem:
    """One component out of range: which card, its value and the range it must be in."""

    card: str
    value: float
    allowed: str

    def __str__(self) -> str:
        return f"{self.card} = {self.value:.4g} (realizable: {self.allowed})"


def problems(elements: Iterable[Element], subckts: Iterable[Subckt], rail_v: float) -> list[Problem]:
    """Components out of range among ``elements`` and the bodies of ``subckts``."""
    found: list[Problem] = []
    for e in [*elements, *(x for s in subckts for x in s.elements)]:
        p = _check(e, rail_v)
        if p is not None:
            found.append(p)
    return found


def _check(e: Element, rail_v: float) -> Problem | None:
    letter = e.letter.upper()
    card = f"{letter}{e.name}"
    if letter == "R":
        return _range(card, _number(e.value), *R_OHM, "1 ohm .. 1 Tohm")
    if letter == "C":
        return _range(card, _number(e.value), *C_F, "1 aF .. 1 F")
    if letter in "VI":
        parts = e.value.split()
        level = _number(parts[1]) if len(parts) > 1 and parts[0].upper() == "DC" else None
        if level is None:
            return None
        limit, unit = (rail_v, "V") if letter == "V" else (I_MAX_A, "A")
        return None if abs(level) <= limit * (1 + 1e-9) else Problem(card, level, f"|level| <= {limit:g} {unit}")
    if letter == "X":
        gain = e.params.get("gain")
        if isinstance(gain, (int, float)) and not 0 < abs(gain) <= GAIN_MAX:
            return Problem(f"{card} gain", float(gain), f"0 < gain <= {GAIN_MAX:g}")
    return None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # a model or subcircuit name, or a brace expression: not a value


def _range(card: str, value: float | None, lo: float, hi: float, allowed: str) -> Problem | None:
    if value is None or lo <= abs(value) <= hi:
        return None
    return Problem(card, value, allowed)
