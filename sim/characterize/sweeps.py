"""Sweep and Monte Carlo jobs for one primitive kind, and running them with resume.

A characterization of a kind is one bench (`benches`) evaluated on the nominal circuit and on
N Monte Carlo chip instances. Instance i draws its devices from the integer seed

    instance_seed(seed, i) = SeedSequence([seed, i]).generate_state(1)[0]

so any instance can be re-simulated alone, in any order, on any machine. The sweep points
come from SeedSequence([seed, POINTS_KEY]) and are the same for every instance.

`simulate_sweeps` skips every job whose result is already stored (`store.KindStore`) and
saves results batch by batch, so an interrupted run (Ctrl-C, a killed process) resumes
where it stopped and loses at most one batch.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from circuits.errors import KelvinError, ParameterError
from sim.characterize.benches import BENCHES, Bench, bench_for
from sim.spice import SimJob, run_jobs

_log = logging.getLogger(__name__)

NOMINAL = -1  # the instance index of the nominal (mismatch-free) circuit
POINTS_KEY = 2**32 - 1  # SeedSequence word of the sweep points (instance indices stay below it)
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_BATCH = 64


class CharacterizationError(KelvinError):
    """Characterization jobs failed in ngspice (what was simulated is kept)."""


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
                             f"parameters of family {bench.family().name} ({kind}); use more points")
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


def simulate_sweeps(sweeps: Sequence[Sweep], outdir: Path, *, workers: int | None = None,
                    executor: Executor | None = None, progress: bool = True, max_jobs: int | None = None,
                    batch: int = DEFAULT_BATCH) -> list[dict]:
    """Simulate every job not stored yet under ``outdir``, saving batch by batch; per-kind counts.

    ``max_jobs`` stops after that many new simulations (a budget; the next run continues).
    Raises CharacterizationError after saving everything that succeeded if any job failed.
    """
    from sim.characterize.store import KindStore, provenance

    if batch < 1:
        raise ParameterError(f"batch: must be >= 1, got {batch}")
    prov = provenance()
    stores = {s.kind: KindStore.open(outdir, s, prov) for s in sweeps}
    pending = [pj for s in sweeps for pj in s.jobs if not stores[s.kind].has(pj)]
    counts = {s.kind: {"kind": s.kind, "dir": str(stores[s.kind].path), "jobs": len(s.jobs),
                       "simulated": 0, "reused": len(s.jobs), "failed": 0} for s in sweeps}
    for pj in pending:
        counts[pj.kind]["reused"] -= 1
    todo = pending if max_jobs is None else pending[:max(0, max_jobs)]
    _log.info("characterize: %d jobs, %d stored, %d to simulate", sum(len(s.jobs) for s in sweeps),
              sum(c["reused"] for c in counts.values()), len(todo))
    failures: list[str] = []
    with tqdm(total=len(todo), unit="sim", desc="characterize", file=sys.stderr, disable=not progress) as bar:
        for start in range(0, len(todo), batch):
            part = todo[start:start + batch]
            results = run_jobs([pj.job for pj in part], workers=workers, executor=executor, progress=False)
            for pj, res in zip(part, results, strict=True):
                if res.ok:
                    try:
                        y = stores[pj.kind].sweep.bench.read(res.vectors)
                    except (KeyError, ValueError, IndexError) as exc:
                        failures.append(f"{pj.job.name}: unreadable output ({exc})")
                        counts[pj.kind]["failed"] += 1
                        continue
                    stores[pj.kind].save(pj, y)
                    counts[pj.kind]["simulated"] += 1
                else:
                    failures.append(f"{pj.job.name}: {res.error}")
                    counts[pj.kind]["failed"] += 1
            bar.update(len(part))
    for c in counts.values():
        c["remaining"] = c["jobs"] - c["reused"] - c["simulated"]
    if failures:
        shown = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
        raise CharacterizationError(f"{len(failures)} characterization job(s) failed in ngspice ({shown}); "
                                    f"the other results are saved under {outdir} and a re-run simulates only "
                                    "the missing jobs")
    return list(counts.values())
