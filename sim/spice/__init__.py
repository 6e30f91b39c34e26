"""Run SPICE decks on ngspice (shared library through PySpice), in parallel worker processes.

| Name | What |
|---|---|
| `SimJob` | a named deck with analysis cards and `.end`, and its timeout |
| `SimResult` | vectors by ngspice name, or the error; `raise_for_error()` |
| `run_jobs` | many jobs, crash-isolated worker processes or any executor |
| `run_inline` | one job in this process (tests, debugging) |
| `dask_executor` | an executor on a dask scheduler address |
| `ngspice_version` | the loaded ngspice's version, for provenance |
"""

from sim.spice import errors
from sim.spice.errors import (
    ConvergenceError,
    NetlistError,
    NgspiceMissingError,
    SimulationError,
    SimulationTimeout,
    SimulatorCrash,
)
from sim.spice.job import SimJob, SimResult
from sim.spice.runner import dask_executor, run_inline, run_jobs
from sim.spice.worker import ngspice_version

__all__ = [
    "ConvergenceError",
    "NetlistError",
    "NgspiceMissingError",
    "SimJob",
    "SimResult",
    "SimulationError",
    "SimulationTimeout",
    "SimulatorCrash",
    "dask_executor",
    "errors",
    "ngspice_version",
    "run_inline",
    "run_jobs",
]
