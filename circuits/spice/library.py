"""The circuit library: primitive kind -> factory of the `BlockCircuit` realising one instance.

``CIRCUITS[kind](primitive, index, volts_per_unit)`` designs instance ``index`` of a bank
(a weight row for summer arrays; ignored where every instance is identical). Register a new
realisation with ``@register("kind")``.

| kind                       | block                         | valid model-unit range (default)          |
|----------------------------|-------------------------------|-------------------------------------------|
| opamp.summer               | SummerBlock (row ``index``)   | abs(x) <= 1                               |
| opamp.elementwise_summer   | ElementwiseSummerBlock        | abs(x) <= 1                               |
| opamp.average              | SummerBlock, equal gains      | abs(x) <= 1                               |
| opamp.rectifier            | RectifierBlock                | abs(x) <= 1                               |
| opamp.clipper              | ClipperBlock                  | half a span beyond the bounds             |
| opamp.diffpair             | DiffPairBlock                 | abs(x) <= 3 (tanh), 6 (sigmoid)           |
| opamp.log / opamp.exp      | LogBlock / AntilogBlock       | x in [0.01, 10] / eˣ in [0.1, 10], within the rails |
| opamp.multiplier           | MultiplierBlock, offset 1.1   | abs(a), abs(b) <= 1 (signed operands)     |
| opamp.divider              | FourQuadrantDividerBlock      | abs(a) <= 1, 0.1 <= abs(b) <= 4, either sign (b_min up at V_unit > 0.36 V) |
| opamp.integrator           | IntegratorBlock (τ, y0)       | abs(x) <= 1, window = τ                   |
| opamp.differentiator       | DifferentiatorBlock (τ)       | ramps of abs(slope)·τ <= 1                |
| crossbar.tiles             | CrossbarColumnBlock (column ``index``) | abs(x) <= 1, read at ≤ 0.2 V per unit |
| current.synapse_array      | SynapseArrayBlock (row ``index``), scale in A per unit | x in [0, 1], ≤ 1 µA per unit |
| current.neuron             | NeuronBlock, scale in A per unit | abs(x) <= 1, ≤ 1 µA per unit            |
| opamp.max                  | MaxSelectorBlock (window inputs) | abs(x) <= 1                             |
| opamp.softmax              | SoftmaxBlock (4 inputs unless the emitter knows the group) | abs(x) <= 4 |
| opamp.matmul               | MatMulBlock, one output: inner offset multipliers on one node | abs(a), abs(b) <= 1 |
| current.junction           | MirrorSumBlock (gains at position ``index``), scale in A per unit | x in [0, 1] |
| current.average            | MirrorAverageBlock, scale in A per unit | x in [0, 1]                         |
| current.wta                | WinnerTakeAllBlock (Lazzaro), scale in A per unit | x in [0, 1]               |
| current.softmax            | DiffPairSoftmaxBlock (4 inputs), scale in A per unit | abs(x) <= 4            |
"""

from __future__ import annotations

import math
from collections.abc import Callable

from circuits.base import Primitive
from circuits.errors import ParameterError, UnsupportedError
from circuits.spice.block import BlockCircuit
from circuits.spice.blocks_linear import (
    DifferentiatorBlock, ElementwiseSummerBlock, IntegratorBlock, SummerBlock, averaging_block,
)
from circuits.spice.blocks_nonlinear import (
    AntilogBlock, ClipperBlock, DiffPairBlock, LogBlock, MultiplierBlock, RectifierBlock,
)
from circuits.spice.blocks_products import FourQuadrantDividerBlock, MatMulBlock
from circuits.spice.blocks_select import MaxSelectorBlock, SoftmaxBlock
from circuits.spice.crossbar_blocks import V_READ_MAX_V, CrossbarColumnBlock
from circuits.spice.current_blocks import NeuronBlock, SynapseArrayBlock
from circuits.spice.current_select import MirrorAverageBlock, MirrorSumBlock, WinnerTakeAllBlock
from circuits.spice.current_softmax import DiffPairSoftmaxBlock
from circuits.spice.opamp_macro import OpampMacro
from circuits.spice.opamp_stages import block_name

Factory = Callable[[Primitive, int, float], BlockCircuit]
CIRCUITS: dict[str, Factory] = {}
SWING_MARGIN = 0.9  # use 90 % of the op-amp's output range for a block's full scale


