"""Throughput of the ngspice runner: 200 small RC-ladder transients on 1 vs 2 worker processes.

Prints JSON with the median wall time over a few repeats for serial in-process runs (the peer),
`run_jobs(workers=1)` and `run_jobs(workers=2)`, and the 2-vs-1 speed-up. Never fails on a time.
Run: python benchmarks/bench_spice_parallel.py [--jobs 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from sim.spice import SimJob, ngspice_version, run_inline, run_jobs


def ladder_job(index: int, r_ohm: float, stages: int = 20) -> SimJob:
    """An RC ladder driven by a 1 V step, simulated for five ladder time constants."""
    lines = [f"* rc ladder {index}", "V1 n0 0 PULSE(0 1 0 1u 1u 1 2)"]
    for k in range(stages):
        lines += [f"R{k} n{k} n{k + 1} {r_ohm!r}", f"C{k} n{k + 1} 0 1e-9"]
    t_stop_s = 5 * r_ohm * 1e-9 * stages**2 / 2
    lines += [f".tran {t_stop_s / 4000!r} {t_stop_s!r} 0 {t_stop_s / 4000!r}", ".end"]
    return SimJob(f"ladder_{index}", "\n".join(lines) + "\n")


def timed(call) -> tuple[float, float]:  # noqa: ANN001
    """Wall seconds of one call and the sum of its simulations' own seconds (grows when cores are shared)."""
    start = time.perf_counter()
    results = call()
    elapsed = time.perf_counter() - start
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    return elapsed, sum(r.elapsed_s for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    jobs = [ladder_job(i, float(r)) for i, r in enumerate(rng.uniform(500.0, 2000.0, args.jobs))]
    run_inline(jobs[0])  # load ngspice in this process before timing the serial peer

    runs = {
        "inline_serial": lambda: [run_inline(job) for job in jobs],
        "workers_1": lambda: run_jobs(jobs, workers=1),
        "workers_2": lambda: run_jobs(jobs, workers=2),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    sim_sums: dict[str, list[float]] = {name: [] for name in runs}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):  # interleaved so drift in machine load hits every variant alike
        for name, call in runs.items():
            wall_s, sim_s = timed(call)
            times[name].append(wall_s)
            sim_sums[name].append(sim_s)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        json.dumps(
            {
                "benchmark": "spice_parallel",
                "jobs": args.jobs,
                "repeats": args.repeats,
                "cpus": os.cpu_count(),
                "ngspice": ngspice_version(),
                "per_sim_ms_inline": round(1e3 * median["inline_serial"] / args.jobs, 2),
                "median_s": {name: round(value, 3) for name, value in median.items()},
                "all_s": {name: [round(v, 3) for v in values] for name, values in times.items()},
                "median_sum_of_sim_s": {name: round(statistics.median(v), 3) for name, v in sim_sums.items()},
                "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                "speedup_2_vs_1": round(median["workers_1"] / median["workers_2"], 3),
                "target_speedup": 1.7,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
