"""A lowered graph -> a hierarchical SPICE deck for one sample.

Structure of the deck (netlist.cir):
    model cards and one ``.subckt`` per primitive kind (and arity), then
    ``.subckt kelvin_model <inputs...> <outputs...> <supplies...>``: the whole network, with
        inputs and outputs flattened in C order of each tensor, graph inputs first, in the
        model's order, then graph outputs, then the supply/reference nets (e.g. vpos vneg vref);
    a testbench: one instance of kelvin_model, a DC source per input (the sample's values
    times the scale, default 0), the supplies, and ``.op``.

Wiring ops (Reshape, Flatten, Transpose, Concat, Im2Col...) are not circuits: they are
evaluated on arrays of net ids with the op's own kernel, which yields the permutation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import contextmanager

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from circuits.errors import InputError, KelvinError, ModelError, ParameterError, UnsupportedError
from circuits.spice.emit import GROUND, EmitContext, Supplies, adapters, emitter_for
from circuits.spice.netlist import Deck, Element, NameTable, Subckt, bsource, indexed, instance, isource, vsource
from circuits.targets import Target
from compiler.ir import Graph, OpNode, PrimitiveNode
from compiler.ops import lookup
from compiler.samples import sample_mixing
from compiler.realizable import problems

log = logging.getLogger(__name__)

TOP = "kelvin_model"
FILL_ZERO = -1   # an Im2Col pad that reads 0 (ground)
FILL_LOW = -2    # an Im2Col pad that must never win a max (tied to the negative rail)


@dataclass(slots=True)
class NetlistOptions:
    """Signal scale (volts or amperes per model unit), signal kind, supplies and a size guard.

    ``signal="current"``: inputs are currents injected into the input ports and each output
    port is held at ``v_out_bias`` by a sense source whose current (into the port's source,
    i.e. out of the network) is the output; otherwise ports carry voltages.
    """

    scale: float = 1.0
    max_devices: int = 200_000
    supplies: Supplies = field(default_factory=Supplies)
    signal: str = "voltage"
    v_out_bias: float = 0.0
    mismatch_seed: int | None = None  # transistor-level cells: one reproducible chip per seed
    sizing: str = "default"  # transistor-level cells' sizing preset ("default", "compact")
    force: bool = False  # write components no circuit can realize (with a warning) instead of failing
    # crossbar converters per bank name: (dac_bits, dac full scale, adc_bits, adc full scale), full
    # scales in model units (`circuits.spice.emit_crossbar`); empty: the analog path alone
    converters: Mapping[str, tuple[int | None, float | None, int | None, float | None]] = field(default_factory=dict)

    @classmethod
    def for_target(cls, target: Target, scale: float | None = None, max_devices: int = 200_000,
                   chip_seed: int | None = None, sizing: str = "default") -> NetlistOptions:
        """The target's netlisting policy (`Target`: scale, signal kind, supplies); ``chip_seed`` draws
        one chip instance, which only targets with transistor-level cells have."""
        if chip_seed is not None and not target.chip_instances:
            raise UnsupportedError(
                f"--chip-seed: chip instances are drawn for transistor-level cells (target current); the "
                f"{target.name} target's blocks have no per-device mismatch netlist yet")
        return cls(scale=target.default_scale if scale is None else scale, max_devices=max_devices,
                   supplies=target.supplies(), signal=target.signal, v_out_bias=target.v_out_bias_v,
                   mismatch_seed=chip_seed, sizing=sizing)


@dataclass(slots=True)
class Netlist:
    """The emitted network: its deck pieces and where each graph input/output element lives."""

    models: list[str]
    subckts: list[Subckt]
    top: Subckt
    input_ports: dict[str, list[str]]   # graph input -> port nets, C order
    output_ports: dict[str, list[str]]  # graph output -> port nets, C order
    input_shapes: dict[str, tuple[int, ...]]
    output_shapes: dict[str, tuple[int, ...]]
    supplies: Supplies
    scale: float
    devices: int
    signal: str = "voltage"
    v_out_bias: float = 0.0
    layout: tuple[Any, ...] = ()  # the emitters' records of what they placed (current mode: `emit_current.CellRecord`)

    @property
    def ports(self) -> list[str]:
        return [p for v in self.input_ports.values() for p in v] + \
               [p for v in self.output_ports.values() for p in v] + list(self.supplies.nets)

    def stimulus(self, sample: dict[str, np.ndarray] | None = None) -> list[Element]:
        """DC sources putting one sample (model units; default zeros) on the input ports."""
        elements = []
        for name, nets in self.input_ports.items():
            values = np.zeros(len(nets)) if sample is None else self._port_values(name, sample)
            if self.signal == "current":  # current flows from ground through the source into the port
                elements += [isource(f"in_{net}", GROUND, net, float(v) * self.scale) for net, v in zip(nets, values)]
            else:
                elements += [_drive(f"in_{net}", net, float(v) * self.scale) for net, v in zip(nets, values)]
        return elements

    def _port_values(self, name: str, sample: Mapping[str, np.ndarray]) -> np.ndarray:
        """One sample of input ``name`` flattened onto its ports (model units), or a one-line error."""
        values = np.asarray(sample[name], np.float64).reshape(-1)
        if values.size != len(self.input_ports[name]):
            raise InputError(f"input {name!r}: {values.size} values for {len(self.input_ports[name])} input ports "
                             f"(one sample of shape {list(self.input_shapes[name])})")
        return values

    def batch_stimulus(self, samples: Sequence[Mapping[str, np.ndarray]], index: str) -> list[Element]:
        """Sources putting sample i of ``samples`` on the input ports when V(``index``) = i: a deck that
        sweeps ``index`` over 0 … len(samples)−1 simulates the whole batch (current signals only)."""
        if self.signal != "current":
            raise ParameterError(f"batch_stimulus: only current-signal networks take batched inputs, not {self.signal!r}")
        elements = []
        for name, nets in self.input_ports.items():
            values = np.stack([self._port_values(name, s) for s in samples]) * self.scale
            elements += [bsource(f"in_{net}", GROUND, net, indexed(index, values[:, j]), current=True)
                         for j, net in enumerate(nets)]
        return elements

    def deck(self, sample: dict[str, np.ndarray] | None = None, title: str = "kelvin network",
             stimulus_file: str | None = None, stimulus: list[Element] | None = None) -> Deck:
        """A complete, runnable deck: the network, one sample's sources (or an include, or the given
        ``stimulus`` elements), ``.op``."""
        d = Deck(title=title, models=list(self.models), subckts=[*self.subckts, self.top])
        d.elements.append(instance("dut", TOP, self.ports))
        if stimulus is not None:
            d.elements += stimulus
        elif stimulus_file is None:
            d.elements += self.stimulus(sample)
        else:
            d.includes.append(stimulus_file)
        if self.signal != "current":
            d.prints = [p for v in self.output_ports.values() for p in v]
        for net, v in zip(self.supplies.nets, self.supplies.volts):
            d.elements.append(vsource(f"sup_{net}", net, GROUND, v))
        for nets in self.output_ports.values():
            for net in nets:
                if self.signal == "current":  # hold the port, measure the current it delivers
                    d.elements.append(vsource(f"sense_{net}", net, GROUND, self.v_out_bias))
                else:  # a tiny load keeps every output net DC-defined
                    d.elements.append(Element("R", f"load_{net}", (net, GROUND), "1e12"))
        d.options["reltol"] = 1e-6
        if self.signal == "current":  # KLU (ngspice >= 41; older ones ignore it): 10^4-10^5 mirrors factor ~30x
            d.flags.append("klu")     # faster. Not op-amp decks: on the attention block it converged elsewhere
        return d.op()

    def read_outputs(self, vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Output port voltages of an ``.op`` run, back in model units (the scale undone)."""
        out = {}
        for name, nets in self.output_ports.items():
            keys = [f"vsense_{n}#branch" if self.signal == "current" else n for n in nets]
            vals = [float(np.asarray(vectors[k]).reshape(-1)[0]) for k in keys]
            out[name] = (np.asarray(vals) / self.scale).reshape(self.output_shapes[name])
        return out


