"""Named hardware targets: which primitive realises each neural-network role.

A role is a piece of math (a linear layer, a rectifier, a window max...). A target maps
each role it can build in analog to a primitive class; roles it cannot build stay with the
digital periphery (as on IBM's chip, where auxiliary ops run off the crossbars).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from circuits import crossbar, current, opamp
from circuits.base import Primitive
from circuits.errors import ParameterError

ROLES = (
    "linear", "relu", "leaky_relu", "clip", "tanh", "sigmoid", "exp", "log", "mul", "div",
    "matmul", "softmax", "max", "average", "affine",
)


@dataclass(frozen=True, slots=True)
class Target:
    """A technology: role -> primitive class, and how convolutions use hardware.

    ``unroll_positions``: every output position of a convolution gets its own copy of the
    layer's circuits (fully parallel); otherwise one copy is time-multiplexed.
    ``fuse_rectifier``: a linear layer followed by ReLU becomes one rectifying primitive.
    """

    name: str
    description: str
    roles: Mapping[str, type[Primitive]] = field(default_factory=dict)
    unroll_positions: bool = True
    fuse_rectifier: bool = False

    def primitive_for(self, role: str) -> type[Primitive] | None:
        return self.roles.get(role)


OPAMP = Target(
    name="opamp",
    description="voltage-mode op-amp analog computer: weighted adders, rectifiers, log/exp multipliers",
    roles=MappingProxyType({
        "linear": opamp.InvertingSummerArray,
        "relu": opamp.PrecisionRectifier,
        "leaky_relu": opamp.PrecisionRectifier,
        "clip": opamp.Clipper,
        "tanh": opamp.DiffPairActivation,
        "sigmoid": opamp.DiffPairActivation,
        "exp": opamp.AntilogAmp,
        "log": opamp.LogAmp,
        "mul": opamp.LogExpMultiplier,
        "div": opamp.LogExpDivider,
        "matmul": opamp.ActivationMatMul,
        "softmax": opamp.SoftmaxUnit,
        "max": opamp.MaxSelector,
        "average": opamp.AveragingSummer,
        "affine": opamp.ElementwiseSummer,
    }),
)

CURRENT = Target(
    name="current",
    description="current-mode subthreshold synapses and neurons (Binas et al. 2016)",
    roles=MappingProxyType({
        "linear": current.SynapseArray,
        "relu": current.CurrentNeuron,
        "max": current.WinnerTakeAll,
        "average": current.MirrorAverage,
        "affine": current.CurrentJunction,
    }),
    fuse_rectifier=True,
)

CROSSBAR = Target(
    name="crossbar",
    description="resistive/PCM crossbar tiles with DACs and ADCs (IBM analog in-memory chip)",
    roles=MappingProxyType({
        "linear": crossbar.CrossbarArray,
        "relu": opamp.PrecisionRectifier,
    }),
    unroll_positions=False,
)

TARGETS: Mapping[str, Target] = MappingProxyType({t.name: t for t in (OPAMP, CURRENT, CROSSBAR)})


def get_target(name: str) -> Target:
    """The target called ``name``; the error lists the valid names."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ParameterError(f"unknown target {name!r}; choose one of: {', '.join(TARGETS)}") from None
