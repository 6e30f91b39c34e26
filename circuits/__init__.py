"""Kelvin's analog primitive library: each primitive's ideal math, device bill and (later) circuit.

| kind                          | circuit                                             | ideal function                  |
|-------------------------------|-----------------------------------------------------|---------------------------------|
| opamp.summer                  | inverting weighted adders, bias from a reference    | y = W·x + b                     |
| opamp.elementwise_summer      | inverting adder per element                         | y = Σ gᵢ·xᵢ + b                 |
| opamp.rectifier               | precision (superdiode) rectifier + inverter         | max(0,x) + a·min(0,x)           |
| opamp.clipper                 | diode limiter to reference levels                   | min(max(x, lo), hi)             |
| opamp.diffpair                | BJT differential pair + transimpedance amp          | tanh(x), sigmoid(x)             |
| opamp.log / opamp.exp         | transdiode log / antilog amplifier                  | ln x, eˣ                        |
| opamp.multiplier / .divider   | log-add-antilog, offset to four quadrants           | a·b, a/b                        |
| opamp.matmul                  | multipliers + summers                               | a @ b                           |
| opamp.integrator              | inverting integrator with initial-condition mode    | y0 − (1/τ)∫x dt                 |
| opamp.differentiator          | inverting differentiator with a series R            | −τ·dx/dt                        |
| opamp.softmax                 | max selector, antilog amps, summer, dividers        | softmax over axes               |
| opamp.max / opamp.average     | superdiode max / equal-resistor summer              | window max / gain·Σ window      |
| current.synapse_array         | Binas et al. mirror synapses onto somas             | ReLU(W·x + b) or W·x + b        |
| current.neuron                | diode-connected soma                                | max(0, x)                       |
| current.junction              | Kirchhoff node with mirror gains                    | Σ gᵢ·xᵢ + b                     |
| current.wta / current.average | winner-take-all / mirror-scaled node                | window max / gain·Σ window      |
| current.softmax               | subthreshold differential-pair array, 1-unit tail   | softmax over axes               |
| crossbar.tiles                | PCM G+/G- tiles, DAC rows, ADC columns              | y = W·x + b                     |

Targets (`circuits.targets`): ``opamp``, ``current``, ``crossbar``. This package knows
nothing of ONNX; the compiler maps network ops onto these roles.
"""

from circuits.base import Primitive
from circuits.crossbar import CrossbarArray
from circuits.current import (
    CurrentJunction, CurrentNeuron, MirrorAverage, SoftmaxNormalizer, SynapseArray, WinnerTakeAll,
)
from circuits.opamp import (
    ActivationMatMul, AntilogAmp, AveragingSummer, Clipper, DiffPairActivation, Differentiator,
    ElementwiseSummer, Integrator,
    InvertingSummerArray, LogAmp, LogExpDivider, LogExpMultiplier, MaxSelector, PrecisionRectifier,
    SoftmaxUnit,
)
from circuits.targets import TARGETS, Target, get_target

PRIMITIVES: dict[str, type[Primitive]] = {
    cls.kind: cls
    for cls in (
        InvertingSummerArray, ElementwiseSummer, PrecisionRectifier, Clipper, DiffPairActivation,
        LogAmp, AntilogAmp, LogExpMultiplier, LogExpDivider, ActivationMatMul, SoftmaxUnit,
        MaxSelector, AveragingSummer, Integrator, Differentiator, SynapseArray, CurrentNeuron, CurrentJunction, WinnerTakeAll,
        MirrorAverage, SoftmaxNormalizer, CrossbarArray,
    )
}

__all__ = ["PRIMITIVES", "TARGETS", "Primitive", "Target", "get_target", *sorted(
    c.__name__ for c in PRIMITIVES.values())]
