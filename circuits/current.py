"""Current-mode subthreshold primitives after Binas et al. 2016 (ideal math and device bill).

Signals are currents; summing is free (Kirchhoff), weights are programmable current mirrors
(11 transistors per synapse: sign-select pair, three binary-weighted 4/2/1 branches and their
switches), and a neuron is a diode-connected soma that rectifies plus the mirrors feeding the
next layer (5 transistors). Ideal semantics use the exact weights; quantizing them to the
3-bit + sign levels is a hardware model, applied later, not part of the ideal function.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from circuits import ideal
from circuits.base import LinearBank, Primitive, Softmax, WeightedSum, WindowMax, WindowSum

SYNAPSE_TRANSISTORS = 11
NEURON_TRANSISTORS = 5
SOFTMAX_TRANSISTORS = 5  # per element: two input copies, the pair device, a PMOS diode and its copy


@dataclass(frozen=True, slots=True, eq=False)
class SynapseArray(LinearBank):
    """Synapses onto a layer of neurons: y = ReLU(W·x + b) when ``rectify``, else W·x + b.

    A non-rectifying layer is read out by a pair of somas per output fed by the synapses and
    their negated copies (positive and negative parts), so signed outputs survive: twice the
    synapses. The bias is a synapse from a reference current.
    """

    kind: ClassVar[str] = "current.synapse_array"
    rectify: bool = False

    def ideal(self, x: np.ndarray) -> np.ndarray:
        y = ideal.dense(x, self.weights, self.bias)
        return ideal.rectify(y, 0.0) if self.rectify else y

    def devices(self, lanes: int) -> Counter[str]:
        outs = int(np.prod(self.weights.shape[:-1]))
        synapses = int(np.count_nonzero(self.weights))
        if self.bias is not None:
            synapses += int(np.count_nonzero(self.bias))
        sides = 1 if self.rectify else 2
        return Counter(mosfet=sides * (SYNAPSE_TRANSISTORS * synapses + NEURON_TRANSISTORS * outs))

@dataclass(frozen=True, slots=True, eq=False)
class CurrentNeuron(Primitive):
    """A stand-alone soma: the diode-connected input transistor rectifies, y = max(0, x)."""

    kind: ClassVar[str] = "current.neuron"

    def ideal(self, x: np.ndarray) -> np.ndarray:
        return ideal.rectify(x, 0.0)

    def devices(self, lanes: int) -> Counter[str]:
        return Counter(mosfet=NEURON_TRANSISTORS * lanes)


@dataclass(frozen=True, slots=True, eq=False)
class CurrentJunction(WeightedSum):
    """Currents joined on one node, each through a mirror of ratio gᵢ: y = Σ gᵢ·xᵢ + b."""

    kind: ClassVar[str] = "current.junction"

    def devices(self, lanes: int) -> Counter[str]:
        """One copy per input (and per bias) onto an output soma; a soma pair when a term is negative
        (`circuits.spice.current_select.MirrorSumBlock`)."""
        bias = np.asarray(0.0 if self.bias is None else self.bias)
        signed = any(bool(np.any(np.asarray(g) < 0)) for g in self.gains) or bool(np.any(bias < 0))
        somas = 2 if signed else 1
        copies = len(self.gains) + int(bool(np.any(bias != 0)))
        return Counter(mosfet=lanes * (somas * copies + NEURON_TRANSISTORS * somas))

@dataclass(frozen=True, slots=True, eq=False)
class WinnerTakeAll(WindowMax):
    """Lazzaro winner-take-all: two transistors per input, output the largest current (max pooling)."""

    kind: ClassVar[str] = "current.wta"

    def devices(self, lanes: int) -> Counter[str]:
        """Per input an input copy and the M1/M2 pair; the V_c copy, a PMOS diode and copy, an output soma."""
        return Counter(mosfet=(3 * self.window + 3 + NEURON_TRANSISTORS) * lanes)

@dataclass(frozen=True, slots=True, eq=False)
class MirrorAverage(WindowSum):
    """Window currents summed on a node and scaled by a mirror ratio: y = gain·Σ x over ``axes``."""

    kind: ClassVar[str] = "current.average"

    def devices(self, lanes: int) -> Counter[str]:
        """One copy of ratio ``gain`` per window input onto an output soma."""
        return Counter(mosfet=(self.window + NEURON_TRANSISTORS) * lanes)


@dataclass(frozen=True, slots=True, eq=False)
class SoftmaxNormalizer(Softmax):
    """Subthreshold differential-pair array: y = softmax(x) jointly over ``axes`` (the tail current is 1 unit).

    Gate voltages V_ref + R·I_unit·x, drain currents I_b·exp(x_i)/Σ exp(x_j)
    (`circuits.spice.current_softmax`).
    """

    kind: ClassVar[str] = "current.softmax"

    def devices(self, lanes: int) -> Counter[str]:
        """Per element the input copies, pair device, drain diode and copy, an output soma, and R;
        the tail current and V_ref come from the chip's bias generator (not counted)."""
        return Counter(mosfet=(SOFTMAX_TRANSISTORS + NEURON_TRANSISTORS) * lanes, resistor=lanes)
