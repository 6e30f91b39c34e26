"""The device bill a primitive declares (used in compile summaries) matches the circuit built for it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from circuits import opamp
from circuits.spice.library import block_for

LETTER = {"R": "resistor", "D": "diode", "Q": "bjt", "C": "capacitor", "I": "current_source"}

PRIMS = {
    "rectifier": opamp.PrecisionRectifier(),
    "leaky": opamp.PrecisionRectifier(0.1),
    "clipper": opamp.Clipper(-1.0, 1.0),
    "tanh": opamp.DiffPairActivation("tanh"),
    "sigmoid": opamp.DiffPairActivation("sigmoid"),
    "log": opamp.LogAmp(),
    "exp": opamp.AntilogAmp(),
    "mul": opamp.LogExpMultiplier(),
    "div": opamp.LogExpDivider(),
    "elementwise": opamp.ElementwiseSummer((1.0, -1.0), 0.5),
    "average": opamp.AveragingSummer((-1,), 0.25, 4),
    "summer": opamp.InvertingSummerArray(np.array([[-0.35, 5.24]]), np.array([2.6])),
}


def _built(block) -> Counter:
    count: Counter = Counter()
    for sub in block.subckts():
        if sub.name == "opamp_macro":
            continue
        for e in sub.elements:
            letter = e.letter.upper()
            if letter == "X" and e.value == "opamp_macro":
                count["opamp"] += 1
            elif letter in LETTER:
                count[LETTER[letter]] += 1
    return count


@pytest.mark.parametrize("name", sorted(PRIMS))
def test_declared_bill_matches_circuit(name):
    prim = PRIMS[name]
    block = block_for(prim, 0, 0.1 if name in ("mul", "div") else 1.0)
    assert _built(block) == +prim.devices(1)