def register(kind: str) -> Callable[[Factory], Factory]:
    """Decorator adding ``factory(primitive, index, volts_per_unit)`` for ``kind``."""
    def add(factory: Factory) -> Factory:
        if kind in CIRCUITS:
            raise ParameterError(f"register: a circuit for {kind!r} is already registered")
        CIRCUITS[kind] = factory
        return factory
    return add


def block_for(primitive: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    """The registered circuit for ``primitive.kind``; UnsupportedError lists the kinds there are."""
    factory = CIRCUITS.get(primitive.kind)
    if factory is None:
        raise UnsupportedError(f"no SPICE circuit for primitive {primitive.kind} (available: {', '.join(sorted(CIRCUITS))})")
    return factory(primitive, index, volts_per_unit)


def swing_v() -> float:
    macro = OpampMacro.default()
    return SWING_MARGIN * min(macro.v_rail_pos_v, -macro.v_rail_neg_v)


@register("opamp.summer")
def _summer(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    return SummerBlock.from_primitive(prim, index, volts_per_unit, name=block_name(prim.kind, index))  # type: ignore[arg-type]


@register("opamp.elementwise_summer")
def _elementwise(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    return ElementwiseSummerBlock.from_primitive(prim, index, volts_per_unit,  # type: ignore[arg-type]
                                                 name=block_name(prim.kind, index))


@register("opamp.average")
def _average(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    return averaging_block(prim, index, volts_per_unit, name=block_name(prim.kind, index))  # type: ignore[arg-type]


@register("opamp.rectifier")
def _rectifier(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    return RectifierBlock.from_primitive(prim, volts_per_unit, name=block_name(prim.kind, index))  # type: ignore[arg-type]


@register("opamp.clipper")
def _clipper(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    return ClipperBlock.from_primitive(prim, volts_per_unit, name=block_name(prim.kind, index))  # type: ignore[arg-type]


@register("opamp.diffpair")
def _diffpair(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    return DiffPairBlock.from_primitive(prim, volts_per_unit, name=block_name(prim.kind, index))  # type: ignore[arg-type]


@register("opamp.log")
def _log(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    """x in [0.01, 10], narrowed so the input x·V_unit stays inside the rails."""
    x_max = min(10.0, swing_v() / volts_per_unit)
    return LogBlock.from_primitive(prim, volts_per_unit, x_min=min(0.01, x_max / 10),  # type: ignore[arg-type]
                                   x_max=x_max, name=block_name(prim.kind, index))


@register("opamp.exp")
def _exp(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    """x in [−ln 10, ln 10], the top narrowed so eˣ·V_unit stays inside the rails."""
    x_max = min(math.log(10.0), math.log(swing_v() / volts_per_unit))
    return AntilogBlock.from_primitive(prim, volts_per_unit, x_min=min(-math.log(10.0), x_max - 1.0),  # type: ignore[arg-type]
                                       x_max=x_max, name=block_name(prim.kind, index))


@register("opamp.multiplier")
def _multiplier(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    """Signed operands: offset 1.1 with log stages over [0.1, 2.1], so abs(a), abs(b) <= 1."""
    return MultiplierBlock.from_primitive(prim, volts_per_unit, offset=1.1, x_min=0.1, x_max=2.1,  # type: ignore[arg-type]
                                          name=block_name(prim.kind, index))


@register("opamp.divider")
def _divider(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    """Four-quadrant: abs(a) <= 1 (offset 1.1), b_min <= abs(b) <= b_max of either sign.

    b_min = 0.1, raised at large scales so the sign steering's |q| + 1.5·|q| stays inside the swing
    (quotients up to 1/b_min units); b_max <= 4 with b·V_unit inside the swing.
    """
    q_max_v = 0.9 * swing_v() / 2.5
    b_min = max(0.1, volts_per_unit / q_max_v)
    b_max = min(4.0, 0.5 * swing_v() / volts_per_unit)
    if not b_max > b_min:
        raise ParameterError(f"volts_per_unit: {volts_per_unit} V leaves no operand range for a divider "
                             f"inside the {swing_v():.3g} V swing")
    return FourQuadrantDividerBlock.from_primitive(prim, volts_per_unit, b_min=b_min, b_max=b_max,  # type: ignore[arg-type]
                                                   name=block_name(prim.kind, index))


@register("crossbar.tiles")
def _crossbar(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    """Output column ``index``; rows are read at min(volts_per_unit, 0.2 V) per unit (PCM read range)."""
    v_read = min(volts_per_unit, V_READ_MAX_V)
    return CrossbarColumnBlock.from_primitive(prim, index, v_read, name=block_name(prim.kind, index))  # type: ignore[arg-type]


@register("current.synapse_array")
def _synapse_array(prim: Primitive, index: int, amps_per_unit: float) -> BlockCircuit:
    """Output ``index``: its fan-in synapses onto one soma (a soma pair if signed); scale in A per unit."""
    return SynapseArrayBlock.from_primitive(prim, index, amps_per_unit)  # type: ignore[arg-type]


@register("current.neuron")
def _current_neuron(prim: Primitive, index: int, amps_per_unit: float) -> BlockCircuit:
    """A stand-alone rectifying soma with its output mirror; scale in A per unit."""
    return NeuronBlock.from_primitive(prim, index, amps_per_unit)  # type: ignore[arg-type]


@register("opamp.integrator")
def _integrator(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    """τ and the initial condition from the primitive; each DC point integrates for one τ."""
    return IntegratorBlock(tau_s=prim.tau_s, y0=prim.y0, volts_per_unit=volts_per_unit,  # type: ignore[attr-defined]
                           window_s=prim.tau_s, name=block_name(prim.kind, index))  # type: ignore[attr-defined]


@register("opamp.differentiator")
def _differentiator(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    return DifferentiatorBlock(tau_s=prim.tau_s, volts_per_unit=volts_per_unit,  # type: ignore[attr-defined]
                               name=block_name(prim.kind, index))


@register("opamp.max")
def _max(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    """One superdiode maximum over the primitive's window."""
    return MaxSelectorBlock.from_primitive(prim, volts_per_unit, name=block_name(prim.kind, index))  # type: ignore[arg-type]


SOFTMAX_BENCH_SIZE = 4  # the primitive holds no group size; netlists size each block from the tensor


@register("opamp.softmax")
def _softmax(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    """A softmax group of SOFTMAX_BENCH_SIZE inputs, logits within ±4 units (inside the rails)."""
    limit = min(4.0, 0.9 * swing_v() / volts_per_unit)
    return SoftmaxBlock.from_primitive(prim, volts_per_unit, size=SOFTMAX_BENCH_SIZE, input_limit=limit,  # type: ignore[arg-type]
                                       name=block_name(prim.kind, index))


@register("opamp.matmul")
def _matmul(prim: Primitive, index: int, volts_per_unit: float) -> BlockCircuit:
    """One output element: ``inner`` offset-1.1 multipliers summed on one transimpedance node."""
    return MatMulBlock.from_primitive(prim, volts_per_unit, name=block_name(prim.kind, index))  # type: ignore[arg-type]


@register("current.junction")
def _junction(prim: Primitive, index: int, amps_per_unit: float) -> BlockCircuit:
    """Mirror copies of ratio gᵢ (and a biased reference) onto a soma or soma pair; scale in A per unit."""
    return MirrorSumBlock.junction(prim, index, amps_per_unit)  # type: ignore[arg-type]


@register("current.average")
def _mirror_average(prim: Primitive, index: int, amps_per_unit: float) -> BlockCircuit:
    """One copy of ratio ``gain`` per window input onto one soma; scale in A per unit."""
    return MirrorAverageBlock.from_primitive(prim, index, amps_per_unit)  # type: ignore[arg-type]


@register("current.wta")
def _wta(prim: Primitive, index: int, amps_per_unit: float) -> BlockCircuit:
    """Lazzaro winner-take-all over the window, its common node copied into a soma; scale in A per unit."""
    return WinnerTakeAllBlock.from_primitive(prim, index, amps_per_unit)  # type: ignore[arg-type]


@register("current.softmax")
def _current_softmax(prim: Primitive, index: int, amps_per_unit: float) -> BlockCircuit:
    """A group of SOFTMAX_BENCH_SIZE signed inputs on a differential-pair array; scale in A per unit."""
    return DiffPairSoftmaxBlock.from_primitive(prim, SOFTMAX_BENCH_SIZE, amps_per_unit,  # type: ignore[arg-type]
                                               name=f"cm_softmax_{index}")