def _fixed_batch_hint(graph: Graph) -> str:
    """For a model exported with a fixed batch (input [2, 3, 4]): axis 0 is taken as the batch, so its
    constants shaped for 2 rows meet one sample's nets. Say so, and what to export instead."""
    for name in graph.inputs:
        shape = graph.shape(name)
        if shape and isinstance(shape[0], int) and shape[0] > 1:
            return (f" (input {name!r} has a fixed first dimension of {shape[0]}, which Kelvin takes as the batch "
                    "axis; export the model with a dynamic or size-1 batch axis)")
    return ""


def _drive(name: str, net: str, value: float) -> Element:
    return vsource(name, net, GROUND, value)


def _elsewhere(kind: str, target: Target) -> str:
    """Where an op left digital could be analog: the op-amp target, if any target has a circuit for it."""
    from compiler.passes.lower import has_analog_role
    if not has_analog_role(kind):
        return f"no Kelvin target has a circuit for {kind}"
    return "try --target opamp" if target.name != "opamp" else "the op-amp target has no circuit for it"


@contextmanager
def _per_sample(graph: Graph, node: OpNode | PrimitiveNode, ins: list[np.ndarray | None]):
    """A netlist holds one sample: the batch axis is gone from every net array. A node whose
    operands do not fit that (e.g. a MatMul of x by its own transpose, which mixes the samples of a
    batch) fails inside its emitter on the shapes; say so, naming the node and its operand shapes."""
    try:
        yield
    except KelvinError as exc:
        hint = _fixed_batch_hint(graph)
        named = str(exc) if str(exc).startswith(("node ", "tensor ")) else \
            f"node {node.name!r} ({getattr(node, 'kind', None) or node.op}): {exc}"  # a block's own check knows no node
        if hint:  # constants shaped for the model's fixed batch met one sample's nets
            raise UnsupportedError(f"{named}{hint}") from exc
        if named == str(exc):
            raise
        raise type(exc)(named) from exc
    except (ValueError, IndexError) as exc:
        shapes = ", ".join(str(list(x.shape)) if x is not None else "-" for x in ins)
        raise UnsupportedError(f"node {node.name!r} ({getattr(node, 'kind', None) or node.op}): cannot build one "
                               f"sample's circuit from operands of per-sample shape {shapes} ({exc}); "
                               f"a netlist computes each sample alone{_fixed_batch_hint(graph)}") from exc


