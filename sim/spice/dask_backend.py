"""Run jobs on a dask cluster: an executor that owns its client and closes it on shutdown.

Start the dask workers as processes with one thread each (`dask worker ADDRESS --nthreads 1`,
or `LocalCluster(processes=True, threads_per_worker=1)`): each worker process then holds one
ngspice and runs one job at a time, which ngspice's global state requires.
"""

from __future__ import annotations

from distributed import Client
from distributed.cfexecutor import ClientExecutor


class OwningClientExecutor(ClientExecutor):
    """dask's concurrent.futures executor; `shutdown` also closes the client it was made with."""

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait=wait)
        self._client.close()


def connect(address: str) -> OwningClientExecutor:
    """An executor on the scheduler at `address`; every submission is simulated (pure=False: no dedup)."""
    return OwningClientExecutor(Client(address), pure=False)
