"""Run jobs on a dask cluster: an executor that owns its client and closes it on shutdown.

Start the dask workers as processes with one thread each (`dask worker ADDRESS --nthreads 1`,
or `LocalCluster(processes=True, threads_per_worker=1)`): each worker process then holds one
ngspice and runs one job at a time, which ngspice's global state requires.
"""

from __future__ import annotations

from distributed import Client
from distributed.cfexecutor import ClientExecutor

from sim.spice.errors import SimulationError


class OwningClientExecutor(ClientExecutor):
    """dask's concurrent.futures executor; `shutdown` also closes the client it was made with."""

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait=wait)
        self._client.close()


CONNECT_TIMEOUT_S = 10.0


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> OwningClientExecutor:
    """An executor on the scheduler at `address`; every submission is simulated (pure=False: no dedup)."""
    try:
        client = Client(address, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise SimulationError(f"--dask {address}: cannot reach the Dask scheduler within {timeout_s:g} s "
                              f"({type(exc).__name__}); check the address and that `dask scheduler` runs there") from exc
    return OwningClientExecutor(client, pure=False)
