"""Solver hints for whole-network current-mode decks: predicted node voltages and a clamp homotopy.

ngspice's ``.op`` of a Binas network (thousands of subthreshold mirrors) fails direct Newton
and falls back to gmin stepping: hundreds of iterations. Newton started near the solution
needs a handful. Kelvin predicts every soma and synapse node and adds, per predicted node n,

    B n 0 I = V(knob)·(V(n) − p_n),      .dc Vknob 1e-4 0 −1e-4

The first sweep point pins every node at its prediction (0.1 mS against nA currents); the last
has V(knob) = 0 exactly, where every pull carries zero current and adds zero conductance to its
node (its only other Jacobian entry is in the column of V(knob), which a source fixes): the
circuit is the unmodified one, so the seed changes the solver's path, never the answer (outputs
are read at the last point). A poor prediction only costs iterations (ngspice falls back to
gmin stepping); a failed seeded run is rerun unseeded by `sim.spice_commands`. Measured (digits
64-16-10, compact chip seed 0): ~20 Newton iterations instead of ~620, outputs equal to 1e-9.

Release. Every chip is let go in one step (`SNAP`). Disabled bits' drains, which only leakage sets,
are left free (`Prediction`): clamped at their predictions, some 300 of a minimum-size chip's sat
0.3–0.6 V off (3.8× compact's Pelgrom spread), and released all at once they sent Newton to gmin
stepping (digits, minimum chip 0, aware weights: 2 of 10 samples, 8–17 s each; in batches, whole
batches failing with an overflow). A seeded run that fails is rerun with `GRADUAL`, which lets go
in two phases of decade steps, integer V(knob) from N down to 0: first the loose
nodes, down to ~1e-12 S and then 0 while every held node stays pinned (each loose node settles
against its own few devices), then the held nodes likewise. Both phases need the small steps:
starting the loose phase at 1 µS, stepping two decades at a time, or releasing the loose nodes
in the held phase's first step each sent some samples back to gmin stepping. The pulls must also
be written into each clamp's own expression: routing them through a shared node (``B gh … V=…``)
failed on every sample tried.

Prediction. Cells are characterised once per cell design by one ngspice bench of the
netlist's own subcircuits (`bench_deck`): a soma whose input node is swept in voltage, driving
one synapse of every level into outputs held at V_out (a second sweep). That gives, on a
(V_in, V_out) grid, the soma's input current and lines, each synapse's output current and
every internal node, including the floating ones (a disabled bit's drain, the idle sign
node) that only leakage sets. The network is then solved soma by soma in topological order:
the input node V_in satisfies KCL, I_ext + Σ_syn I_syn(k, V_in,pre, V_in) = I_M0(V_in)
(bisection; this covers rectified somas pulled towards 0 V by their sinking synapses), and
every other node is read off the tables. A soma of gain G runs its lines as if its input
sat n·U_T·ln G higher (M1 in weak inversion). A chip instance's draws (`CellRecord.dvt_v`, ``bf``)
scale each synapse current and shift each diode as `sim.chip` folds them; without them a
marginal soma (net input near 0, held in triode by its sinking synapses) is tens of mV off,
enough to send Newton to gmin stepping. Nodes only leakage sets stay 0.1–0.4 V off (they
hang on single devices' mismatch); Newton recovers those.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from circuits.errors import OutputError
from circuits.files import ensure_dir, write_npz
from circuits.spice.current_cells import MAX_LEVEL, SOMA_PORTS, SYNAPSE_PORTS, bit_nodes
from circuits.spice.emit import GROUND
from circuits.spice.emit_current import CellRecord
from circuits.spice.netlist import (
    Deck,
    Subckt,
    bsource,
    clamp_source,
    fmt,
    instance,
    spice_name,
    vsource,
)
from compiler.netlist import Netlist
from sim.chip import PMOS_DVT_SIGN, ratio
from sim.spice.job import SimJob
from sim.spice.runner import run_jobs

log = logging.getLogger(__name__)

KNOB = "knob"  # the clamp strength node (S per V of V(knob))
INDEX = "idx"  # a batch deck's sample index node (`batch_deck`)
BATCH_MAX = 12  # samples per batch deck: ~1.9 s of reading and set-up shared, ~0.8 s each to solve
CLAMP_START_S = 1e-4  # first sweep point: every node pinned by 0.1 mS (1 mS: 2-4x slower sparse reordering)
V_IN_STEP_V = 0.005  # bench grid of the pre soma's input voltage
V_IN_MAX_V = 0.9
U_POINTS = 21  # bench grid of the output node: V_out = V_OUT_SPAN_V·u², u in [0, 1] (fine near 0 V)
V_OUT_SPAN_V = 0.9
LEVELS = tuple(k for k in range(-MAX_LEVEL, MAX_LEVEL + 1) if k)
SYNAPSE_NODES = ("c1", "c2", "c4", "ns", "ps")  # internal nodes of `SynapseCircuit`


@dataclass(frozen=True, slots=True)
class CellTables:
    """One cell design characterised on a grid of (pre soma input voltage, synapse output voltage).

    ``i_in_a[v]``: current into the soma's input node at V_in = ``v_in_v[v]`` (gain 1);
    ``soma[line][v]``: its ``vp``/``vn``; ``i_syn_a[k][v, u]``: current a level-k synapse on that
    soma delivers into its output at V_out = V_OUT_SPAN_V·u[u]²; ``nodes[k][name][v, u]`` its
    internal nodes; ``n_ut_v``: the diode's n·U_T (V per e-fold of current, weak inversion).
    """

    v_in_v: np.ndarray
    u: np.ndarray
    i_in_a: np.ndarray
    soma: Mapping[str, np.ndarray]
    i_syn_a: Mapping[int, np.ndarray]
    nodes: Mapping[int, Mapping[str, np.ndarray]]
    n_ut_v: float


def _level_name(k: int) -> str:
    return f"{'p' if k > 0 else 'n'}{abs(k)}"


def bench_deck(models: Sequence[str], soma: Subckt, synapse: Subckt, vdd_v: float) -> Deck:
    """The characterisation bench: soma input swept in voltage, one synapse per level into held outputs."""
    deck = Deck("kelvin seed: cell tables", models=list(models), subckts=[soma, synapse])
    deck.elements += [vsource("dd", "vdd", GROUND, vdd_v), vsource("pin", "pin", GROUND, 0.0),
                      vsource("u", "u", GROUND, 0.0),
                      instance("pre", soma.name, ("pin", "vn", "vp", "vdd", GROUND))]
    for k in LEVELS:
        name = _level_name(k)
        bits = ["vdd" if b == "vdd" else GROUND for b in bit_nodes(k)]
        deck.elements += [
            instance(f"s_{name}", synapse.name, ("vn", "vp", f"o_{name}", *bits, "vdd", GROUND)),
            vsource(f"m_{name}", f"o_{name}", f"h_{name}", 0.0),  # its current: into the output
            bsource(f"o_{name}", f"h_{name}", GROUND, f"{fmt(V_OUT_SPAN_V)}*V(u)*V(u)"),
        ]
    deck.options["reltol"] = 1e-6
    deck.analyses.append(f".dc Vpin 0 {fmt(V_IN_MAX_V)} {fmt(V_IN_STEP_V)} Vu 0 1 {fmt(1.0 / (U_POINTS - 1))}")
    return deck


def tables_from(vectors: Mapping[str, np.ndarray]) -> CellTables:
    """`CellTables` from the bench's vectors (the first sweep source varies fastest)."""
    v_in = np.round(np.arange(0.0, V_IN_MAX_V + V_IN_STEP_V / 2, V_IN_STEP_V), 9)
    nv = len(v_in)

    def grid(name: str) -> np.ndarray:
        return np.asarray(vectors[name], np.float64).reshape(U_POINTS, nv).T

    i_in = -grid("vpin#branch")[:, 0]
    soma = {line: grid(line)[:, 0] for line in ("vp", "vn")}
    i_syn = {k: grid(f"vm_{_level_name(k)}#branch") for k in LEVELS}
    nodes = {k: {n: grid(f"xs_{_level_name(k)}.{n}") for n in SYNAPSE_NODES} for k in LEVELS}
    weak = (i_in > 1e-11) & (i_in < 1e-9)  # the diode's weak-inversion slope
    slope = np.gradient(v_in, np.log(np.maximum(i_in, 1e-30)))
    n_ut = float(np.median(slope[weak])) if weak.any() else 0.035
    return CellTables(v_in, np.linspace(0.0, 1.0, U_POINTS), i_in, soma, i_syn, nodes, n_ut)


