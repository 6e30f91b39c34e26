"""Measure one chip instance in ngspice the way a lab measures silicon (Binas et al. 2016, Fig. 1 b).

The lab may only program the synapses' digital levels, drive the network's inputs and read its
outputs and the soma currents the chip exposes (a test multiplexer onto each soma's ``vp`` line,
here the current of the soma's M2 diode). It never reads a mismatch draw.

Experiment design (`Plan`). Every synapse of a test configuration is programmed to one bit of one
sign, ``k ∈ {±1, ±2, ±4}`` dealt from its own shuffled deck (`_balanced_levels`, so each sign and bit
of each synapse is programmed about equally often), with every row's bias synapse at a random
single-bit level too: one DC operating point then gives, for every exposed soma, one linear equation in the
row's per-sign, per-bit mirror factors and its columns' factors (the model `sim.measure.fit` fits).
Random levels make every row's equation a different combination of the column factors, so a few
dozen operating points identify a whole bank; rectified banks get mostly positive levels and a
positive bias so that their somas conduct. Inputs are uniform, scaled so that a row sums to about
two units (the operating range of trained networks), with a per-probe amplitude spread.

Sparse configurations (``density`` < 1): each synapse is programmed in a fraction of the
configurations and left at level 0 in the others; every bank programs about as many synapses per
row as the widest one does at ``density`` (`bank_density`). A reading then involves a handful of synapses
per row instead of all of them, so it says far more about each one: on the digits chip (64-16-10,
compact, naive weights, whole test set) 32 configurations × 6 operating points at density 0.15 bring
the measured model to 1.3 % FS RMS of the draw-based model on chip 0 (2.2 % on chip 2; 48
configurations, the `kelvin measure` default: 1.5 %), where 8 dense configurations × 48 points
(384 simulations) reach 2.2 % and the former 2 × 12 dense plan 3.2 % on chip 0. Inputs are scaled
up with the sparsity, so rows still sum to about two units.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from tqdm import tqdm

from circuits.current import SynapseArray
from circuits.errors import ParameterError, UnsupportedError
from circuits.spice.current_cells import CellSizing
from compiler.ir import PrimitiveNode
from compiler.netlist import Netlist, emit_netlist
from compiler.pipeline import Compiled
from sim.engine.chip_map import BITS
from sim.measure.data import Measurements

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Plan:
    """How many configurations and operating points, and how they are drawn."""

    configs: int = 2
    probes_per_config: int = 12
    seed: int = 0
    negative_fraction: float = 0.3  # of the levels in a rectified bank (a signed bank: one half)
    row_sum_units: float = 2.0
    density: float = 1.0  # fraction of the widest bank's synapses programmed (non-zero) in each configuration

    def __post_init__(self) -> None:
        if self.configs < 1 or self.probes_per_config < 1:
            raise ParameterError(f"measurement plan: need >= 1 configuration and probe, got {self.configs}, "
                                 f"{self.probes_per_config}")
        if not 0 < self.density <= 1:
            raise ParameterError(f"measurement plan: density is a fraction in (0, 1], got {self.density}")

    @property
    def probes(self) -> int:
        return self.configs * self.probes_per_config


@dataclass(frozen=True, slots=True)
class Bank:
    """One synapse bank as the lab sees it: its name, shape, what feeds it and whether it rectifies."""

    name: str
    out: int
    inputs: int
    source: str  # "x" (the network input) or the feeding bank's name
    rectify: bool
    has_bias: bool

    @property
    def rows(self) -> int:
        return self.out if self.rectify else 2 * self.out


def banks_of(compiled: Compiled) -> list[Bank]:
    """The dense current-mode banks, in order; anything else is refused with the node's name."""
    g = compiled.graph
    if compiled.target.name != "current":
        raise UnsupportedError(f"measure: chip measurement needs a current-mode network, got target "
                               f"{compiled.target.name} (compile with --target current)")
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise UnsupportedError(f"measure: one network input and one output expected, the graph has "
                               f"{len(g.inputs)} and {len(g.outputs)}")
    producer: dict[str, str] = {g.inputs[0]: "x"}
    banks = []
    for node in g.topo():
        prim = getattr(node, "primitive", None)
        if not isinstance(node, PrimitiveNode) or not isinstance(prim, SynapseArray) or prim.weights.ndim != 2 \
                or node.copies != 1:
            raise UnsupportedError(f"measure: node {node.name!r} ({node.kind}) is not a dense synapse bank; "
                                   "chip measurement covers dense current-mode MLPs")
        src = producer.get(node.inputs[0])
        if src is None:
            raise UnsupportedError(f"measure: node {node.name!r} reads {node.inputs[0]!r}, which no bank produces")
        out, n_in = prim.weights.shape
        banks.append(Bank(node.name, out, n_in, src, prim.rectify, prim.bias is not None))
        producer[node.outputs[0]] = node.name
    for name in g.outputs:
        if producer.get(name) in (None, "x"):
            raise UnsupportedError(f"measure: graph output {name!r} is not a bank's output")
    return banks


