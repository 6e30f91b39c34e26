"""Named hardware targets: which primitive realises each neural-network role.

A role is a piece of math (a linear layer, a rectifier, a window max...). A target maps
each role it can build in analog to a primitive class; roles it cannot build stay with the
digital periphery (as on IBM's chip, where auxiliary ops run off the crossbars).

A target also carries its circuit policy, in this one place: the default signal scale (volts
or amperes per model unit), the signal kind between banks, the supplies (current mode: the
device card's VDD) and the read-out node's bias; `compiler.netlist.NetlistOptions.for_target`
turns it into netlist options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from circuits import crossbar, current, opamp
from circuits.base import Primitive
from circuits.errors import ParameterError
from circuits.spice.emit import Supplies

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
    ``default_scale``: volts (``signal`` "voltage") or amperes ("current") per model unit.
    ``v_out_bias_v``: current mode, the voltage the sense sources hold each output port at.
    ``chip_instances``: its cells are transistor-level, so a seed can draw one mismatched chip.
    """

    name: str
    description: str
    roles: Mapping[str, type[Primitive]] = field(default_factory=dict)
    unroll_positions: bool = True
    fuse_rectifier: bool = False
    default_scale: float = 1.0
    signal: str = "voltage"
    v_out_bias_v: float = 0.0
    chip_instances: bool = False

    def primitive_for(self, role: str) -> type[Primitive] | None:
        return self.roles.get(role)

    def supplies(self) -> Supplies:
        """Supply nets and volts: ±12 V and a 1 V reference for voltage mode; the device card's VDD
        (`DeviceCard.load().vdd_v`, 1.8 V) for current mode."""
        if self.signal == "current":
            from circuits.spice.devices import DeviceCard  # reads the card file: only when asked

            return Supplies(("vdd",), (DeviceCard.load().vdd_v,))
        return Supplies()


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
    default_scale=0.25,
)

CURRENT = Target(
    name="current",
    description="current-mode subthreshold synapses and neurons (Binas et al. 2016)",
    roles=MappingProxyType({
        "linear": current.SynapseArray,
        "relu": current.CurrentNeuron,
        "softmax": current.SoftmaxNormalizer,
        "max": current.WinnerTakeAll,
        "average": current.MirrorAverage,
        "affine": current.CurrentJunction,
    }),
    fuse_rectifier=True,
    default_scale=10e-9,  # 10 nA per unit: weak inversion with margin (`current_cells.CellSizing`)
    signal="current",
    v_out_bias_v=0.9,  # mid-supply: the read-out cells are trimmed for it (`emit_current.readout_devices`)
    chip_instances=True,
)

CROSSBAR = Target(
    name="crossbar",
    description="resistive/PCM crossbar tiles with DACs and ADCs (IBM analog in-memory chip)",
    roles=MappingProxyType({
        "linear": crossbar.CrossbarArray,
        "relu": opamp.PrecisionRectifier,
    }),
    unroll_positions=False,
    default_scale=0.1,
)

TARGETS: Mapping[str, Target] = MappingProxyType({t.name: t for t in (OPAMP, CURRENT, CROSSBAR)})


def get_target(name: str) -> Target:
    """The target called ``name``; the error lists the valid names."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ParameterError(f"unknown target {name!r}; choose one of: {', '.join(TARGETS)}") from None