@dataclass(frozen=True, slots=True)
class _Cells:
    """The pieces of a netlist the seed needs: the two cell definitions and where each cell sits."""

    soma: Subckt
    synapse: Subckt
    somas: list  # CellRecords of somas, in placement order
    synapses: list
    nodes: dict[str, tuple[str, ...]]  # element name -> its nets


FREE_CELLS = frozenset({"softmax", "softmax_soma"})
"""Cells left unclamped, solved by Newton around the clamped rest: a differential-pair softmax head
(a Softmax classifier: 4.8 s a sample unseeded, 1.2 s seeded in one batch, outputs identical). Other
cells (winner-take-all selects, averages) keep a netlist unseeded: their operating point is not
predicted, and a WTA's need not be unique."""


def _cells(nl: Netlist) -> _Cells | None:
    """Somas and synapses of a current-mode netlist; None if it holds a cell neither they, read-outs
    nor `FREE_CELLS` (no seed then)."""
    if nl.signal != "current" or not nl.layout:
        return None
    kinds = {r.kind for r in nl.layout}
    if not kinds <= {"soma", "synapse", "readout"} | FREE_CELLS or not {"soma", "synapse"} <= kinds:
        return None
    elements = {e.name: e for e in nl.top.elements}
    by_name = {spice_name(s.name): s for s in nl.subckts}
    subs = {}
    for kind, ports in (("soma", SOMA_PORTS), ("synapse", SYNAPSE_PORTS)):
        used = {elements[r.element].value for r in nl.layout if r.kind == kind}
        if len(used) != 1 or next(iter(used)) not in by_name or by_name[next(iter(used))].ports != ports:
            return None
        subs[kind] = by_name[next(iter(used))]
    return _Cells(subs["soma"], subs["synapse"], [r for r in nl.layout if r.kind == "soma"],
                  [r for r in nl.layout if r.kind == "synapse"],
                  {r.element: elements[r.element].nodes for r in nl.layout if r.kind not in FREE_CELLS})