ACTIVE_PER_ROW = 10  # programmed synapses per row in a sparse configuration
MAX_CONFIGS = 192  # a default plan's ceiling (five banks); --configs can ask for more
MAX_PROBES = 1280  # a default plan's ceiling on operating points (MNIST 196-50-10: ~17 min with 2 workers)
MIN_CONFIGS, MIN_PROBES = 48, 6  # every row's six per-sign, per-bit factors meet a programmed level
APPEARANCES = 20  # configurations that program each synapse (default_plan)
SPARSE_MAX_SYNAPSES = 20000  # digits 64-16-10: 1,184 synapses; MNIST 196-50-10: 10,300 (fit: ~3 min)


def sparse_density(compiled: Compiled) -> float:
    """The density that programs about ACTIVE_PER_ROW synapses per row of the widest bank (1: dense)."""
    return min(1.0, ACTIVE_PER_ROW / max(b.inputs for b in banks_of(compiled)))


def default_plan(compiled: Compiled, seed: int = 0, quick: bool = False) -> Plan:
    """Sparse configurations (`sparse_density`) that identify every synapse (`sim.measure.fit.
    refine_synapses`), up to SPARSE_MAX_SYNAPSES synapses, whose per-synapse fit grows with their
    number; above it, two dense configurations of 12 (``quick``: 8) points, which already take minutes.

    The budget follows from what must be identified. A synapse has six currents of its own (two
    signs × three bits) and meets one of them in each configuration that programs it, a fraction
    ``density`` of them: about APPEARANCES/density configurations let each of the six meet about
    three readings. Within a configuration a row's readings are linear in its programmed synapses
    (about ACTIVE_PER_ROW of them), so about as many operating points as that pin them. Measured
    (digits 64-16-10, chip 2, identified fraction of the first bank's synapse currents and measured
    model against the draw-based one, FS RMS):

    - compact mirrors: 48 × 6 (the former default) 34 %, 1.57 %; 128 × 10 91 %, 0.67 %;
    - minimum mirrors (3.8× compact's Pelgrom spread), chip 1: 128 × 10 with independent random
      levels at one density for every bank 92.6 % (second bank 80.7 %), 2.6 %; dealt levels
      (`_balanced_levels`) and as many programmed synapses per row in every bank (`bank_density`)
      99.9 % (second bank 100 %), 1.5 % (chips 0 and 2: 1.2 and 1.5 %). The measured model is then
      1.1 % FS RMS from ngspice on the aware network, the draw-based one 1.6-2.4 %: the largest row
      currents reach moderate inversion, where a mirror's ΔVt weighs less than its weak-inversion
      exp(ΔVt/n·U_T).

    Banks narrow enough that a dense configuration already involves few synapses per row (density
    1) still need MIN_CONFIGS: every row's per-sign, per-bit factors must each meet a programmed level
    (4-8-3 compact chips 1 and 2: 5.5 and 5.6 % FS RMS from the draw-based model with 2 × 12, 0.97
    and 0.72 % with 48 × 6). Deeper networks get that many per bank after the first: every reading
    measures all banks at once, but the output compounds each bank's fitted error (a trained
    64-24-16-10 compact chip 1: 48 × 6 left 1.84 % FS RMS, 96 × 6 1.27 %). At most MAX_CONFIGS
    configurations and MAX_PROBES operating points (MNIST 196-50-10: 128 × 10, about 0.8 s each
    with two workers); ``quick`` takes a quarter of the configurations, at least 16.
    """
    banks = banks_of(compiled)
    if sum(b.out * b.inputs for b in banks) > SPARSE_MAX_SYNAPSES:
        return Plan(configs=2, probes_per_config=8 if quick else 12, seed=seed)
    density = sparse_density(compiled)
    probes = max(MIN_PROBES, round(density * max(b.inputs for b in banks)))
    configs = max(MIN_CONFIGS, int(np.ceil(APPEARANCES / density))) * max(1, len(banks) - 1)
    configs = min(configs, MAX_CONFIGS, MAX_PROBES // probes)
    return Plan(configs=max(MIN_CONFIGS // 3, configs // 4) if quick else configs, probes_per_config=probes, seed=seed,
                density=density)


def design(compiled: Compiled, plan: Plan, w_unit: float = 0.25) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray,
                                                    np.ndarray]:
    """Levels [K, out, in] and bias levels [K, out] per bank, the config of each probe, the inputs [P, n_in]
    (``w_unit``: the level step in model units, which sets the input range)."""
    rng = np.random.default_rng(plan.seed)
    banks = banks_of(compiled)
    levels, bias = {}, {}
    for b in banks:
        appearances = int(round(bank_density(plan, banks, b) * plan.configs))
        if appearances < 1:
            raise ParameterError(f"measurement plan: --density {plan.density:g} programs no synapse of bank "
                                 f"{b.name!r} ({b.out} × {b.inputs}) in {plan.configs} configuration(s); raise "
                                 "--density or --configs")
        levels[b.name] = _balanced_levels(rng, plan.configs, (b.out, b.inputs), appearances,
                                          plan.negative_fraction if b.rectify else 0.5)
        if b.has_bias:
            bmag = rng.choice(BITS, size=(plan.configs, b.out))
            bsign = np.ones_like(bmag) if b.rectify else np.where(rng.random(bmag.shape) < 0.5, -1, 1)
            bias[b.name] = bmag * bsign
        else:
            bias[b.name] = np.zeros((plan.configs, b.out), np.int64)
    first = banks[0]
    mean_level = float(np.mean(BITS)) * (1 - 2 * plan.negative_fraction) if first.rectify else float(np.mean(BITS))
    per_row = first.inputs * bank_density(plan, banks, first)
    x_hi = min(1.0, 2 * plan.row_sum_units / max(per_row * w_unit * mean_level, 1e-9))
    config = np.repeat(np.arange(plan.configs), plan.probes_per_config)
    amp = rng.uniform(0.5, 1.5, size=(plan.probes, 1))
    x = np.clip(rng.uniform(0.0, x_hi, size=(plan.probes, first.inputs)) * amp, 0.0, 1.0)
    return levels, bias, config, x


def bank_density(plan: Plan, banks: list[Bank], bank: Bank) -> float:
    """The fraction of ``bank``'s synapses a configuration programs: as many per row as the widest
    bank's ``plan.density`` gives (all, in a bank with fewer inputs). A narrow bank at the widest one's
    density had a couple of synapses per row in a configuration, and its subtractive currents, seen
    only while the row conducts, stayed at their prior (the digits chip's 16-input bank at density
    10/64: 87 % of its currents identified, the NMOS ones to 11 % RMS)."""
    widest = max(b.inputs for b in banks)
    return min(1.0, plan.density * widest / bank.inputs)


def _balanced_levels(rng: np.random.Generator, configs: int, shape: tuple[int, int], appearances: int,
                     negative_fraction: float) -> np.ndarray:
    """Levels [configs, *shape]: each synapse programmed in ``appearances`` configurations drawn at
    random, at single-bit levels dealt in turn from its own shuffled deck, which holds every bit at
    each sign in the proportion ``negative_fraction`` (rounded to a ratio of small integers: 0.3 →
    one negative per two positives). Every sign and bit of a synapse then meets about
    appearances/deck readings: independent draws left 12-14 % of the negative currents of the digits
    chip's first bank unprogrammed, and so unidentified, in the default plan's 20 appearances."""
    ratio = Fraction(negative_fraction).limit_denominator(6)
    n_neg, n_all = ratio.numerator, ratio.denominator
    deck = np.array([(-1 if k < n_neg else 1) * b for b in BITS for k in range(n_all)], np.int64)
    n_syn = shape[0] * shape[1]
    when = np.argsort(rng.random((configs, n_syn)), axis=0)[:appearances]  # [appearances, n_syn] configurations
    order = np.argsort(rng.random((n_syn, len(deck))), axis=1)  # each synapse's shuffled deck
    turn = (rng.integers(0, len(deck), n_syn)[None, :] + np.arange(appearances)[:, None]) % len(deck)
    out = np.zeros((configs, n_syn), np.int64)
    out[when, np.arange(n_syn)[None, :]] = deck[order[np.arange(n_syn)[None, :], turn]]
    return out.reshape(configs, *shape)


def programmed(compiled: Compiled, levels: dict[str, np.ndarray], bias: dict[str, np.ndarray], k: int,
               w_unit: float) -> Compiled:
    """The network with configuration ``k`` programmed: weights k·w_unit (soma gains stay 1)."""
    g = compiled.graph.copy()
    for node in g.nodes:
        if node.name in levels:
            prim = node.primitive
            b = None if prim.bias is None else (bias[node.name][k] * w_unit).astype(np.float32)
            node.primitive = prim.with_parameters(weights=(levels[node.name][k] * w_unit).astype(np.float32), bias=b)
    return dataclasses.replace(compiled, graph=g)


def soma_probes(nl: Netlist, banks: list[Bank]) -> dict[str, list[str]]:
    """Per bank, the ngspice vectors of its somas' M2 currents (positive rows, then negated twins)."""
    rows: dict[tuple[str, int, int], str] = {}
    for c in nl.layout:
        if getattr(c, "kind", "") == "soma" and c.role == "row":
            rows[(c.node, c.row, c.side)] = f"@m.xdut.x{c.element}.mm2[id]"
    out = {}
    for b in banks:
        sides = (1,) if b.rectify else (1, -1)
        try:
            out[b.name] = [rows[(b.name, r, s)] for s in sides for r in range(b.out)]
        except KeyError as exc:
            raise UnsupportedError(f"measure: bank {b.name!r} has no soma for {exc} in the netlist") from exc
    return out


def measure_chip(compiled: Compiled, chip_seed: int | None, *, sizing: str = "compact", scale: float | None = None,
                 plan: Plan | None = None, workers: int | None = None, timeout_s: float = 600.0,
                 progress: bool = True) -> Measurements:
    """Run ``plan``'s experiments on chip ``chip_seed`` in ngspice; return what a lab would have recorded."""
    from sim.spice import seed as seeding
    from sim.spice_commands import (
        default_scale,
        netlist_options,
        run_network_spice_saving,
    )

    plan = plan or Plan()
    scale = scale or default_scale("current")
    banks = banks_of(compiled)
    w_unit = CellSizing.preset(sizing).w_unit
    levels, bias, config, x = design(compiled, plan, w_unit)
    soma = {b.name: np.full((plan.probes, b.rows), np.nan) for b in banks}
    y = []
    for k in tqdm(range(plan.configs), desc="measure", unit="config", file=sys.stderr, disable=not progress):
        chip = programmed(compiled, levels, bias, k, w_unit)
        nl = emit_netlist(chip.graph, chip.target, netlist_options("current", scale, 10**9, chip_seed, sizing))
        probes = soma_probes(nl, banks)
        idx = np.flatnonzero(config == k)
        saves = [v for b in banks for v in probes[b.name]]
        # a probe deck's sparse rows let go in one step, their disabled drains clamped (`seed.PROBE`): at
        # minimum sizing 0.6 s per 10 probes against 2.0 s gradually; the few that fail are rerun gradually
        outs, extra = run_network_spice_saving(chip, {compiled.graph.inputs[0]: x[idx]}, scale, extra_saves=saves,
                                               workers=workers, timeout_s=timeout_s, progress=False,
                                               chip_seed=chip_seed, sizing=sizing, release=seeding.PROBE)
        y.append(np.concatenate([outs[o].reshape(len(idx), -1) for o in compiled.graph.outputs], axis=1))
        for b in banks:
            soma[b.name][idx] = np.abs(np.stack([extra[v] for v in probes[b.name]], axis=1)) / scale
    ys = np.concatenate(y)
    log.info("measured chip %s: %d configurations x %d operating points", chip_seed, plan.configs,
             plan.probes_per_config)
    return Measurements(config, x, ys, levels, bias, soma, tuple(b.name for b in banks),
                        {b.name: b.source for b in banks}, w_unit, scale,
                        {"sizing": sizing, "source": f"ngspice, chip seed {chip_seed}", "simulations": plan.probes,
                         "outputs": list(compiled.graph.outputs)})