def emit_netlist(graph: Graph, target: Target, options: NetlistOptions | None = None) -> Netlist:
    """Emit ``graph`` (already lowered for ``target``) as a network netlist for one sample."""
    opts = options or NetlistOptions()
    ctx = EmitContext(scale=opts.scale, supplies=opts.supplies, signal=opts.signal,
                      mismatch_seed=opts.mismatch_seed, sizing=opts.sizing)
    if opts.converters:
        ctx.state["crossbar.converters"] = dict(opts.converters)
    ports = NameTable("p")
    adapt_in, adapt_out = adapters(opts.signal)
    nets: dict[str, np.ndarray] = {}
    input_ports, input_shapes = {}, {}
    _check_size(graph, opts)
    for name in graph.outputs:
        _check_signal_output(graph, name)
    mixing = sample_mixing(graph)
    if mixing is not None:
        raise UnsupportedError(f"{mixing}; a netlist computes each sample alone")
    for name in graph.inputs:
        shape = _sample_shape(graph, name)
        flat = [ports(f"in_{name}_{i}") for i in range(int(np.prod(shape, dtype=np.int64)))]
        input_ports[name], input_shapes[name] = flat, shape
        nets[name] = np.array([adapt_in(ctx, p) for p in flat], dtype=object).reshape(shape)
    position = 0  # a bank's position among primitive nodes: what keys its mismatch draws
    for node in graph.topo():
        ins = [_nets_of(graph, ctx, nets, t) if t else None for t in node.inputs]
        if isinstance(node, PrimitiveNode):
            assert node.primitive is not None
            ctx.node_index, ctx.node_name, position = position, node.name, position + 1
            emit = emitter_for(node.kind, node.name)
            n_elements, known = len(ctx.elements), set(ctx.subckts)
            with _per_sample(graph, node, ins):
                outs = [emit(node.primitive, ctx, [x for x in ins if x is not None])]
            _check_realizable(node, ctx, n_elements, known, opts.force)
        elif node.placement == "wiring":
            with _per_sample(graph, node, ins):
                outs = _wire(graph, ctx, node, ins)
        else:
            raise UnsupportedError(
                f"node {node.name!r} ({node.kind}) runs in the digital periphery of target "
                f"{target.name}; a SPICE netlist needs an all-analog graph ({_elsewhere(node.kind, target)})")
        for t, value in zip(node.outputs, outs):
            if t:
                nets[t] = value
    output_ports, output_shapes, aliases = {}, {}, []
    for name in graph.outputs:
        value = _nets_of(graph, ctx, nets, name)
        flat = [ports(f"out_{name}_{i}") for i in range(value.size)]
        for port, net in zip(flat, value.reshape(-1)):
            aliases.append(Element("V", f"alias_{port}", (port, adapt_out(ctx, net)), "DC 0"))
        output_ports[name], output_shapes[name] = flat, value.shape
    port_list = [p for v in input_ports.values() for p in v] + \
                [p for v in output_ports.values() for p in v] + list(opts.supplies.nets)
    top = Subckt(TOP, tuple(port_list), elements=[*ctx.elements, *aliases],
                 comment=f"network {graph.name}: inputs, outputs, then supplies {' '.join(opts.supplies.nets)}")
    log.info("netlist: %d cells, %d subckt kinds, %d devices", len(ctx.elements), len(ctx.subckts), ctx.devices)
    return Netlist(list(ctx.models.values()), list(ctx.subckts.values()), top, input_ports, output_ports,
                   input_shapes, output_shapes, opts.supplies, opts.scale, ctx.devices, opts.signal,
                   opts.v_out_bias, tuple(ctx.layout))


