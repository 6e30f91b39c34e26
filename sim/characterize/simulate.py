"""Simulating planned characterization sweeps with resume.

`simulate_sweeps` skips every job whose result is already stored (`store.KindStore`) and
saves results batch by batch, so an interrupted run (Ctrl-C, a killed process) resumes
where it stopped and loses at most one batch. (Plans: `sweeps`; files: `store`.)
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path

from tqdm import tqdm

from circuits.errors import KelvinError, ParameterError
from sim.characterize.store import KindStore, provenance
from sim.characterize.sweeps import Sweep
from sim.spice import run_jobs

_log = logging.getLogger(__name__)

DEFAULT_BATCH = 64


class CharacterizationError(KelvinError):
    """Characterization jobs failed in ngspice (what was simulated is kept)."""


def simulate_sweeps(sweeps: Sequence[Sweep], outdir: Path, *, workers: int | None = None,
                    executor: Executor | None = None, progress: bool = True, max_jobs: int | None = None,
                    batch: int = DEFAULT_BATCH) -> list[dict]:
    """Simulate every job not stored yet under ``outdir``, saving batch by batch; per-kind counts.

    ``max_jobs`` stops after that many new simulations (a budget; the next run continues).
    Raises CharacterizationError after saving everything that succeeded if any job failed.
    """
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
