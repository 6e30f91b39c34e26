"""Public entry point: run many SPICE jobs in parallel ngspice processes and get results in job order.

Without an executor, jobs run in the runner's own spawned worker processes (`sim.spice.pool`),
one ngspice each, kept warm between calls: a job past its timeout or a crashed ngspice fails only
that job, and its worker is replaced. With a
`concurrent.futures.Executor` (a process pool, or dask via `dask_executor`) the runner submits
`sim.spice.worker.simulate` per job; the executor's workers must be processes running one job
at a time (ngspice is not thread-safe), and crash isolation is then the executor's: the runner
cannot kill a job, it only stops waiting once no job has finished for a whole timeout.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from tqdm import tqdm

from circuits.errors import ParameterError
from sim.spice.errors import NgspiceMissingError, SimulationError, SimulationTimeout, SimulatorCrash
from sim.spice.job import SimJob, SimResult
from sim.spice.pool import IsolatedPool
from sim.spice.worker import simulate

_log = logging.getLogger(__name__)


def run_inline(job: SimJob) -> SimResult:
    """Run one job on this process's ngspice: no isolation and no timeout (for tests and debugging)."""
    return simulate(job)


def run_jobs(
    jobs: Iterable[SimJob],
    *,
    workers: int | None = None,
    executor: cf.Executor | None = None,
    progress: bool = False,
    timeout_s: float | None = None,
    retried: bool = False,
) -> list[SimResult]:
    """Simulate every job and return the results in job order; failures come back as ok=False.

    `workers` (ignored with an executor) defaults to the usable CPUs; `timeout_s`, if given,
    replaces each job's own limit. Each failure is logged as a warning, or at debug level when
    `retried` says the caller runs failed jobs again and reports what stays failed.
    A missing ngspice raises NgspiceMissingError instead of failing every job.
    """
    if workers is not None and workers < 1:
        raise ParameterError(f"run_jobs: workers must be at least 1, got {workers}")
    if timeout_s is not None and not timeout_s > 0:
        raise ParameterError(f"run_jobs: timeout_s must be a positive number of seconds, got {timeout_s!r}")
    jobs = list(jobs)
    if not jobs:
        return []
    timeouts = [timeout_s if timeout_s is not None else job.timeout_s for job in jobs]
    start = time.perf_counter()
    level = logging.DEBUG if retried else logging.WARNING
    results: list[SimResult | None] = [None] * len(jobs)
    with tqdm(total=len(jobs), unit="sim", desc="ngspice", file=sys.stderr, disable=not progress) as bar:
        if executor is None:
            with _warm_pool(workers or usable_cpus()) as pool:
                finished = pool.run(jobs, timeouts)
                _collect(finished, results, bar, level)
        else:
            _collect(_run_on_executor(executor, jobs, timeouts), results, bar, level)
    missing = [jobs[i].name for i, r in enumerate(results) if r is None]
    if missing:  # the pool and the executor path yield every job once; this guards that promise
        raise SimulationError(f"run_jobs lost the results of jobs {missing}")
    done = [r for r in results if r is not None]
    failed = sum(not r.ok for r in done)
    _log.info("%d simulations, %d failed, in %.2f s", len(done), failed, time.perf_counter() - start)
    return done


def dask_executor(address: str) -> cf.Executor:
    """A concurrent.futures executor on the dask scheduler at `address` (workers: processes, one thread each).

    Use it as a context manager, or call `shutdown()`, to close its dask client.
    """
    try:
        from sim.spice.dask_backend import connect  # dask is optional: import it only when asked for
    except ImportError as exc:
        raise SimulationError(f"--dask {address}: dask.distributed is not installed "
                              "(pip install 'dask[distributed]')") from exc
    return connect(address)


_WARM: dict[tuple[int, str, int], IsolatedPool] = {}
_WARM_LOCK = threading.Lock()


@contextmanager
def _warm_pool(size: int) -> Iterator[IsolatedPool]:
    """A pool of up to ``size`` workers kept between `run_jobs` calls.

    Spawning a worker (a Python process that loads ngspice) costs about 0.3 s, and a chip
    measurement calls `run_jobs` once per weight configuration (48 times). A pool is reused only
    from the working directory and environment its workers were spawned with; a concurrent call
    from another thread gets a private pool, and a run that raised closes the pool it used.
    """
    if not _WARM_LOCK.acquire(blocking=False):
        with IsolatedPool(size) as pool:
            yield pool
        return
    try:
        key = (size, os.getcwd(), hash(frozenset(os.environ.items())))
        for stale in [k for k in _WARM if k[1:] != key[1:]]:  # spawned elsewhere: not reusable any more
            _WARM.pop(stale).close()
        pool = _WARM.get(key)
        if pool is None:
            pool = _WARM[key] = IsolatedPool(size)
        try:
            yield pool
        except BaseException:
            _WARM.pop(key, None)
            pool.close()
            raise
    finally:
        _WARM_LOCK.release()


@atexit.register
def close_warm_pools() -> None:
    """Stop the workers kept between calls (also run at interpreter exit)."""
    with _WARM_LOCK:
        while _WARM:
            _WARM.popitem()[1].close()


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _collect(finished: Iterable[tuple[int, SimResult]], results: list[SimResult | None], bar: tqdm,
             level: int) -> None:
    """Store each (index, result) and report it."""
    for index, result in finished:
        results[index] = result
        bar.update(1)
        if not result.ok:
            _log.log(level, "%s", result.error)


def _run_on_executor(
    executor: cf.Executor, jobs: Sequence[SimJob], timeouts: Sequence[float]
) -> Iterable[tuple[int, SimResult]]:
    """Submit one `simulate` per job; give up on all unfinished jobs when none finishes for a whole timeout."""
    futures = {executor.submit(simulate, job): index for index, job in enumerate(jobs)}
    pending = set(futures)
    while pending:
        patience = max(timeouts[futures[f]] for f in pending)
        done, pending = cf.wait(pending, timeout=patience, return_when=cf.FIRST_COMPLETED)
        for future in done:
            yield futures[future], _outcome(future, jobs[futures[future]])
        if not done:
            for future in pending:
                future.cancel()
                name = jobs[futures[future]].name
                error = SimulationTimeout(f"job {name!r}: timed out after {patience:g} s without any job finishing")
                yield futures[future], SimResult.failure(name, error, patience)
            return


def _outcome(future: cf.Future, job: SimJob) -> SimResult:
    """The future's SimResult, or a crash result if the executor lost the job."""
    try:
        return future.result()
    except NgspiceMissingError:
        raise
    except (Exception, cf.CancelledError) as exc:
        error = SimulatorCrash(f"job {job.name!r}: the executor lost the job ({type(exc).__name__}: {exc})")
        return SimResult.failure(job.name, error, 0.0)