def _check_realizable(node: PrimitiveNode, ctx: EmitContext, n_elements: int, known: set[str],
                      force: bool) -> None:
    """The components ``node`` just emitted must be buildable (`compiler.realizable`)."""
    rail = max((abs(v) for v in ctx.supplies.volts), default=0.0)
    found = problems(ctx.elements[n_elements:], [s for k, s in ctx.subckts.items() if k not in known], rail)
    if not found:
        return
    text = (f"node {node.name!r} ({node.kind}): {len(found)} component value(s) no circuit can realize, "
            f"first {found[0]}; its weights or the --scale are out of range")
    if not force:
        raise ParameterError(f"{text}; rescale the layer, or pass --force to write the netlist anyway")
    log.warning("%s; written anyway (--force)", text)


def _check_signal_output(graph: Graph, name: str) -> None:
    """A netlist's outputs are one sample's analog signals: an integer or boolean output (a Cast to
    int, a Shape) would come back as raw voltages, and a constant one would gain a sample axis."""
    info = graph.info(name)
    if info is not None and info.dtype.kind != "f":
        raise UnsupportedError(f"output {name!r} is {info.dtype} data, not an analog signal (a netlist carries real "
                               "voltages and currents); use --engine behavioral for it")
    if name in graph.constants:
        raise UnsupportedError(f"output {name!r} is a constant, the same for every sample, not a signal the netlist "
                               "computes; drop it from the outputs or use --engine behavioral")


def _sample_shape(graph: Graph, tensor: str) -> tuple[int, ...]:
    shape = graph.shape(tensor)
    if shape is None or not all(isinstance(d, int) for d in shape[1:]):
        raise UnsupportedError(f"tensor {tensor!r}: a netlist needs static non-batch dims, got {shape}")
    if any(d == 0 for d in shape[1:]):
        raise UnsupportedError(f"tensor {tensor!r} has shape {list(shape)}: a zero-size dimension carries no "
                               "signal, so there is nothing to netlist")
    return tuple(int(d) for d in shape[1:])  # type: ignore[misc]


