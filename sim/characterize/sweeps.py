"""Sweep and Monte Carlo jobs for one primitive kind, and running them with resume.

A characterization of a kind is one bench (`benches`) evaluated on the nominal circuit and on
N Monte Carlo chip instances. Instance i draws its devices from the integer seed

    instance_seed(seed, i) = SeedSequence([seed, i]).generate_state(1)[0]

so any instance can be re-simulated alone, in any order, on any machine. The sweep points
come from SeedSequence([seed, POINTS_KEY]) and are the same for every instance.

Running them with resume is `simulate.simulate_sweeps` (it needs `store`, which needs these plans).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from circuits.errors import ParameterError
from sim.characterize.bench_registry import BENCHES, bench_for
from sim.characterize.benches import Bench
from sim.spice import SimJob

_log = logging.getLogger(__name__)

NOMINAL = -1  # the instance index of the nominal (mismatch-free) circuit
POINTS_KEY = 2**32 - 1  # SeedSequence word of the sweep points (instance indices stay below it)
DEFAULT_TIMEOUT_S = 120.0


def instance_seed(seed: int, instance: int) -> int:
    """The mismatch seed of Monte Carlo instance ``instance`` of a characterization seeded ``seed``."""
    return int(np.random.SeedSequence([seed, instance]).generate_state(1)[0])


def chunk_name(instance: int) -> str:
    """File stem of one job's stored result."""
    return "nominal" if instance == NOMINAL else f"instance_{instance:04d}"


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """One ngspice job of a characterization: a chip instance of a kind over the whole sweep."""

    kind: str
    instance: int
    instance_seed: int | None
    job: SimJob
    netlist_sha256: str

    @property
    def chunk(self) -> str:
        return chunk_name(self.instance)


@dataclass(frozen=True, slots=True)
class Sweep:
    """A kind's bench and its jobs: the nominal circuit first, then instances 0..N-1."""

    kind: str
    seed: int
    instances: int
    bench: Bench
    jobs: tuple[PlannedJob, ...]


def _points_needed(kind: str, n_params: int, seed: int, points: int) -> int:
    """The smallest sweep that holds in n_params + 2 points and holds out one (the rule `plan` checks)."""
    for n in range(max(points, 2) + 1, max(points, 2) + 1000):
        bench = bench_for(kind, n, np.random.default_rng(np.random.SeedSequence([int(seed), POINTS_KEY])))
        if np.count_nonzero(~bench.held_out) >= n_params + 2 and np.any(bench.held_out):
            return n
    return 2 * (n_params + 2)


def plan(kind: str, *, instances: int, points: int, seed: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> Sweep:
    """Build the bench and the nominal + Monte Carlo jobs of ``kind``."""
    if not (isinstance(instances, int) and instances >= 1):
        raise ParameterError(f"instances: need at least 1 Monte Carlo instance, got {instances!r}")
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise ParameterError(f"seed: must be an integer >= 0, got {seed!r}")
    bench = bench_for(kind, points, np.random.default_rng(np.random.SeedSequence([int(seed), POINTS_KEY])))
    n_params = len(bench.family().parameters())
    held_in = int(np.count_nonzero(~bench.held_out))
    if held_in < n_params + 2 or not np.any(bench.held_out):
        raise ParameterError(f"points: {points} sweep points give {held_in} held-in points for the {n_params} "
                             f"parameters of family {bench.family().name} ({kind}); use at least "
                             f"{_points_needed(kind, n_params, seed, points)} points")
    jobs = []
    for i in (NOMINAL, *range(instances)):
        s = None if i == NOMINAL else instance_seed(int(seed), i)
        text = bench.deck(s).render()
        name = f"{kind}/{chunk_name(i)}"
        jobs.append(PlannedJob(kind, i, s, SimJob(name, text, timeout_s), hashlib.sha256(text.encode()).hexdigest()))
    return Sweep(kind, int(seed), instances, bench, tuple(jobs))


def resolve_kinds(kinds: Sequence[str] | None) -> list[str]:
    """The kinds to characterize: all that have a bench for None/empty or ``["all"]``."""
    if not kinds or list(kinds) == ["all"]:
        return list(BENCHES)
    unknown = [k for k in kinds if k not in BENCHES]
    if unknown:
        raise ParameterError(f"characterize: no characterization for {', '.join(unknown)}; "
                             f"kinds: {', '.join(BENCHES)}")
    return list(dict.fromkeys(kinds))