def bench_for(nl: Netlist) -> tuple[str, Deck] | None:
    """The cache key and characterisation bench of a netlist's cells (None: nothing to seed)."""
    cells = _cells(nl)
    if cells is None:
        return None
    vdd = nl.supplies.volts[0]
    deck = bench_deck(nl.models, cells.soma, cells.synapse, vdd)
    key = hashlib.sha1(deck.render().encode()).hexdigest()
    return key, deck


_TABLES: dict[str, CellTables] = {}  # this process's tables by bench hash
FORMAT = 1  # of the cached .npz tables


def cache_dir() -> Path:
    """Where calibrated tables persist: ``$KELVIN_CACHE_DIR``, else ``$XDG_CACHE_HOME/kelvin`` (``~/.cache``)."""
    root = os.environ.get("KELVIN_CACHE_DIR") or \
        os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kelvin")
    return Path(root) / "spice_seed"


def tables_for(nl: Netlist, *, executor: Executor | None = None, timeout_s: float = 300.0, cache: bool = True) -> CellTables | None:
    """The netlist's cell tables: from this process, the disk cache, or one ngspice bench (~2 s).

    None when the netlist has nothing to seed (not current mode, or cells other than soma,
    synapse and read-out) or the bench failed; callers then run unseeded.
    """
    found = bench_for(nl)
    if found is None:
        return None
    key, deck = found
    if key in _TABLES:
        return _TABLES[key]
    path = cache_dir() / f"tables-{FORMAT}-{key}.npz"
    vectors: Mapping[str, np.ndarray] | None = None
    if cache and path.is_file():
        try:
            with np.load(path) as z:
                vectors = {k: z[k] for k in z.files}
            tables = tables_from(vectors)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("seed tables %s unreadable (%s); characterising again", path, exc)
            vectors = None
    if vectors is None:
        result = run_jobs([SimJob("seed_tables", deck.render(), timeout_s)], workers=1, executor=executor)[0]
        if not result.ok:
            log.warning("seed tables: the cell bench failed (%s); running unseeded", result.error)
            return None
        vectors = {k: np.asarray(v, np.float64) for k, v in result.vectors.items()
                   if k.endswith("#branch") or k in ("vp", "vn") or k.startswith("xs_")}
        tables = tables_from(vectors)
        if cache:
            _save(path, vectors)
    _TABLES[key] = tables
    return tables


