"""Transient settling time and energy per inference of a current-mode chip, against a digital 45 nm baseline.

One ngspice transient of the whole chip netlist per sample (issue 9, step 3.7):

- **Stimulus.** Every input is a PWL current source held at its start value until ``t_step_s``,
  then ramped linearly over ``t_rise_s`` to the sample's value; ngspice's initial operating point
  is the start state. ``start="idle"`` starts from every input at ``baseline`` (model units,
  default 0: the chip at rest, which converges); ``start="previous"`` from the previous sample's
  inputs (the last one's for sample 0), as when a chip classifies a stream. Time below is measured
  from ``t_step_s`` (t = 0: the step starts).
- **Window.** The transient runs ``window_s`` past the step. A run counts as settled when the
  outputs' 1 % settling time is at most half the window (the last half stays in band); otherwise
  the sample is rerun with a 4× longer window (up to ``max_extensions`` times), so the stop time is
  measured from the circuit, never assumed. Final values y_f are the outputs at the window's end.
- **Settling time** t_s: the last time any output i lies outside its band
  |y_i(t) − y_f,i| ≤ tol·max(|y_f,i|, max_j |y_f,j| / 10) (tol = 1 %; the floor keeps outputs that settle
  near zero from demanding an absolute accuracy no measurement has).
- **Argmax time** t_a: the start of the last interval on which argmax y(t) = argmax y_f. If the start
  state already had the final argmax (``argmax_changed`` False) no decision is observed: t_a and the
  energy per inference are NaN for that sample and left out of the medians.
- **Energy per inference** (Binas et al. 2016): E = ∫₀^{t_a} Σ_supplies V·I dt, the power the VDD
  source delivers (−V·I of its branch), integrated by trapezoids from the step until the argmax stops
  changing; ``energy_to_settle_j`` integrates to t_s instead. ``static_power_w`` is the power at the
  window's end (settled), ``idle_power_w`` before the step. The input sources' own power is not counted.
- **Efficiency.** MACs = Σ over linear layers of in·out (per copy and reuse); Binas et al. count one
  op per MAC (their ≈ 7 TOp/J is 7·10¹² MAC/J, SCIENCE.md); ``ops_per_j`` uses 2 ops per MAC (IBM's TOPS/W).
- **Digital reference.** The same MACs at Horowitz's 45 nm energies (ISSCC 2014, `HOROWITZ_45NM_PJ`):
  one multiply plus one add per MAC.

Accuracy: ``TRAN_OPTIONS`` (reltol 1e-4; a tighter abstol 1 fA / chgtol 1e-18 C took 1.4× the time steps and
moved no output by 1e-3 units) with Gear integration (``INTEGRATION``); time steps are at most
window/``points``. The transient's end state matches the ``.op`` solution to 1e-5 units on a 6-5-3 MLP
(tests/sim/test_energy.py). With the trapezoidal default it did not: outputs alternated by up to 1.5 % from
one time step to the next once steps grew to tens of µs, and the end state moved ±0.4 % with the window.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from circuits.base import LinearBank
from circuits.errors import InputError, ParameterError
from circuits.spice.emit import GROUND
from circuits.spice.netlist import Deck, Element, fmt, spice_name
from compiler.ir import Graph, PrimitiveNode
from compiler.netlist import Netlist, emit_netlist
from compiler.pipeline import Compiled
from sim.spice import SimJob, run_jobs
from sim.spice.errors import SimulationError

log = logging.getLogger(__name__)

TRAN_OPTIONS: Mapping[str, float] = MappingProxyType({"reltol": 1e-4})
"""ngspice options of the transient (replacing the .op deck's reltol 1e-6, which costs time for no change)."""
INTEGRATION = "method=gear"
"""Gear (BDF) integration: the default trapezoidal rule rings point to point on these stiff nodes once the
time step grows (outputs alternating ±1 % every step of a 64 ms window, never settling)."""

HOROWITZ_45NM_PJ: Mapping[str, float] = MappingProxyType({
    "int8_add": 0.03, "int32_add": 0.1, "int8_mult": 0.2, "int32_mult": 3.1,
    "fp16_add": 0.4, "fp16_mult": 1.1, "fp32_add": 0.9, "fp32_mult": 3.7})
"""Energy per operation in pJ, 45 nm (Horowitz, ISSCC 2014), as SCIENCE.md states it."""

BINAS_OPS_PER_J = 7e12  # Binas et al. 2016, simulated; one op = one MAC
OPS_PER_MAC = 2         # multiply + add, the TOPS/W convention


@dataclass(frozen=True, slots=True)
class DigitalReference:
    """The network's MACs on 45 nm digital logic: one multiply and one add per MAC (Horowitz 2014)."""

    macs: int
    j_per_mac: Mapping[str, float]  # format ("int8", "int32", "fp16", "fp32") -> J per MAC
    table_pj: Mapping[str, float] = field(default_factory=lambda: HOROWITZ_45NM_PJ)
    source: str = "Horowitz, ISSCC 2014, 45 nm: energy of one mult + one add per MAC"

    @property
    def energy_j(self) -> dict[str, float]:
        """J per inference, by number format."""
        return {k: v * self.macs for k, v in self.j_per_mac.items()}

    @property
    def macs_per_j(self) -> dict[str, float]:
        return {k: 1.0 / v for k, v in self.j_per_mac.items()}


def digital_reference(macs: int) -> DigitalReference:
    """`DigitalReference` for ``macs`` multiply-accumulates."""
    formats = ("int8", "int32", "fp16", "fp32")
    per = {f: (HOROWITZ_45NM_PJ[f"{f}_mult"] + HOROWITZ_45NM_PJ[f"{f}_add"]) * 1e-12 for f in formats}
    return DigitalReference(int(macs), MappingProxyType(per))


def count_macs(graph: Graph) -> int:
    """Multiply-accumulates per inference: Σ over linear banks of out·in, times copies and reuse."""
    total = 0
    for node in graph.topo():
        if isinstance(node, PrimitiveNode) and isinstance(node.primitive, LinearBank):
            total += int(np.asarray(node.primitive.weights).size) * node.copies * node.reuse
    return total


@dataclass(frozen=True, slots=True, eq=False)
class Waveform:
    """One sample's transient: time from the step (s), supply power (W), outputs (model units, [T, outputs])."""

    time_s: np.ndarray
    power_w: np.ndarray
    outputs: np.ndarray


@dataclass(frozen=True, slots=True, eq=False)
class Dynamics:
    """Per-sample settling and energy (arrays over samples), their medians and the efficiency figures."""

    settling_time_s: np.ndarray     # last time any output is outside its 1 % band
    argmax_time_s: np.ndarray       # time after which the argmax no longer changes
    argmax_changed: np.ndarray      # False: the start state's argmax was already the final one
    energy_j: np.ndarray            # ∫ V·I from the step to argmax_time_s (energy per inference)
    energy_to_settle_j: np.ndarray  # ∫ V·I from the step to settling_time_s
    static_power_w: np.ndarray      # supply power at the window's end (settled)
    idle_power_w: np.ndarray        # supply power before the step (the start state)
    window_s: np.ndarray            # simulated time after the step, as extended until settled
    wall_time_s: np.ndarray         # ngspice wall time of the final transient
    outputs: np.ndarray             # final outputs, model units [samples, outputs]
    macs: int
    digital: DigitalReference
    tolerance: float
    t_rise_s: float
    start: str                      # "idle" or "previous": the state each step starts from
    waveforms: tuple[Waveform, ...] = field(default=(), repr=False)

    @property
    def median_settling_time_s(self) -> float:
        return float(np.median(self.settling_time_s))

    @property
    def median_argmax_time_s(self) -> float:
        """Over the samples whose argmax changed (NaN if none did)."""
        return _nanmedian(self.argmax_time_s)

    @property
    def median_energy_j(self) -> float:
        """Energy per inference over the samples whose argmax changed (NaN if none did)."""
        return _nanmedian(self.energy_j)

    @property
    def median_energy_to_settle_j(self) -> float:
        return float(np.median(self.energy_to_settle_j))

    @property
    def median_static_power_w(self) -> float:
        return float(np.median(self.static_power_w))

    @property
    def macs_per_j(self) -> float:
        """MACs per joule at the median energy per inference (Binas' "ops" per joule)."""
        return self.macs / self.median_energy_j

    @property
    def ops_per_j(self) -> float:
        """2 ops per MAC (multiply + add)."""
        return OPS_PER_MAC * self.macs_per_j

    @property
    def macs_per_j_settled(self) -> float:
        """MACs per joule when an inference lasts until 1 % settling (a stricter reading)."""
        e = self.median_energy_to_settle_j
        return self.macs / e if e > 0 else float("inf")

    def summary(self) -> dict[str, object]:
        """Medians and figures of merit as plain numbers (SI units in the keys)."""
        return {"samples": len(self.settling_time_s), "macs": self.macs,
                "median_settling_time_s": self.median_settling_time_s,
                "median_argmax_time_s": self.median_argmax_time_s,
                "median_energy_j": self.median_energy_j,
                "median_energy_to_settle_j": self.median_energy_to_settle_j,
                "median_static_power_w": self.median_static_power_w,
                "median_idle_power_w": float(np.median(self.idle_power_w)),
                "macs_per_j": self.macs_per_j, "ops_per_j": self.ops_per_j,
                "macs_per_j_settled": self.macs_per_j_settled,
                "binas_ops_per_j (= MAC/J)": BINAS_OPS_PER_J,
                "digital_energy_j": self.digital.energy_j, "digital_macs_per_j": self.digital.macs_per_j,
                "argmax_changed": self.argmax_changed.tolist(), "window_s": self.window_s.tolist(),
                "wall_time_s": self.wall_time_s.tolist(), "tolerance": self.tolerance, "start": self.start}


def _nanmedian(a: np.ndarray) -> float:
    return float(np.nanmedian(a)) if np.any(np.isfinite(a)) else float("nan")


def step_deck(nl: Netlist, sample: dict[str, np.ndarray], start: dict[str, np.ndarray], *, window_s: float,
              t_step_s: float, t_rise_s: float, points: int = 500) -> Deck:
    """``nl``'s deck for one sample, every input a PWL step from ``start`` to ``sample`` at ``t_step_s``; ``.tran``."""
    if nl.signal != "current":
        raise ParameterError("step_deck: transient energy is measured on current-mode netlists (--target current)")
    deck = nl.deck(sample)
    stimulus = nl.stimulus(sample)
    deck.elements = [e for e in deck.elements if e not in stimulus]
    values, lows = (np.concatenate([np.asarray(s[k], np.float64).reshape(-1) for k in nl.input_ports]) * nl.scale
                    for s in (sample, start))
    t1 = t_step_s + t_rise_s
    for src, low, v in zip(stimulus, lows, values):  # same element (name, nodes), PWL instead of DC
        pwl = f"0 {fmt(low)} {fmt(t_step_s)} {fmt(low)} {fmt(t1)} {fmt(v)}"
        deck.elements.append(Element(src.letter, src.name, src.nodes, f"DC {fmt(low)} PWL({pwl})"))
    deck.analyses.clear()
    deck.options.update(TRAN_OPTIONS)
    deck.tran(window_s / points, t_step_s + window_s)
    deck.analyses.insert(0, f".options {INTEGRATION}")  # a keyword, which Deck.options (numbers) cannot hold
    deck.analyses.insert(0, ".save " + " ".join(_supply_vectors(nl, deck) + _output_vectors(nl)))
    return deck


def _supply_vectors(nl: Netlist, deck: Deck) -> list[str]:
    """Branch-current vectors of the supply sources (the V elements from a supply net to ground)."""
    by_net = {e.nodes[0]: e for e in deck.elements if e.letter == "V" and e.nodes[1] == GROUND}
    return [f"v{spice_name(by_net[net].name)}#branch" for net in nl.supplies.nets]


def _output_vectors(nl: Netlist) -> list[str]:
    return [f"vsense_{n}#branch" for nets in nl.output_ports.values() for n in nets]


def settling_time(time_s: np.ndarray, outputs: np.ndarray, tolerance: float = 0.01) -> float:
    """Last time any output is outside tol·max(|final|, max|final|/10) of its final value (0 if never)."""
    final = outputs[-1]
    band = tolerance * np.maximum(np.abs(final), np.abs(final).max() / 10)
    outside = np.flatnonzero(np.any(np.abs(outputs - final) > band, axis=1))
    return 0.0 if outside.size == 0 else max(0.0, float(time_s[min(outside[-1] + 1, len(time_s) - 1)]))


def argmax_time(time_s: np.ndarray, outputs: np.ndarray) -> tuple[float, bool]:
    """Start of the final run of constant argmax, and whether the argmax changed at all."""
    winner = np.argmax(outputs, axis=1)
    other = np.flatnonzero(winner != winner[-1])
    return (0.0, False) if other.size == 0 else (max(0.0, float(time_s[other[-1] + 1])), True)


def energy_between(time_s: np.ndarray, power_w: np.ndarray, t0_s: float, t1_s: float) -> float:
    """∫ power dt over [t0, t1] by trapezoids on the simulator's time points (linear in between)."""
    cumulative = np.concatenate([[0.0], np.cumsum(np.diff(time_s) * (power_w[1:] + power_w[:-1]) / 2)])
    return float(np.interp(t1_s, time_s, cumulative) - np.interp(t0_s, time_s, cumulative))


def _analyse(nl: Netlist, deck: Deck, vectors: dict[str, np.ndarray], t_step_s: float) -> Waveform:
    time = np.asarray(vectors["time"], np.float64)
    power = np.zeros_like(time)
    for name, volts in zip(_supply_vectors(nl, deck), nl.supplies.volts):
        power -= volts * np.asarray(vectors[name], np.float64)  # a delivering source's branch current is < 0
    outs = np.stack([np.asarray(vectors[k], np.float64) for k in _output_vectors(nl)], axis=1) / nl.scale
    return Waveform(time - t_step_s, power, outs)


def measure_dynamics(compiled: Compiled, x: np.ndarray, *, scale: float | None = None,
                     chip_seed: int | None = None, sizing: str = "default", window_s: float = 1e-3,
                     t_step_s: float = 1e-6, t_rise_s: float = 10e-9, start: str = "idle", baseline: float = 0.0,
                     tolerance: float = 0.01, points: int = 500, max_extensions: int = 3,
                     workers: int | None = None, timeout_s: float = 3600.0,
                     progress: bool = False) -> Dynamics:
    """Step each row of ``x`` (model units, [samples, ...] of the one graph input) onto the chip and
    measure settling and energy per inference in ngspice (see the module docstring for definitions)."""
    from sim.spice_commands import default_scale, netlist_options

    if compiled.target.name != "current":
        raise ParameterError(f"measure_dynamics: a current-mode model is needed, got target {compiled.target.name}")
    if start not in ("idle", "previous"):
        raise ParameterError(f"measure_dynamics: start is 'idle' or 'previous', got {start!r}")
    if len(compiled.graph.inputs) != 1:
        raise InputError(f"measure_dynamics: one graph input expected, the model has {len(compiled.graph.inputs)}")
    if not (0 < tolerance < 1 and window_s > 0 and t_step_s > 0 and 0 < t_rise_s < window_s):
        raise ParameterError("measure_dynamics: need 0 < tolerance < 1, window_s > 0, t_step_s > 0, "
                             f"0 < t_rise_s < window_s; got {tolerance}, {window_s}, {t_step_s}, {t_rise_s}")
    x = np.asarray(x, np.float64)
    if x.ndim < 1 or len(x) == 0:
        raise InputError("measure_dynamics: x needs at least one sample (rows on axis 0)")
    scale = default_scale("current") if scale is None else scale
    nl = emit_netlist(compiled.graph, compiled.target, netlist_options("current", scale, 10**9, chip_seed, sizing))
    name = compiled.graph.inputs[0]
    windows = [window_s] * len(x)
    done: dict[int, tuple[Waveform, float, float]] = {}
    pending = list(range(len(x)))
    for attempt in range(max_extensions + 1):
        decks = {i: step_deck(nl, {name: x[i]}, {name: x[i - 1] if start == "previous" else np.full_like(x[i], baseline)},
                              window_s=windows[i], t_step_s=t_step_s, t_rise_s=t_rise_s, points=points)
                 for i in pending}
        jobs = [SimJob(f"step_{i}_{windows[i]:.3g}s", decks[i].render(), timeout_s) for i in pending]
        results = run_jobs(jobs, workers=workers, progress=progress)
        retry = []
        for i, r in zip(pending, results):
            if not r.ok:
                raise SimulationError(f"measure_dynamics: sample {i}'s transient failed: {r.error}")
            wave = _analyse(nl, decks[i], r.vectors, t_step_s)
            t_s = settling_time(wave.time_s, wave.outputs, tolerance)
            done[i] = (wave, t_s, r.elapsed_s)
            if t_s > windows[i] / 2 and attempt < max_extensions:
                log.info("sample %d: not settled in %g s (t_s %g s); window x4", i, windows[i], t_s)
                windows[i] *= 4
                retry.append(i)
            elif t_s > windows[i] / 2:
                log.warning("sample %d: outputs still moving at the end of a %g s window", i, windows[i])
        pending = retry
        if not pending:
            break
    return _dynamics(nl, compiled.graph, [done[i] for i in range(len(x))], windows, tolerance, t_rise_s, start)


def _dynamics(nl: Netlist, graph: Graph, runs: list[tuple[Waveform, float, float]], windows: list[float],
              tolerance: float, t_rise_s: float, start: str) -> Dynamics:
    rows = []
    for wave, t_s, wall in runs:
        t_a, changed = argmax_time(wave.time_s, wave.outputs)
        t_a = t_a if changed else float("nan")
        rows.append((t_s, t_a, changed, energy_between(wave.time_s, wave.power_w, 0.0, t_a) if changed else t_a,
                     energy_between(wave.time_s, wave.power_w, 0.0, t_s), float(wave.power_w[-1]),
                     float(wave.power_w[0]), wall))
    cols = list(zip(*rows))
    macs = count_macs(graph)
    return Dynamics(np.array(cols[0]), np.array(cols[1]), np.array(cols[2], bool), np.array(cols[3]),
                    np.array(cols[4]), np.array(cols[5]), np.array(cols[6]), np.array(windows),
                    np.array(cols[7]), np.stack([w.outputs[-1] for w, _, _ in runs]), macs,
                    digital_reference(macs), tolerance, t_rise_s, start, tuple(w for w, _, _ in runs))
