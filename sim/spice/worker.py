"""Per-process side of the runner: the process's lazily created ngspice and the job function run in workers.

`simulate` is a picklable top-level function, so any `concurrent.futures.Executor` (process pool,
dask) can run it; `serve` is the loop of the runner's own crash-isolated worker processes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from multiprocessing.connection import Connection

from sim.spice.errors import NgspiceMissingError, SimulationError
from sim.spice.job import SimJob, SimResult
from sim.spice.ngspice import Ngspice

_log = logging.getLogger(__name__)

_instance: Ngspice | None = None
_instance_error: NgspiceMissingError | None = None
_instance_lock = threading.Lock()


def shared_ngspice() -> Ngspice:
    """This process's one ngspice, created on first use; a failed load is remembered and raised again."""
    global _instance, _instance_error
    with _instance_lock:
        if _instance_error is not None:
            raise _instance_error
        if _instance is None:
            try:
                _instance = Ngspice()
            except NgspiceMissingError as exc:
                _instance_error = exc
                raise
        return _instance


def ngspice_version() -> str:
    """The version of the ngspice library this process loads (e.g. "39"), for provenance records."""
    return shared_ngspice().version


def simulate(job: SimJob) -> SimResult:
    """Run one job on this process's ngspice; job failures become ok=False, a missing ngspice raises."""
    ngspice = shared_ngspice()
    start = time.perf_counter()
    try:
        output = ngspice.run(job.name, job.netlist)
    except SimulationError as exc:
        return SimResult.failure(job.name, exc, time.perf_counter() - start, ngspice.last_log)
    except Exception as exc:  # a bug must fail the job, not the worker
        error = SimulationError(f"job {job.name!r}: unexpected {type(exc).__name__}: {exc}")
        return SimResult.failure(job.name, error, time.perf_counter() - start, traceback.format_exc())
    return SimResult(job.name, True, output.vectors, None, time.perf_counter() - start, output.log)


def serve(conn: Connection) -> None:
    """Worker-process loop: load ngspice, say ready, then answer each SimJob with a SimResult until None."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        version = ngspice_version()
    except NgspiceMissingError as exc:
        conn.send(("missing", str(exc)))
        return
    conn.send(("ready", version))
    try:
        while (job := conn.recv()) is not None:
            conn.send(("result", simulate(job)))
            if not shared_ngspice().usable:
                return  # ngspice asked to exit; the pool starts a fresh process
    except (EOFError, BrokenPipeError):
        _log.debug("runner went away; worker exits")