def _save(path: Path, vectors: Mapping[str, np.ndarray]) -> None:
    """Write the bench vectors atomically (temp file, then rename); a failure only costs a rerun later."""
    try:
        write_npz(ensure_dir(path.parent) / path.name, **vectors)
    except (OSError, OutputError) as exc:
        log.warning("seed tables: cannot cache in %s (%s)", path.parent, exc)


def _bilinear(table: np.ndarray, v_in: np.ndarray, v_out: np.ndarray, level: np.ndarray | None = None) -> np.ndarray:
    """``table[v, u]`` (or ``table[level, v, u]`` per point) at (V_in, V_out), bilinear on the bench's
    (V_in, u) grid, clipped to it."""
    n_v = table.shape[-2]
    fv = np.clip(np.asarray(v_in, np.float64) / V_IN_STEP_V, 0, n_v - 1.000001)
    fu = np.clip(np.sqrt(np.clip(v_out, 0, None) / V_OUT_SPAN_V) * (U_POINTS - 1), 0, U_POINTS - 1.000001)
    i, j = fv.astype(int), fu.astype(int)
    a, b = fv - i, fu - j
    if level is None:
        return ((1 - a) * (1 - b) * table[i, j] + a * (1 - b) * table[i + 1, j]
                + (1 - a) * b * table[i, j + 1] + a * b * table[i + 1, j + 1])
    return ((1 - a) * (1 - b) * table[level, i, j] + a * (1 - b) * table[level, i + 1, j]
            + (1 - a) * b * table[level, i, j + 1] + a * b * table[level, i + 1, j + 1])


@dataclass(frozen=True, slots=True)
class Prediction:
    """Node voltages (V) by ngspice's flattened name (``xdut.sum_3``, ``xdut.xsyn_7.c1``).

    ``held``: nodes a device holds (soma diodes, enabled bit drains, the powered sign node), predicted
    to mV. ``loose``: the idle sign node, which only leakage sets; its level depends on each device's
    mismatch and may be off by some 0.1 V. A disabled bit's drain, also set by leakage alone, is not
    predicted: it is left free for Newton from the first iteration. Clamped at its prediction it
    moved 0.3-0.6 V on release at minimum sizing, which took the gradual release (`Release`) to
    solve; free, it settles with the held nodes pinned, and the one-step release solves (digits,
    minimum chip 0, 24 samples on 2 workers: 0.25 s a sample against 1.05 s with those clamps and
    the gradual release; outputs equal to 1e-9). A digits chip has 1,855 such drains among 5,667
    clamped nodes, and the clamps' behavioral sources cost ngspice more per iteration than the
    transistors do. A measurement's probe decks are the exception (`PROBE`): their single-bit test
    levels leave two of every synapse's three drains disabled, and free, 2 in 8 of their batches
    failed the one-step release (digits, minimum chip 0).
    """

    held: dict[str, float]
    loose: dict[str, float]


