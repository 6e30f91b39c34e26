"""Chip instances: one seeded Pelgrom draw of a current-mode network, as behavioral weights for the engine.

The draw is the netlist's own: `ChipInstance.draw` emits the network with ``mismatch_seed`` (each
cell's devices drawn from ``SeedSequence([seed, node, copy, *cell])``, `emit_current`) and folds the
emitter's layout (`Netlist.layout`: which soma, synapse and read-out cell sits at which node, row,
side, column and copy, with its ``dvt_*``/``bf_*``) into engine weights; no element name is parsed.
Each mirror copy's error relative to its diode in weak inversion (EKV; Binas et al. 2016,
arXiv 1606.07786):

    NMOS: I_copy/I_ref = (β_copy/β_ref)·exp((ΔVt_ref − ΔVt_copy)/(n·U_T))
    PMOS: I_copy/I_ref = (β_copy/β_ref)·exp((ΔVt_copy − ΔVt_ref)/(n·U_T))
          (ngspice adds delvto to the signed vth0 = −|Vt|, so +delvto lowers |Vt|)

Signal path, with I_p(s) the current of soma s's ``vp`` diode M2 (the value the engine carries):

    I_p(s)   = G_s·r(M1/M0)·max(0, Σ synapse currents into s)
    synapse  k > 0 from s: +I_p(s)/m_diode · Σ_bits mult·r(mpX/M2_s)           (PMOS bank)
             k < 0 from s: −I_p(s)·r(M3/M2)_s/m_diode · Σ_bits mult·r(mnX/M4_s) (NMOS bank via vn)
    read-out y = I_p(pos)·r(mp/M2_pos) − I_p(neg)·r(M3/M2)_neg·r(mn/M4_neg)

so every layer stays linear-then-ReLU per soma and folds into a `SynapseArray`: a signed layer
becomes its positive and negative somas as 2·out rectified rows (what the chip does), and each
graph output gets a read-out row pair.
A differential-pair softmax (`current.softmax`) folds into an `InstanceSoftmax`: each input's
copies scale its gate voltage, its pair device's ΔVt and β shift its exponent, and each output's
drain-to-soma chain scales it (the emitter records these cells, `emit_current_select`). The other
current-mode blocks (winner-take-all, mirror average, junction) are refused by name.

Nominal drift (Early effect, 4 µm mirrors without cascodes): a copy whose drain sits ΔV further
than its diode's carries (1 + ΔV/V_A); the cells are trimmed for the node voltages at 1 unit,
and a diode moves n·U_T per e-fold of its current, so each mirror's error is ±(n·U_T/V_A)·ln(I)
per node (signs and nodes in `InstanceSynapseArray`; V_A from the card, checked in ngspice:
30 V n, 65 V p at 1 unit). ``engine_graph(early=False)`` drops it (plain `SynapseArray` rows): that
is ``--hardware chip``, exact gradients and the speed of a dense layer; ``chip,early`` keeps it, at
two more products per bank and a logarithm of every line (`sim.engine.kernels.ChipSynapseKernel`).

Validated for the default sizing (digits MLP, seed 3, 100 inputs: 0.57 % FS RMS, argmax 100 %) and
for the compact one (L = 2 µm) since the card tabulates V_A per length (`DeviceCard.early_table`:
V_A'·L from 4 µm said 15 V for a 2 µm NMOS, ngspice gives 19 V, so the copies were over-trimmed and
every layer lost 4-5 %): digits MLP, chip 0, 48 inputs, 1.3 % FS RMS (3.4 % with V_A'·L); the nominal
compact chip 0.24 % (hidden somas) and 0.48 % (output somas) of their full scale.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from circuits.current import CurrentNeuron, SoftmaxNormalizer, SynapseArray
from circuits.errors import UnsupportedError
from circuits.spice.current_cells import U_T_V, CellSizing
from circuits.spice.emit_current import CellRecord, row_designs
from compiler.ir import Graph, PrimitiveNode
from compiler.netlist import Netlist, NetlistOptions, emit_netlist
from compiler.pipeline import Compiled
from circuits.spice.current_softmax import pair_slope_n
from sim.engine.kernels import CHIP_SOFTMAX, CHIP_SYNAPSES, CLASS_KERNELS

log = logging.getLogger(__name__)

NETLIST_ONLY_MISMATCH = frozenset({"current.wta", "current.average", "current.junction"})
"""Current-mode blocks whose netlists draw mismatch (`emit_current_select`) but which this model does not fold."""
PMOS_DVT_SIGN = 1.0  # ngspice: delvto adds to the signed vth0 (negative for PMOS): +delvto lowers |Vt|


def ratio(cell: CellRecord, copy: str, ref: str, n_ut_v: float, polarity: str,
          ref_cell: CellRecord | None = None) -> float:
    """Mirror error I_copy/I_ref (1 for nominal devices) of device ``copy`` of ``cell`` against diode
    ``ref`` of ``ref_cell`` (default: the same cell), from their ΔVt and β draws (module docstring)."""
    rc = ref_cell or cell
    dvt_c, dvt_r = cell.dvt_v.get(copy, 0.0), rc.dvt_v.get(ref, 0.0)
    sign = -1.0 if polarity == "n" else PMOS_DVT_SIGN
    return cell.bf.get(copy, 1.0) / rc.bf.get(ref, 1.0) * float(np.exp(sign * (dvt_c - dvt_r) / n_ut_v))


@dataclass(frozen=True, slots=True)
class EarlySlopes:
    """The mirrors' Early drift per e-fold of a node's current, n·U_T/V_A (NMOS, PMOS), at a sizing's L.

    Nominal circuit constants (the card's subthreshold slope and Early voltage), not mismatch: a
    measured chip (`sim.measure.fit`) shares them with the draw-based one.
    """

    kn: float
    kp: float

    @classmethod
    def of(cls, sizing_name: str) -> EarlySlopes:
        sizing = CellSizing.preset(sizing_name)
        card, n_ut = sizing.card, sizing.card.subthreshold_n * U_T_V
        return cls(n_ut / card.early_voltage_v("n", sizing.l_unit_m), n_ut / card.early_voltage_v("p", sizing.l_unit_m))

    def synapse_logs(self, w: np.ndarray, from_input: bool) -> tuple[np.ndarray, np.ndarray]:
        """(pre, post) per synapse of a bank with signed effective weights ``w`` (`InstanceSynapseArray`).

        PMOS branch (w > 0): drain at the post soma node, diode at the pre's vp; NMOS branch (w < 0):
        drain at the post soma node, diode at the pre's vn, behind the pre's M3 (drain at vn, diode vp).
        An input soma's M1 drifts with its own current: −2·kn·ln x more on every branch it feeds.
        """
        kn, kp = self.kn, self.kp
        first = -2 * kn if from_input else 0.0
        pre = np.where(w > 0, -kp, np.where(w < 0, -kn - 2 * kp, 0.0)) + np.where(w != 0, first, 0.0)
        return pre, np.where(w > 0, -kp, np.where(w < 0, kn, 0.0))

    def bias_logs(self, b: np.ndarray) -> np.ndarray:
        """Post-soma drift of each row's bias synapse (its reference diode does not move)."""
        return np.where(b > 0, -self.kp, self.kn)

    @property
    def soma_log(self) -> float:
        """A soma's M1 copy against its M0 diode: −kn per e-fold of the soma current."""
        return -self.kn

    def readout_logs(self, m: np.ndarray) -> np.ndarray:
        """Read-out branches drain at V_OUT: PMOS −kp·ln v; NMOS −kn·ln v behind the neg soma's M3 (−2kp·ln v)."""
        return np.where(m > 0, -self.kp, np.where(m < 0, -self.kn - 2 * self.kp, 0.0))

    def bank(self, w: np.ndarray, b: np.ndarray | None, from_input: bool) -> InstanceSynapseArray:
        """A rectifying bank with effective weights ``w`` (bias ``b``) and no mismatch: these slopes' drift alone."""
        pre, post = self.synapse_logs(w, from_input)
        return InstanceSynapseArray(w, b, rectify=True, pre_log=pre, post_log=post,
                                    bias_post_log=None if b is None else self.bias_logs(b), soma_log=self.soma_log)

    def readout(self, m: np.ndarray) -> InstanceSynapseArray:
        """A read-out with matrix ``m`` and no mismatch: these slopes' drift alone."""
        return InstanceSynapseArray(m, None, pre_log=self.readout_logs(m))


CellDraw = CellRecord  # the name chip instances used for a placed cell before the emitters recorded them


@dataclass(frozen=True, slots=True, eq=False)
class InstanceSynapseArray(SynapseArray):
    """A synapse array of one chip: mismatch-folded weights, plus the mirrors' Early-effect drift.

    Each synapse's current w·v gets a relative error pre·ln v + post·ln I (v: the pre soma's line
    current, I: the post soma's input, both in model units; the trim is exact at 1 unit) and each
    soma's M1 copy soma·(ln(G·I) + ln I); weights here are in line units (soma gains folded in,
    ``row_gain`` = G·r(M1/M0) per row). First order in the drift: I in the logs is the drift-free sum.
    A read-out (``rectify`` False) uses only ``pre``.
    """

    row_gain: np.ndarray | None = None
    line_gain: np.ndarray | None = None  # nominal G per row
    pre_log: np.ndarray | None = None
    post_log: np.ndarray | None = None
    bias_post_log: np.ndarray | None = None
    soma_log: float = 0.0

    def ideal(self, x: np.ndarray) -> np.ndarray:
        """The chip's math, stated once in `sim.engine.kernels.ChipSynapseKernel` (float64 inside)."""
        return CHIP_SYNAPSES.forward(self, {}, [np.asarray(x, np.float64)], False)[0].astype(np.float32)


CLASS_KERNELS[InstanceSynapseArray] = CHIP_SYNAPSES  # the engine runs a chip's banks with the chip's kernel


@dataclass(frozen=True, slots=True, eq=False)
class InstanceSoftmax(SoftmaxNormalizer):
    """The differential-pair softmax of one chip over the last axis (`sim.engine.kernels.ChipSoftmaxKernel`):

        a⁺_j = r(cp_j/M2 of pos_j),  a⁻_j = r(M3/M2 of neg_j)·r(cn_j/M4 of neg_j)   (gate slopes)
        o_j  = ln β_q,j − ΔVt_q,j/(n_pair·U_T)                                       (pair offset)
        g_j  = r(me_j/md_j)·r(M1/M0 of output soma j)                                 (output chain)

    Mismatch only: the resistors, the tail current and V_ref are ideal; no Early drift is modelled.
    """

    a_pos: np.ndarray | None = None
    a_neg: np.ndarray | None = None
    shift: np.ndarray | None = None
    out_gain: np.ndarray | None = None

    def ideal(self, x: np.ndarray) -> np.ndarray:
        return CHIP_SOFTMAX.forward(self, {}, [np.asarray(x, np.float64)], False)[0].astype(np.float32)


CLASS_KERNELS[InstanceSoftmax] = CHIP_SOFTMAX


@dataclass(frozen=True, slots=True)
class Layer:
    """A synapse array of the instance: y = max(0, W·x + b) per soma (signed layers: pos rows, then neg)."""

    weights: np.ndarray
    bias: np.ndarray
    paired: bool
    row_gain: np.ndarray
    line_gain: np.ndarray
    pre_log: np.ndarray
    post_log: np.ndarray
    bias_post_log: np.ndarray
    soma_log: float


@dataclass(frozen=True, slots=True)
class ChipInstance:
    """One chip: the compiled graph, its seed and the behavioral parameters of its mirrors."""

    compiled: Compiled
    seed: int | None
    scale: float
    cells: tuple[CellRecord, ...]  # every placed cell with its draw (`Netlist.layout`)
    layers: dict[str, Layer]  # SynapseArray node name -> instance layer (per-layer effective parameters)
    selects: dict[str, np.ndarray]  # CurrentNeuron node name -> selection matrix
    readouts: dict[str, tuple[np.ndarray, np.ndarray]]  # graph output -> read-out matrix, its pre_log
    sizing: str = "default"
    softmaxes: dict[str, InstanceSoftmax] = field(default_factory=dict)  # current.softmax node -> its chip

    @classmethod
    def draw(cls, compiled: Compiled, seed: int | None, scale: float | None = None,
             sizing: str = "default") -> ChipInstance:
        """The instance ngspice simulates with ``chip_seed=seed`` (None: nominal devices) and cell
        sizing preset ``sizing`` (`CellSizing.preset`); ``scale`` defaults to the target's."""
        if not compiled.target.chip_instances:
            raise UnsupportedError(f"chip instances are current-mode networks; got target {compiled.target.name}")
        opts = NetlistOptions.for_target(compiled.target, scale, 10**9, seed, sizing)
        return _build(compiled, seed, opts.scale, emit_netlist(compiled.graph, compiled.target, opts), sizing)

    def arrays(self) -> dict[str, np.ndarray]:
        """The behavioral parameters as named arrays (``<layer>.<field>``), for chip.npz."""
        out: dict[str, np.ndarray] = {"seed": np.asarray(-1 if self.seed is None else self.seed),
                                      "scale_a_per_unit": np.asarray(self.scale)}
        for name, lay in self.layers.items():
            for f in Layer.__slots__:
                out[f"{name}.{f}"] = np.asarray(getattr(lay, f))
        for name, sel in self.selects.items():
            out[f"{name}.select"] = sel
        for name, (matrix, pre_log) in self.readouts.items():
            out[f"{name}.readout"], out[f"{name}.readout_pre_log"] = matrix, np.asarray(pre_log)
        for name, sm in self.softmaxes.items():
            for f in ("a_pos", "a_neg", "shift", "out_gain"):
                out[f"{name}.{f}"] = np.asarray(getattr(sm, f))
        return out

    def engine_graph(self, early: bool = True) -> Graph:
        """A copy of the lowered graph whose synapse arrays compute this instance (run it with
        `sim.engine.execute`); ``early=False`` keeps only the mismatch (plain linear synapse arrays)."""
        g = self.compiled.graph.copy()
        for node in list(g.topo()):
            if not isinstance(node, PrimitiveNode):
                continue
            if node.name in self.layers:
                lay = self.layers[node.name]
                node.primitive = InstanceSynapseArray(
                    lay.weights, lay.bias, rectify=True, row_gain=lay.row_gain, line_gain=lay.line_gain,
                    pre_log=lay.pre_log, post_log=lay.post_log, bias_post_log=lay.bias_post_log,
                    soma_log=lay.soma_log) if early else SynapseArray(lay.weights, lay.bias, rectify=True)
            elif node.name in self.selects:
                node.primitive = SynapseArray(self.selects[node.name], None, rectify=False)
            elif node.name in self.softmaxes:
                node.primitive = self.softmaxes[node.name]
        for out, (matrix, pre_log) in self.readouts.items():
            inner = g.fresh(f"{out}_somas")
            for c in g.consumers(out):
                g.set_inputs(c, [inner if t == out else t for t in c.inputs])
            prod = g.producer(out)
            if prod is None:  # a graph input passed straight through: no bank drives its read-out
                raise UnsupportedError(f"graph output {out!r} is a graph input passed straight through; the chip "
                                       "model reads outputs from somas: drop it from the outputs")
            g.set_outputs(prod, [inner if t == out else t for t in prod.outputs])
            prim = InstanceSynapseArray(matrix, None, pre_log=pre_log) if early else SynapseArray(matrix, None)
            g.add(PrimitiveNode(g.fresh("readout"), [inner], [out], primitive=prim, target="current"))
        return g


@dataclass(slots=True)
class _Signals:
    """The somas behind one tensor's elements: pos[i], and neg[i] for a signed (paired) tensor."""

    pos: list[CellRecord]
    neg: list[CellRecord] | None
    col_scale: np.ndarray  # engine value -> I_p/scale per column (input somas: r(M1/M0)); 1 elsewhere
    is_input: bool = False

    @property
    def columns(self) -> list[CellRecord]:
        return self.pos + (self.neg or [])


def _build(compiled: Compiled, seed: int | None, scale: float, nl: Netlist, sizing_name: str = "default") -> ChipInstance:
    """Fold the emitter's layout (`emit_current.CellRecord`s), bank by bank, into engine weights."""
    sizing = CellSizing.preset(sizing_name)
    n_ut = sizing.card.subthreshold_n * U_T_V
    md = sizing.m_diode
    slopes = EarlySlopes.of(sizing_name)
    cells = tuple(c for c in nl.layout if isinstance(c, CellRecord))
    by_name = {c.element: c for c in cells}
    row_soma: dict[tuple[str, int, int, int], CellRecord] = {}
    into: dict[tuple[str, int, int, int], list[CellRecord]] = {}
    for c in cells:
        if c.kind == "soma" and c.role == "row":
            row_soma[(c.node, c.copy, c.row, c.side)] = c
        elif c.kind == "synapse":
            into.setdefault((c.node, c.copy, c.row, c.side), []).append(c)
    input_somas = sorted((c for c in cells if c.kind == "soma" and c.role == "input"), key=lambda c: c.row)
    readout_cells = {c.row: c for c in cells if c.kind == "readout"}

    def r10(s: CellRecord) -> float:
        return ratio(s, "m1", "m0", n_ut, "n")

    def syn_gain(syn: CellRecord, pre: CellRecord) -> float:
        """Current into the soma node per unit of the pre soma's I_p."""
        k = syn.level
        bits = [m for m in (4, 2, 1) if abs(k) & m]
        if k > 0:
            return sum(m * ratio(syn, f"mp{m}", "m2", n_ut, "p", pre) for m in bits) / md
        r32 = ratio(pre, "m3", "m2", n_ut, "p")
        return -r32 * sum(m * ratio(syn, f"mn{m}", "m4", n_ut, "n", pre) for m in bits) / md

    sig: dict[str, _Signals] = {}
    start = 0
    for name, ports in nl.input_ports.items():
        pos = input_somas[start:start + len(ports)]
        start += len(ports)
        sig[name] = _Signals(pos, None, np.array([r10(s) for s in pos]), is_input=True)
    layers: dict[str, Layer] = {}
    selects: dict[str, np.ndarray] = {}
    softmaxes: dict[str, InstanceSoftmax] = {}
    for node in compiled.graph.topo():
        if not isinstance(node, PrimitiveNode):
            raise UnsupportedError(f"chip instance: node {node.name!r} ({node.kind}) is not a current-mode "
                                   "primitive; chip instances cover dense current-mode networks")
        prim, src = node.primitive, sig.get(node.inputs[0])
        if src is None:
            raise UnsupportedError(f"chip instance: node {node.name!r} reads {node.inputs[0]!r}, not a soma signal")
        if isinstance(prim, CurrentNeuron):  # ReLU of a signal: the positive soma (somas already rectify)
            n = len(src.pos)
            selects[node.name] = np.hstack([np.eye(n), np.zeros((n, len(src.columns) - n))]) * \
                np.concatenate([src.col_scale, np.ones(len(src.columns) - len(src.col_scale))])[:n]
            sig[node.outputs[0]] = _Signals(src.pos, None, np.ones(n))
            continue
        if isinstance(prim, SoftmaxNormalizer):
            softmaxes[node.name], out_somas = _fold_softmax(node, src, cells, by_name, n_ut, scale)
            sig[node.outputs[0]] = _Signals(out_somas, None, np.ones(len(out_somas)))
            continue
        if node.kind in NETLIST_ONLY_MISMATCH:
            raise UnsupportedError(
                f"chip instance: node {node.name!r} ({node.kind}): the engine's chip model folds synapse arrays "
                "and somas only; this block's mismatch is drawn in the ngspice netlist but not modelled here. "
                "Simulate the chip in ngspice (kelvin run --engine spice --chip-seed S), or run without a chip")
        if not isinstance(prim, SynapseArray) or prim.weights.ndim != 2 or node.copies != 1:
            raise UnsupportedError(f"chip instance: node {node.name!r} ({node.kind}) is not a dense synapse array")
        col = {c.element: j for j, c in enumerate(src.columns)}
        scale_col = np.concatenate([src.col_scale, np.ones(len(src.columns) - len(src.col_scale))])
        designs = row_designs(prim, sizing)
        sides = (1,) if prim.rectify else (1, -1)
        rows: dict[int, list[tuple[np.ndarray, float, CellRecord]]] = {s: [] for s in sides}
        for r in range(len(designs)):
            for side in sides:
                soma = row_soma.get((node.name, 0, r, side))
                if soma is None:
                    raise UnsupportedError(f"chip instance: the netlist has no soma for row {r} of {node.name!r}")
                w, b = np.zeros(len(src.columns)), 0.0
                for syn in into.get((node.name, 0, r, side), []):
                    pre = by_name[syn.pre]
                    if pre.role == "reference":
                        b += syn_gain(syn, pre) * r10(pre)
                    else:
                        w[col[pre.element]] += syn_gain(syn, pre)
                g = soma.gain * r10(soma)
                rows[side].append((g * w * scale_col, g * b, soma))
        ordered = [r for s in sides for r in rows[s]]
        w_all = np.array([r[0] for r in ordered])
        b_all = np.array([r[1] for r in ordered])
        pre_log, post_log = slopes.synapse_logs(w_all, src.is_input)
        layers[node.name] = Layer(w_all, b_all, not prim.rectify,
                                  np.array([r[2].gain * r10(r[2]) for r in ordered]),
                                  np.array([r[2].gain for r in ordered]), pre_log, post_log,
                                  slopes.bias_logs(b_all), slopes.soma_log)
        pos = [r[2] for r in rows[1]]
        neg = [r[2] for r in rows[-1]] if not prim.rectify else None
        sig[node.outputs[0]] = _Signals(pos, neg, np.ones(len(pos)))
    readouts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    first_port = 0
    for name, ports in nl.output_ports.items():
        src = sig[name]
        m = np.zeros((len(ports), len(src.columns)))
        for o in range(len(ports)):
            cell = readout_cells.get(first_port + o)
            if cell is None:  # a constant-zero output: no read-out drives the port
                continue
            pos = by_name[cell.pre]
            if pos is not src.pos[o]:
                raise UnsupportedError(f"chip instance: output {name!r} element {o} reads soma {pos.element}, "
                                       f"not {src.pos[o].element}")
            m[o, o] = ratio(cell, "mp", "m2", n_ut, "p", pos)
            if src.neg is not None:
                neg = by_name[cell.pre_neg]
                m[o, len(src.pos) + o] = -ratio(neg, "m3", "m2", n_ut, "p") * ratio(cell, "mn", "m4", n_ut, "n", neg)
        first_port += len(ports)
        if src.neg is None and not np.allclose(src.col_scale, 1.0):
            m = m * src.col_scale
        readouts[name] = (m, slopes.readout_logs(m))
    log.info("chip instance seed %s (%s sizing): %d cells, %d layers", seed, sizing_name, len(cells), len(layers))
    return ChipInstance(compiled, seed, scale, cells, layers, selects, readouts, sizing_name, softmaxes)


def _fold_softmax(node: PrimitiveNode, src: _Signals, cells: tuple[CellRecord, ...], by_name: dict[str, CellRecord],
                  n_ut: float, scale: float) -> tuple[InstanceSoftmax, list[CellRecord]]:
    """A current.softmax node's chip parameters (`InstanceSoftmax`) and its output somas, from the
    emitter's records (`emit_current_select._record_softmax`): one group over a (batch, N) signal."""
    branches = sorted((c for c in cells if c.kind == "softmax" and c.node == node.name), key=lambda c: (c.copy, c.row))
    somas = sorted((c for c in cells if c.kind == "softmax_soma" and c.node == node.name), key=lambda c: (c.copy, c.row))
    n = len(src.pos)
    if len(branches) != n or any(c.copy for c in branches) or node.copies != 1:
        raise UnsupportedError(f"chip instance: node {node.name!r} (current.softmax): the chip model takes one "
                               f"softmax group over a (batch, N) signal; this one has {len(branches)} elements "
                               f"in groups over {n} signals")
    n_pair = pair_slope_n(scale) * U_T_V  # the pair's own slope, at its one-unit tail
    a_pos, a_neg, gain, shift = np.ones(n), np.ones(n), np.ones(n), np.zeros(n)
    for j, (br, soma) in enumerate(zip(branches, somas, strict=True)):
        pos = by_name.get(br.pre)
        if pos is not src.pos[j]:
            raise UnsupportedError(f"chip instance: node {node.name!r} element {j} reads {br.pre!r}, "
                                   f"not {src.pos[j].element!r}")
        a_pos[j] = ratio(br, "cp", "m2", n_ut, "p", pos) * (src.col_scale[j] if j < len(src.col_scale) else 1.0)
        if src.neg is not None:
            neg = by_name[br.pre_neg]
            a_neg[j] = ratio(neg, "m3", "m2", n_ut, "p") * ratio(br, "cn", "m4", n_ut, "n", neg)
        shift[j] = np.log(br.bf.get("mq", 1.0)) - br.dvt_v.get("mq", 0.0) / n_pair
        gain[j] = ratio(br, "me", "md", n_ut, "p") * ratio(soma, "m1", "m0", n_ut, "n")
    return InstanceSoftmax(axes=(-1,), a_pos=a_pos, a_neg=a_neg, shift=shift, out_gain=gain), somas