def _check_size(graph: Graph, opts: NetlistOptions) -> None:
    """Before building anything: the primitives' devices, plus one source per input value."""
    total = sum(int(np.prod(_sample_shape(graph, name), dtype=np.float64)) for name in graph.inputs)
    for node in graph.topo():
        if isinstance(node, PrimitiveNode) and node.primitive is not None:
            total += sum(node.primitive.devices(node.lanes).values()) * node.copies
    if total > opts.max_devices:
        raise UnsupportedError(
            f"the network needs about {total:,} devices, more than the netlist limit of "
            f"{opts.max_devices:,}; whole-network netlists are for small networks (raise the limit "
            "with --max-devices, or validate block by block)")


def _nets_of(graph: Graph, ctx: EmitContext, nets: dict[str, np.ndarray], tensor: str) -> np.ndarray:
    """The nets of a tensor; a constant becomes DC sources (one per distinct value)."""
    if tensor in nets:
        return nets[tensor]
    if tensor in graph.constants:
        value = np.asarray(graph.constants[tensor], dtype=np.float64)
        bad = ~np.isfinite(value)
        if bad.any():
            index = [int(i) for i in np.argwhere(bad)[0]]
            raise ModelError(f"tensor {tensor!r} holds {value[tuple(index)]} at index {index}; a circuit's "
                             "DC source needs a finite value")
        out = np.empty(value.shape, dtype=object)
        for idx, v in np.ndenumerate(value):
            net = ctx.net("const")
            ctx.elements.append(vsource(f"c_{net}", net, GROUND, float(v) * ctx.scale))
            out[idx] = net
        nets[tensor] = out
        return out
    raise UnsupportedError(f"tensor {tensor!r} has no nets (is it computed at run time by a digital op?)")


def _wire(graph: Graph, ctx: EmitContext, node: OpNode, ins: list[np.ndarray | None]) -> list[np.ndarray]:
    """Apply a wiring op to net arrays by running its kernel on integer net ids."""
    table: list[str] = []
    ids = []
    for x in ins:
        if x is None:
            ids.append(None)
            continue
        if x.dtype != object:  # a constant operand such as a Reshape target: pass through
            ids.append(x)
            continue
        base = len(table)
        table.extend(x.reshape(-1).tolist())
        ids.append((np.arange(x.size, dtype=np.int64) + base).reshape(1, *x.shape))
    consts = {i: graph.constants[t] for i, t in enumerate(node.inputs) if t in graph.constants}
    args = [consts.get(i, a) for i, a in enumerate(ids)]
    attrs = dict(node.attrs)
    if node.op == "kelvin.Im2Col":
        attrs["fill"] = FILL_LOW if attrs.get("fill", 0.0) == -np.inf else FILL_ZERO
    outs = lookup(node.op, node.version, node.name).kernel(args, attrs, node.version)
    result = []
    for out in outs[: len(node.outputs)]:
        out = np.asarray(out)
        if out.dtype.kind not in "iu":
            raise UnsupportedError(f"node {node.name!r} ({node.op}) does not route signals one to one")
        flat = out.reshape(out.shape[1:]) if out.ndim and out.shape[0] == 1 else out
        low = _lowest_net(ctx)
        result.append(np.vectorize(lambda i: table[i] if i >= 0 else (GROUND if i == FILL_ZERO else low),
                                   otypes=[object])(flat) if flat.size else flat.astype(object))
    return result


def _lowest_net(ctx: EmitContext) -> str:
    """The net a max-pool pad reads: the negative rail for voltages; no current (ground) in
    current mode, whose signals are never negative (and whose only supply is VDD)."""
    if ctx.signal == "current" or len(ctx.supplies.nets) < 2:
        return GROUND
    return ctx.supplies.nets[1]