def predict(nl: Netlist, tables: CellTables, sample: Mapping[str, np.ndarray], free_drains: bool = True) -> Prediction:
    """Predicted voltage of every soma and synapse node for one sample (model units, like ``Netlist.deck``);
    without ``free_drains``, disabled bits' drains too, as loose nodes (`Prediction`)."""
    cells = _cells(nl)
    if cells is None:
        raise ValueError("predict: only current-mode networks of somas, synapses and read-outs are seeded")
    t = tables
    x = np.concatenate([np.asarray(sample[name], np.float64).reshape(-1) for name in nl.input_ports])
    soma_of_in = {cells.nodes[r.element][0]: r for r in cells.somas}
    depth: dict[str, int] = {}
    incoming: dict[str, list] = {r.element: [] for r in cells.somas}
    for r in nl.layout:  # placement order is topological: a synapse's pre soma is placed before it
        if r.kind == "synapse":
            incoming[soma_of_in[cells.nodes[r.element][2]].element].append(r)
        elif r.kind == "soma":
            depth[r.element] = 1 + max((depth[s.pre] for s in incoming[r.element]), default=-1)
    n_ut = t.n_ut_v
    v_in: dict[str, float] = {}
    v_eff: dict[str, float] = {}  # where the soma's M1 current sits on the nominal gain-1 tables
    i_syn = np.stack([t.i_syn_a[k] for k in LEVELS])
    level_index = {k: i for i, k in enumerate(LEVELS)}
    records = {r.element: r for r in cells.somas}
    for d in range(max(depth.values()) + 1):
        group = [r for r in cells.somas if depth[r.element] == d]
        ext = np.array([x[r.row] * nl.scale if r.role == "input" else nl.scale if r.role == "reference" else 0.0
                        for r in group])
        dvt0 = np.array([r.dvt_v.get("m0", 0.0) for r in group])
        bf0 = np.array([r.bf.get("m0", 1.0) for r in group])
        syn = [(g, level_index[s.level], v_eff[s.pre], _branch_ratio(s, records[s.pre], n_ut))
               for g, r in enumerate(group) for s in incoming[r.element]]
        owner = np.array([s[0] for s in syn], int)
        lev = np.array([s[1] for s in syn], int)
        pre = np.array([s[2] for s in syn], float)
        factor = np.array([s[3] for s in syn], float)
        lo, hi = np.zeros(len(group)), np.full(len(group), t.v_in_v[-1])
        for _ in range(40):  # KCL at each input node; the net inflow falls as V rises
            mid = (lo + hi) / 2
            inflow = ext - bf0 * np.interp(mid - dvt0, t.v_in_v, t.i_in_a)
            if len(syn):
                inflow += np.bincount(owner, factor * _bilinear(i_syn, pre, mid[owner], lev), len(group))
            up = inflow > 0
            lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
        for g, r in enumerate(group):
            v_in[r.element] = float((lo[g] + hi[g]) / 2)
            v_eff[r.element] = (v_in[r.element] - r.dvt_v.get("m1", 0.0)
                                + n_ut * float(np.log(max(r.gain * r.bf.get("m1", 1.0), 1e-12))))
    ports = set(nl.ports)

    def flat(net: str) -> str:
        return net if net in ports else f"xdut.{net}"

    out: dict[str, float] = {}
    loose: dict[str, float] = {}
    for r in cells.somas:
        nin, nvn, nvp = cells.nodes[r.element][:3]
        out[flat(nin)] = v_in[r.element]
        r32 = ratio(r, "m3", "m2", n_ut, "p")
        out[flat(nvp)] = float(np.interp(v_eff[r.element], t.v_in_v, t.soma["vp"])) + PMOS_DVT_SIGN * r.dvt_v.get("m2", 0.0) \
            + n_ut * float(np.log(r.bf.get("m2", 1.0)))
        out[flat(nvn)] = float(np.interp(v_eff[r.element] + n_ut * np.log(r32), t.v_in_v, t.soma["vn"])) \
            + r.dvt_v.get("m4", 0.0) - n_ut * float(np.log(r.bf.get("m4", 1.0)))
    for k in LEVELS:
        group = [s for s in cells.synapses if s.level == k]
        if not group:
            continue
        pre = np.array([v_eff[s.pre] for s in group])
        post = np.array([v_in[soma_of_in[cells.nodes[s.element][2]].element] for s in group])
        for n in SYNAPSE_NODES:
            values = _bilinear(t.nodes[k][n], pre, post)
            held = n == ("ps" if k > 0 else "ns") or (n[0] == "c" and abs(k) & int(n[1:]))
            if free_drains and n[0] == "c" and not held:  # a disabled bit's drain: left free (`Prediction`)
                continue
            for s, v in zip(group, values):
                (out if held else loose)[f"xdut.x{spice_name(s.element)}.{n}"] = float(v)
    return Prediction(out, loose)


