"""Crash-isolated ngspice worker processes: a job that hangs or kills its process costs only itself.

Each worker process owns one ngspice and runs one job at a time. The parent sends a job, starts
that job's clock, and waits on every worker's pipe and process sentinel at once; a worker past
its job's deadline is killed, a worker that dies fails only its current job, and either is
replaced by a fresh process while the other workers keep running.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import signal
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from sim.spice.errors import NgspiceMissingError, SimulationError, SimulationTimeout, SimulatorCrash
from sim.spice.job import SimJob, SimResult
from sim.spice.worker import serve

_log = logging.getLogger(__name__)

_JOIN_S = 5.0


@dataclass(slots=True)
class _Worker:
    """One worker process, its pipe, and the job (index) it runs with that job's deadline."""

    process: BaseProcess
    conn: Connection
    deadline_s: float
    ready: bool = False
    job: int | None = None
    sent_s: float = 0.0


class IsolatedPool:
    """Up to `size` spawned worker processes, each holding one ngspice; use as a context manager."""

    def __init__(self, size: int, *, start_timeout_s: float = 60.0, context: str = "spawn") -> None:
        if size < 1:
            raise ValueError(f"pool size must be at least 1, got {size}")
        self.size = size
        self._start_timeout_s = start_timeout_s
        self._context = multiprocessing.get_context(context)
        self._workers: list[_Worker] = []

    def __enter__(self) -> IsolatedPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, jobs: Sequence[SimJob], timeouts_s: Sequence[float]) -> Iterator[tuple[int, SimResult]]:
        """Yield (job index, result) as jobs finish; every job yields exactly once."""
        queue = deque(range(len(jobs)))
        while queue or any(w.job is not None for w in self._workers):
            self._staff(len(queue))
            for worker in self._workers:
                if worker.ready and worker.job is None and queue:
                    self._send(worker, queue.popleft(), jobs, timeouts_s, queue)
            timeout = min((w.deadline_s for w in self._workers), default=math.inf) - time.monotonic()
            wait(
                [w.conn for w in self._workers] + [w.process.sentinel for w in self._workers],
                timeout=None if math.isinf(timeout) else max(0.0, timeout),
            )
            for worker in list(self._workers):
                yield from self._check(worker, jobs, timeouts_s)

    def close(self) -> None:
        """Ask idle workers to stop, kill the rest, and reap them all."""
        for worker in self._workers:
            if worker.job is None:
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
        for worker in list(self._workers):
            worker.process.join(_JOIN_S if worker.job is None else 0)
            self._retire(worker)

    def _staff(self, queued: int) -> None:
        """Start workers until there is one per busy job plus one per queued job, up to size."""
        busy = sum(w.job is not None for w in self._workers)
        while len(self._workers) < min(self.size, busy + queued):
            parent, child = self._context.Pipe()
            process = self._context.Process(target=serve, args=(child,), daemon=True, name="kelvin-ngspice")
            process.start()
            child.close()
            self._workers.append(_Worker(process, parent, time.monotonic() + self._start_timeout_s))
            _log.debug("started ngspice worker pid %s", process.pid)

    def _send(
        self, worker: _Worker, index: int, jobs: Sequence[SimJob], timeouts_s: Sequence[float], queue: deque[int]
    ) -> None:
        """Hand job `index` to an idle worker and start its clock; a dead pipe puts the job back."""
        try:
            worker.conn.send(jobs[index])
        except OSError:
            queue.appendleft(index)
            self._retire(worker)
            return
        worker.job = index
        worker.sent_s = time.monotonic()
        worker.deadline_s = worker.sent_s + timeouts_s[index]

    def _check(
        self, worker: _Worker, jobs: Sequence[SimJob], timeouts_s: Sequence[float]
    ) -> Iterator[tuple[int, SimResult]]:
        """Take the worker's message if any, else detect its death or its overrun deadline."""
        alive = True
        if worker.conn.poll():
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                alive = False
            else:
                yield from self._receive(worker, message)
                return
        if alive and worker.process.is_alive():
            if time.monotonic() < worker.deadline_s:
                return
            self._retire(worker)
            if worker.job is None:
                raise SimulationError(f"an ngspice worker did not start within {self._start_timeout_s:g} s")
            name, limit = jobs[worker.job].name, timeouts_s[worker.job]
            error = SimulationTimeout(f"job {name!r}: timed out after {limit:g} s; its ngspice process was stopped")
            yield worker.job, SimResult.failure(name, error, time.monotonic() - worker.sent_s)
            return
        worker.process.join(_JOIN_S)
        self._retire(worker)
        if worker.job is not None:
            name = jobs[worker.job].name
            error = SimulatorCrash(f"job {name!r}: ngspice crashed ({_describe_exit(worker.process.exitcode)})")
            yield worker.job, SimResult.failure(name, error, time.monotonic() - worker.sent_s)
        elif not worker.ready:
            raise SimulationError(
                f"an ngspice worker exited while starting ({_describe_exit(worker.process.exitcode)}); "
                "its traceback is on stderr, and a script calling run_jobs needs an "
                "`if __name__ == '__main__':` guard because workers are spawned"
            )

    def _receive(self, worker: _Worker, message: tuple) -> Iterator[tuple[int, SimResult]]:
        """Act on one message from a worker: ready, missing ngspice, or a job's result."""
        kind = message[0]
        if kind == "missing":
            raise NgspiceMissingError(message[1])
        worker.deadline_s = math.inf
        if kind == "ready":
            worker.ready = True
            _log.debug("ngspice %s ready in worker pid %s", message[1], worker.process.pid)
        elif kind == "result" and worker.job is not None:
            index, worker.job = worker.job, None
            yield index, message[1]

    def _retire(self, worker: _Worker) -> None:
        """Kill (if needed) and forget a worker."""
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(_JOIN_S)
        worker.conn.close()
        if worker in self._workers:
            self._workers.remove(worker)


def _describe_exit(code: int | None) -> str:
    """'exit code -11, SIGSEGV' style text for a process exit code."""
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"exit code {code}, {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"
