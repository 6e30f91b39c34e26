"""Current-mode network netlists after Binas et al. 2016: somas, synapses and read-outs wired as on the chip.

Convention between banks (arXiv 1606.07786, Fig. 1): a neuron's soma turns its summed input
current into two gate lines, ``vn`` (NMOS) and ``vp`` (PMOS); every downstream synapse mirrors
the soma current from those lines, so fan-out costs nothing but the synapse itself. The
synapses of one output neuron drain onto that neuron's soma input node (Kirchhoff sums them).

A net in the emitters' arrays names a *signal*; `CurrentSignal` (kept in ``ctx.state``) says
which soma(s) carry it:

- one soma: the value is I_soma/scale ≥ 0 (the soma's diode rectifies: ReLU);
- a pair (signed, non-rectifying layers): value = (I_pos − I_neg)/scale, where the positive
  soma takes the synapses at +k and the negative soma their negated copies at −k, so
  I_pos = max(0, y), I_neg = max(0, −y). Downstream synapses read a pair at +k and −k.

Weights (3 bits + sign, `SynapseArrayBlock`'s rule, per output row):
    unit = max(1/m_diode, max(|w_row|, |b_row|)/7),  k = clip(round(w/unit), −7, 7),
    I_syn = k·I_in/m_diode,  w_q = k·unit.
A row whose unit exceeds the hardware step 1/m_diode = 0.25 needs a gain G = unit·m_diode on its
output; the soma applies it in its first mirror (M1 has G·m_diode units), so every signal's
lines carry exactly value·scale and no gain travels between layers. The bias is a synapse from
a reference soma fed one unit (``scale`` amperes) by the chip's reference current.

Ports: an input port (the testbench injects scale·x into it) is the input of an input soma,
so inputs must be ≥ 0 (Binas: [0, 1]); an output is a read-out cell, a PMOS branch from the
positive soma's ``vp`` sourcing I_pos and an NMOS branch from the negative soma's ``vn`` sinking
I_neg, into a node the sense source holds at ``V_OUT_V``: the port current is scale·y.

Cells are one ``.subckt`` per kind (soma, synapse, read-out), programmed per instance: synapse
bits tie to VDD or ground, the soma gain is a parameter; with ``ctx.mismatch_seed`` each
instance also gets every transistor's ``dvt_*``/``bf_*`` (Pelgrom, `ChipDraw`), drawn from
``SeedSequence([seed, *key])`` with the cell's key (`CellRecord.key`):

    synapse   (node, copy, row, side, column, source side)   side 0/1: the row's pos/neg soma
    bias      (node, copy, row, side, BIAS, 0)               column: input element; source side:
    soma      (node, copy, row, side, SOMA, 0)               0/1 for a signed input's pos/neg soma
    input     (INPUT_NODE, 0, element, 0, SOMA, 0)           element: flat index over all inputs
    reference (REFERENCE_NODE, 0, 0, 0, SOMA, 0)
    read-out  (OUTPUT_NODE, 0, element, 0, READOUT, 0)       element: flat index over all outputs

node: the bank's position among the graph's primitive nodes (``ctx.node_index``); copy: the
output position of an unrolled bank. So a cell's devices change only when the cell itself does;
adding a layer, or emitting in another order, leaves every other cell's draw alone. Every placed
cell is recorded (`CellRecord`, in ``ctx.layout`` and then `Netlist.layout`): what `sim.chip`
folds into behavioral weights, without reading element names.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from circuits.base import Primitive
from circuits.current import CurrentNeuron, SynapseArray
from circuits.errors import UnsupportedError
from circuits.spice.current_blocks import SynapseArrayBlock, check_amps_per_unit
from circuits.spice.current_cells import (
    SOMA_PORTS, SYNAPSE_PORTS, U_T_V, CellSizing, ChipDraw, Mos, NeuronCircuit, SynapseCircuit, bit_nodes,
)
from circuits.spice.devices import Polarity
from circuits.spice.emit import ADAPTERS, GROUND, EmitContext, per_row, register
from circuits.spice.netlist import Subckt, instance, isource
from circuits.targets import CURRENT

log = logging.getLogger(__name__)

STATE_KEY = "current"
V_OUT_V = CURRENT.v_out_bias_v  # read-out node voltage: the sense sources' bias (`Target.v_out_bias_v`)
READOUT_PORTS = ("vp", "vn", "out", "vdd", "vss")
INPUT_NODE, OUTPUT_NODE, REFERENCE_NODE = 2**32 - 1, 2**32 - 2, 2**32 - 3  # key words of cells outside banks
SOMA, BIAS, READOUT = 2**32 - 1, 2**32 - 2, 2**32 - 3  # key words in the column slot


@dataclass(frozen=True, slots=True)
class CellRecord:
    """One placed cell: what it is, where in the network it sits, and its mismatch draw.

    ``kind`` soma/synapse/readout; ``role`` of a soma: "input", "row" (a bank's output neuron) or
    "reference". ``node`` names the bank ("" outside banks); ``copy``, ``row``, ``side`` (+1 the
    row's positive soma, −1 its negated twin) and ``column`` (a synapse's input element, −1 for the
    bias) place it in the bank; an input soma's ``row`` is its flat index over all inputs, a
    read-out's over all outputs. ``pre``: the soma whose lines a synapse or read-out mirrors
    (read-out: the positive soma), ``pre_neg`` the read-out's negative soma. ``level``: a
    synapse's k; ``gain``: a soma's G. ``dvt_v``/``bf``: ΔVt (V) and β factor per device (empty
    for nominal devices), drawn with ``key``.
    """

    kind: str
    element: str
    role: str
    node: str
    key: tuple[int, ...]
    copy: int = 0
    row: int = 0
    side: int = 1
    column: int = -1
    pre: str = ""
    pre_neg: str = ""
    level: int = 0
    gain: float = 1.0
    dvt_v: Mapping[str, float] = field(default_factory=dict)
    bf: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Soma:
    """The gate lines of one soma (and its element); a downstream branch of m_diode units on them carries I_soma."""

    vn: str
    vp: str
    element: str = ""


@dataclass(frozen=True, slots=True)
class CurrentSignal:
    """What a net stands for: one soma (value ≥ 0) or a positive/negative pair (value = pos − neg)."""

    pos: Soma
    neg: Soma | None = None


@dataclass(frozen=True, slots=True)
class RowDesign:
    """One output neuron's programming: synapse levels, bias level, the soma gain G = unit·m_diode."""

    levels: tuple[int, ...]
    bias_level: int
    unit: float
    gain: float


# --- cells ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Diode voltages at the network's design current, for trimming mirror copies against the Early effect.

    The diode voltages come from the card's measured table (`DeviceCard.diode_voltage_v`), else from
    weak inversion (EKV): V_GS = V_th + n·U_T·ln(I_unit/I_spec), I_spec = 2·n·k_p·U_T²·W/L, capped
    at V_th (35-45 mV low on Kelvin's card at 10 nA per unit). A copy whose drain sits ΔV above its diode's carries (1 + ΔV/V_A) more current, so it is
    narrowed to W/(1 + ΔV/V_A) (V_A = V_A'·L). The cells' own trim assumes diodes at V_th, right near
    100 nA per soma; at 10 nA per unit the diodes sit ~0.15 V lower and copies ran 1–2 % hot per stage
    (ngspice: a synapse read +1.3 % at 1 unit; now within ±0.4 %). The trim holds at one current only:
    ΔV falls by 2·n·U_T per e-fold of current, so a synapse still reads ~+1.5 % at 0.1 unit and
    ~−1.4 % at 7 units (L = 4 µm mirrors without cascodes).
    """

    sizing: CellSizing
    v_n_v: float  # NMOS diode V_GS at the design current
    v_p_v: float  # PMOS diode V_SG

    @classmethod
    def at(cls, sizing: CellSizing, amps_per_unit: float) -> OperatingPoint:
        """Design current: one model unit in a soma, amps_per_unit/m_diode per unit device."""
        card, s = sizing.card, sizing
        i_dev = amps_per_unit / s.m_diode
        n = card.subthreshold_n

        def v_gs(polarity: Polarity, kp: float, vth: float) -> float:
            measured = card.diode_voltage_v(polarity, s.l_unit_m, i_dev, s.w_unit_m / s.l_unit_m)
            if measured is not None:
                return measured
            i_spec = 2 * n * kp * U_T_V**2 * s.w_unit_m / s.l_unit_m
            return min(vth, vth + n * U_T_V * float(np.log(i_dev / i_spec)))

        return cls(sizing, v_gs("n", card.kp_n_a_v2, card.vth_n_v), v_gs("p", card.kp_p_a_v2, card.vth_p_v))

    def copy_w_m(self, polarity: Polarity, dv_v: float) -> float:
        """Unit width of a copy whose drain is ``dv_v`` further from its source than its diode's."""
        return self.sizing.trimmed_w_m(polarity, dv_v)

    @property
    def dv_soma_v(self) -> float:
        """Soma copies M1 (drain at vp) and M3 (drain at vn), and synapse PMOS branches (drain at a
        soma node): ΔV = VDD − V_n − V_p."""
        return self.sizing.card.vdd_v - self.v_n_v - self.v_p_v


def _retrim(devices: Sequence[Mos], widths: dict[str, float]) -> list[Mos]:
    return [replace(t, w_m=widths[t.name]) if t.name in widths else t for t in devices]


def soma_devices(op: OperatingPoint) -> list[Mos]:
    """The 5-transistor soma of `NeuronCircuit`, copies trimmed at ``op``; M1 is scaled by parameter ``gain``."""
    return _retrim(NeuronCircuit(op.sizing).devices(),
                   {"m1": op.copy_w_m("n", op.dv_soma_v), "m3": op.copy_w_m("p", op.dv_soma_v)})


def synapse_devices(op: OperatingPoint) -> list[Mos]:
    """The 11-transistor synapse of `SynapseCircuit`, PMOS branches trimmed at ``op`` (NMOS branches
    drain into a soma node like their diode and need none)."""
    w_p = op.copy_w_m("p", op.dv_soma_v)
    return _retrim(SynapseCircuit(op.sizing).devices(), {f"mp{m}": w_p for m in (4, 2, 1)})


def readout_devices(op: OperatingPoint, v_out_v: float = V_OUT_V) -> list[Mos]:
    """PMOS branch (sources I_pos) and NMOS branch (sinks I_neg) into ``out``, each m_diode units,
    trimmed for ΔV_p = VDD − V_out − V_p and ΔV_n = V_out − V_n."""
    s, vdd = op.sizing, op.sizing.card.vdd_v
    return [Mos("mp", "out", "vp", "vdd", "vdd", "p", op.copy_w_m("p", vdd - v_out_v - op.v_p_v), s.l_unit_m,
                s.m_diode),
            Mos("mn", "out", "vn", "vss", "vss", "n", op.copy_w_m("n", v_out_v - op.v_n_v), s.l_unit_m, s.m_diode)]


def cell_subckt(sizing: CellSizing, name: str, ports: Sequence[str], devices: Sequence[Mos], mismatch: bool,
                gained: Sequence[str] = (), comment: str = "") -> Subckt:
    """One cell kind as a ``.subckt``: devices in ``gained`` get m·gain (parameter ``gain``, default 1);
    with ``mismatch`` every device takes its ``dvt_<name>`` (V) and ``bf_<name>`` (β factor) parameter."""
    params: dict[str, float] = {"gain": 1.0} if gained else {}
    elements = []
    for t in devices:
        factors = (["gain"] if t.name in gained else []) + ([f"bf_{t.name}"] if mismatch else [])
        beta = "{" + "*".join(factors) + "}" if factors else None
        delvto = f"{{dvt_{t.name}}}" if mismatch else None
        if mismatch:
            params[f"dvt_{t.name}"], params[f"bf_{t.name}"] = 0.0, 1.0
        elements.append(sizing.card.mosfet(t.name, t.d, t.g, t.s, t.b, t.polarity, t.w_m, t.l_m, t.m,
                                           delvto=delvto, beta=beta))
    return Subckt(name + ("_mm" if mismatch else ""), tuple(ports), elements, params, comment)


@dataclass(slots=True)
class CurrentNetwork:
    """Per-netlist state of the current-mode emitters (kept in ``ctx.state[STATE_KEY]``)."""

    op: OperatingPoint
    draw: ChipDraw
    cells: dict[str, tuple[Subckt, list[Mos]]]  # kind -> (definition, its devices in draw order)
    signals: dict[str, CurrentSignal] = field(default_factory=dict)
    reference: CurrentSignal | None = None
    inputs: int = 0  # input somas placed so far (the next one's flat index)
    outputs: int = 0  # output ports adapted so far

    @property
    def sizing(self) -> CellSizing:
        return self.op.sizing

    def signal(self, net: str, where: str) -> CurrentSignal:
        try:
            return self.signals[net]
        except KeyError:
            raise UnsupportedError(
                f"{where}: net {net!r} is not a current-mode signal (a constant or a voltage-mode "
                "block feeds it); current-mode netlists need every signal to come from a soma") from None


def _network(ctx: EmitContext) -> CurrentNetwork:
    """This netlist's current-mode state, created on first use (model card and the three cells)."""
    net = ctx.state.get(STATE_KEY)
    if net is None:
        check_amps_per_unit(ctx.scale)
        sizing = CellSizing.preset(ctx.sizing)
        op = OperatingPoint.at(sizing, ctx.scale)
        draw = ChipDraw(sizing.card, ctx.mismatch_seed)
        mm = draw.enabled
        kinds = {
            "soma": (SOMA_PORTS, soma_devices(op), ("m1",),
                     "Binas soma: diode M0 rectifies; vp and vn lines carry gain times I_in"),
            "synapse": (SYNAPSE_PORTS, synapse_devices(op), (),
                        "Binas synapse: I_out = k I_soma/m_diode, k = (-1)^sgn (4 b2 + 2 b1 + b0)"),
            "readout": (READOUT_PORTS, readout_devices(op), (), "read-out: I_out = I(vp branch) - I(vn branch)"),
        }
        cells = {kind: (cell_subckt(sizing, f"cm_{kind}", ports, devs, mm, gained, comment), devs)
                 for kind, (ports, devs, gained, comment) in kinds.items()}
        net = CurrentNetwork(op, draw, cells)
        log.debug("current-mode cells (%s sizing) at %g A per unit: diodes at V_n %.3f V, V_p %.3f V; "
                  "mismatch seed %s", ctx.sizing, ctx.scale, op.v_n_v, op.v_p_v, ctx.mismatch_seed)
        ctx.state[STATE_KEY] = net
        ctx.model(sizing.card.name, sizing.card.text)
    return net


@dataclass(frozen=True, slots=True)
class Where:
    """Where a cell goes: its role, bank, position in the bank and draw key (see `CellRecord`)."""

    role: str
    key: tuple[int, ...]
    node: str = ""
    copy: int = 0
    row: int = 0
    side: int = 1
    column: int = -1


def _place(ctx: EmitContext, net: CurrentNetwork, kind: str, nodes: Sequence[str], hint: str, where: Where,
           params: dict[str, float] | None = None, **record: object) -> str:
    """Instantiate cell ``kind`` (defining its subckt once) with its keyed mismatch draw and ``params``;
    record it in ``ctx.layout``; returns the element name."""
    cell, devices = net.cells[kind]
    sub = ctx.define(cell)
    inst = dict(params or {})
    draw = net.draw.params(devices, where.key)
    inst.update(draw)
    name = ctx.instance_name(hint)
    ctx.elements.append(instance(name, sub, nodes, inst))
    ctx.devices += len(devices)
    ctx.layout.append(CellRecord(
        kind, name, where.role, where.node, where.key, where.copy, where.row, where.side, where.column,
        dvt_v={k[4:]: v for k, v in draw.items() if k.startswith("dvt_")},
        bf={k[3:]: v for k, v in draw.items() if k.startswith("bf_")}, **record))  # type: ignore[arg-type]
    return name


def _side(side: int) -> int:
    return 0 if side > 0 else 1


def place_soma(ctx: EmitContext, net: CurrentNetwork, node_in: str, where: Where, gain: float = 1.0) -> Soma:
    """A soma on ``node_in``; its lines carry gain·max(0, I_in)."""
    vn, vp = ctx.net("vn"), ctx.net("vp")
    params = {} if gain == 1.0 else {"gain": float(gain)}
    name = _place(ctx, net, "soma", (node_in, vn, vp, ctx.supplies.nets[0], GROUND), "soma", where, params,
                  gain=float(gain))
    return Soma(vn, vp, name)


def place_synapse(ctx: EmitContext, net: CurrentNetwork, pre: Soma, node_out: str, level: int, where: Where) -> None:
    """A synapse of level k from ``pre`` onto ``node_out``: I = k·I_pre/m_diode (bits tied to the rails)."""
    vdd = ctx.supplies.nets[0]
    bits = [vdd if b == "vdd" else GROUND for b in bit_nodes(int(level))]
    _place(ctx, net, "synapse", (pre.vn, pre.vp, node_out, *bits, vdd, GROUND), "syn", where,
           pre=pre.element, level=int(level))


def reference(ctx: EmitContext, net: CurrentNetwork) -> CurrentSignal:
    """The shared 1-unit reference line the bias synapses read (an ideal ``scale`` A source into a soma)."""
    if net.reference is None:
        node = ctx.net("ref")
        ctx.elements.append(isource(f"ref_{node}", ctx.supplies.nets[0], node, ctx.scale))
        where = Where("reference", (REFERENCE_NODE, 0, 0, 0, SOMA, 0))
        net.reference = CurrentSignal(place_soma(ctx, net, node, where))
    return net.reference


# --- quantization -----------------------------------------------------------------------
def row_designs(prim: SynapseArray, sizing: CellSizing | None = None) -> list[RowDesign]:
    """Every output row's levels (index g·out + o for grouped weights), by `SynapseArrayBlock`'s rule."""
    sizing = sizing or CellSizing()
    rows = int(np.prod(prim.weights.shape[:-1]))
    out = []
    for r in range(rows):
        block = SynapseArrayBlock.from_primitive(prim, r, sizing=sizing)
        out.append(RowDesign(tuple(int(k) for k in block.levels), block.bias_level, block.unit, block.out_gain))
    return out


def quantized_synapse_array(prim: SynapseArray, sizing: CellSizing | None = None) -> SynapseArray:
    """The layer the circuits realize: w_q = k·unit, b_q = k_b·unit per output row (see module doc).

    Run the ideal engine with these weights to get what the SPICE netlist should compute.
    """
    designs = row_designs(prim, sizing)
    shape = prim.weights.shape
    w = np.array([np.asarray(d.levels) * d.unit for d in designs]).reshape(shape)
    b = None if prim.bias is None else \
        np.array([d.bias_level * d.unit for d in designs]).reshape(shape[:-1]).astype(np.asarray(prim.bias).dtype)
    return SynapseArray(w.astype(prim.weights.dtype), b, rectify=prim.rectify)


# --- emitters ---------------------------------------------------------------------------
def _neuron(ctx: EmitContext, net: CurrentNetwork, sources: Sequence[str], row: RowDesign, rectify: bool,
            copy: int, r: int) -> str:
    """One output neuron (row ``r`` of copy ``copy`` of the bank being emitted): its synapses onto one
    soma (two, negated, when signed); returns the signal's net."""
    somas = []
    key = ""
    n, name = ctx.node_index, ctx.node_name
    for sign in ((1,) if rectify else (1, -1)):
        node = ctx.net("sum")
        key = key or node
        head = (n, copy, r, _side(sign))
        for col, (src, k) in enumerate(zip(sources, row.levels, strict=True)):
            if k == 0 or src == GROUND:  # a zero weight, or an Im2Col pad reading 0
                continue
            sig = net.signal(src, "current.synapse_array")
            place_synapse(ctx, net, sig.pos, node, sign * k, Where("row", (*head, col, 0), name, copy, r, sign, col))
            if sig.neg is not None:
                place_synapse(ctx, net, sig.neg, node, -sign * k,
                              Where("row", (*head, col, 1), name, copy, r, sign, col))
        if row.bias_level:
            place_synapse(ctx, net, reference(ctx, net).pos, node, sign * row.bias_level,
                          Where("row", (*head, BIAS, 0), name, copy, r, sign))
        somas.append(place_soma(ctx, net, node, Where("row", (*head, SOMA, 0), name, copy, r, sign), row.gain))
    net.signals[key] = CurrentSignal(somas[0], somas[1] if len(somas) > 1 else None)
    return key


@register("current.synapse_array")
def emit_synapse_array(prim: Primitive, ctx: EmitContext, ins: list[np.ndarray]) -> np.ndarray:
    """y[..., o] = (ReLU)(Σ w_q[o, i]·x[..., i] + b_q[o]); grouped weights act on x[..., g, :].

    `per_row` places rows position by position (row ``g·out + o`` of each output position), so the
    i-th call is row i mod rows of copy i // rows.
    """
    assert isinstance(prim, SynapseArray)
    net = _network(ctx)
    designs = row_designs(prim, net.sizing)
    calls = itertools.count()

    def place(sources: list[str], r: int) -> str:
        copy = next(calls) // len(designs)
        return _neuron(ctx, net, sources, designs[r], prim.rectify, copy, r)

    return per_row(ins[0], prim.weights, place)


@register("current.neuron")
def emit_neuron(prim: Primitive, ctx: EmitContext, ins: list[np.ndarray]) -> np.ndarray:
    """ReLU of a signal: free, since somas already rectify. A single soma is unchanged; of a pair
    (I_pos − I_neg with I_pos = max(0, y)) only the positive soma remains: max(0, y) = I_pos."""
    assert isinstance(prim, CurrentNeuron)
    net = _network(ctx)
    y = np.empty(ins[0].shape, dtype=object)
    for pos, src in np.ndenumerate(ins[0]):
        if src == GROUND:
            y[pos] = GROUND
            continue
        sig = net.signal(str(src), "current.neuron")
        if sig.neg is None:
            y[pos] = src
        else:
            key = ctx.net("relu")
            net.signals[key] = CurrentSignal(sig.pos)
            y[pos] = key
    return y


def adapt_input(ctx: EmitContext, port: str) -> str:
    """An input port feeds an input soma (the testbench injects scale·x ≥ 0 into the port); ports
    come in the netlist's port order, so the i-th call is input element i."""
    net = _network(ctx)
    i = net.inputs
    net.inputs += 1
    net.signals[port] = CurrentSignal(place_soma(ctx, net, port, Where("input", (INPUT_NODE, 0, i, 0, SOMA, 0), row=i)))
    return port


def adapt_output(ctx: EmitContext, src: str) -> str:
    """A read-out cell sourcing scale·y into a fresh node (the port's sense source holds it at V_OUT_V)."""
    net = _network(ctx)
    out = ctx.net("out")
    o = net.outputs  # output ports come in port order: the o-th call is output element o
    net.outputs += 1
    if src == GROUND:  # a constant-zero output: nothing drives the port
        return out
    sig = net.signal(src, "output port")
    vn = sig.neg.vn if sig.neg is not None else GROUND  # a lone soma: the NMOS branch stays off
    _place(ctx, net, "readout", (sig.pos.vp, vn, out, ctx.supplies.nets[0], GROUND), "rd",
           Where("readout", (OUTPUT_NODE, 0, o, 0, READOUT, 0), row=o), pre=sig.pos.element,
           pre_neg=sig.neg.element if sig.neg is not None else "")
    return out


ADAPTERS["current"] = (adapt_input, adapt_output)

import circuits.spice.emit_current_select  # noqa: E402,F401  (registers current.wta/average/junction)