def _branch_ratio(syn: CellRecord, pre: CellRecord, n_ut_v: float) -> float:
    """A synapse's current over its nominal one, from its and its pre soma's mismatch (`sim.chip`)."""
    bits = [m for m in (4, 2, 1) if abs(syn.level) & m]
    if syn.level > 0:
        return sum(m * ratio(syn, f"mp{m}", "m2", n_ut_v, "p", pre) for m in bits) / sum(bits)
    return ratio(pre, "m3", "m2", n_ut_v, "p") * sum(m * ratio(syn, f"mn{m}", "m4", n_ut_v, "n", pre)
                                                     for m in bits) / sum(bits)


@dataclass(frozen=True, slots=True)
class Release:
    """How the clamps let go of a seeded deck (module docstring, "Release"): the pull on held and
    on loose nodes (siemens, as expressions of V(knob)) and the ``.dc`` sweep of the knob.

    ``steps == 0`` (`SNAP`): pull V(knob) on every node, V(knob) from ``start_s`` to 0 in one step.
    Otherwise V(knob) = N … 0 with N = 2·steps + 1: at N every node is pulled by ``start_s``; the
    loose pull falls by ``decades`` per step to ``start_s``·10^−decades·(steps−1), then to 0 at
    steps + 1, where every held node is still pulled by ``start_s``; the held pull then falls by
    ``decades`` per step to ``start_s``·10^−decades·steps at 1, and to 0 at 0.
    """

    steps: int = 0
    decades: float = 1.1
    start_s: float = CLAMP_START_S
    free_drains: bool = True  # leave disabled bits' drains unclamped (`Prediction`)

    @property
    def points(self) -> int:
        """Sweep points per sample; the last is the unmodified circuit."""
        return 2 if self.steps == 0 else 2 * self.steps + 2

    def sweep(self) -> tuple[float, float, float]:
        """``.dc Vknob`` start, stop, step."""
        if self.steps == 0:
            return self.start_s, 0.0, -self.start_s
        return float(2 * self.steps + 1), 0.0, -1.0

    def pull(self, held: bool) -> str:
        """The pull (S) on a held or a loose node, as an expression of V(knob)."""
        if self.steps == 0:
            return f"V({KNOB})"
        g, rate, n, s = fmt(self.start_s), fmt(-self.decades * np.log(10)), 2 * self.steps + 1, self.steps
        if held:
            return (f"(V({KNOB}) > {s + 0.5} ? {g} : (V({KNOB}) > 0.5 ? {g}*exp({rate}*({s + 1}-V({KNOB}))) : 0))")
        return f"(V({KNOB}) > {s + 1.5} ? {g}*exp({rate}*({n}-V({KNOB}))) : 0)"


SNAP = Release()
PROBE = Release(free_drains=False)  # a measurement's single-bit probe decks (`sim.measure.lab`)
GRADUAL = Release(steps=8, free_drains=False)  # the first fallback of a failed seeded run (`sim.spice_commands`)


def clamp_deck(deck: Deck, predictions: Sequence[Prediction], release: Release = SNAP) -> Deck:
    """``deck`` with every predicted node pulled towards its prediction, let go as ``release`` says:
    the last point (V(knob) = 0) is the unmodified circuit. Replaces ``.op``. Several predictions
    (a `batch_deck`) are `indexed` by V(idx), swept outside the knob."""
    deck.elements.append(vsource(KNOB, KNOB, GROUND, 0.0))
    index = INDEX if len(predictions) > 1 else ""
    if index:
        deck.elements.append(vsource(INDEX, INDEX, GROUND, 0.0))
    held = set(predictions[0].held)
    targets = [{**p.held, **p.loose} for p in predictions]
    pulls = {True: release.pull(True), False: release.pull(False)}
    for i, node in enumerate(targets[0]):
        values = [round(t[node], 6) for t in targets]
        deck.elements.append(clamp_source(f"cl{i}", node, KNOB, values if index else values[0], index,
                                          pulls[node in held]))
    deck.analyses = [a for a in deck.analyses if a.strip() != ".op"]
    deck.dc(KNOB, *release.sweep())
    if index:
        deck.analyses[-1] += f" V{INDEX} 0 {len(predictions) - 1} 1"
    return deck


def seed_deck(deck: Deck, nl: Netlist, tables: CellTables, sample: Mapping[str, np.ndarray],
              release: Release = SNAP) -> Deck:
    """`clamp_deck` with this sample's `predict`ion: a one-sample deck of ``nl`` that solves in a few
    Newton iterations; read its outputs at the last sweep point (`last_point`)."""
    return clamp_deck(deck, [predict(nl, tables, sample, release.free_drains)], release)


def batch_deck(nl: Netlist, tables: CellTables, samples: Sequence[Mapping[str, np.ndarray]],
               title: str = "kelvin batch", release: Release = SNAP) -> Deck:
    """One deck that solves several samples, each from its own prediction, on one parsed circuit.

    ngspice spends more time reading a 12,000-device deck (subcircuit and parameter expansion,
    parsing, matrix set-up: some 1.5 s for the digits network) than solving it from a seed (about
    20 Newton iterations). Here sample i's inputs and clamp targets are `indexed` by V(idx) = i and

        .dc Vknob start 0 −start  Vidx 0 B−1 1

    sweeps the clamp (inner) for each sample (outer): every sample gets the clamped point, then the
    released one, which is the unmodified circuit with sample i's inputs (read with `batch_points`).
    Each clamped point starts from the previous sample's solution, pulled to this one's prediction,
    so it converges as a single seeded deck does. Measured on digits 64-16-10, compact chip 0, 8
    samples: outputs equal to the one-sample decks' within 2e-10 relative, ~19 iterations per sample.
    """
    if len(samples) < 2:
        raise ValueError("batch_deck: a batch has at least two samples (one sample: seed_deck)")
    deck = nl.deck(title=title, stimulus=nl.batch_stimulus(samples, INDEX))
    return clamp_deck(deck, [predict(nl, tables, s, release.free_drains) for s in samples], release)


def batches(n: int, workers: int, most: int = BATCH_MAX) -> list[list[int]]:
    """Samples 0 … n−1 in contiguous groups for `batch_deck`: a multiple of ``workers`` groups (all
    busy to the end), each of at most ``most`` samples (a failed batch is rerun in halves)."""
    workers = max(1, workers)
    jobs = min(n, workers * -(-n // (workers * most))) if n else 0
    return [[int(i) for i in a] for a in np.array_split(np.arange(n), jobs)] if jobs else []


def batch_points(vectors: Mapping[str, np.ndarray], samples: int, release: Release = SNAP) -> list[dict[str, np.ndarray]]:
    """Per sample of a `batch_deck` run, every vector at that sample's released point (V(knob) = 0)."""
    out: list[dict[str, np.ndarray]] = [{} for _ in range(samples)]
    m = release.points
    for k, v in vectors.items():
        v = np.asarray(v).reshape(-1)
        if v.size != m * samples:
            raise ValueError(f"vector {k!r} has {v.size} points, not the batch's {m * samples}")
        for i in range(samples):
            out[i][k] = v[m * i + m - 1: m * i + m]
    return out


def last_point(vectors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every vector at its last point: a seeded deck's unmodified circuit (an ``.op``'s only point)."""
    return {k: np.asarray(v).reshape(-1)[-1:] for k, v in vectors.items()}
