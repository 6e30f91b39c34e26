"""Errors of the ngspice runner: one family under KelvinError so the CLI reports them as one line."""

from __future__ import annotations

from circuits.errors import KelvinError


class SimulationError(KelvinError):
    """A SPICE simulation could not produce results."""


class NgspiceMissingError(SimulationError):
    """The ngspice shared library (libngspice) cannot be found or loaded."""


class NetlistError(SimulationError):
    """ngspice rejected the deck (syntax, unknown model or subcircuit, no analysis card)."""


class ConvergenceError(SimulationError):
    """ngspice gave up: no DC convergence, timestep too small, or aborted analysis."""


class SimulationTimeout(SimulationError):
    """A simulation ran past its time limit and its worker was stopped."""


class SimulatorCrash(SimulationError):
    """The process running ngspice died (segfault, abort, kill) or the executor lost the job."""


class BatchError(SimulationError):
    """Some samples of a batch failed; ``outputs`` holds every sample, NaN in the ``failed`` rows."""

    def __init__(self, message: str, outputs: dict | None = None, failed: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.outputs = outputs or {}
        self.failed = failed


BY_NAME: dict[str, type[SimulationError]] = {
    cls.__name__: cls
    for cls in (
        SimulationError,
        NgspiceMissingError,
        NetlistError,
        ConvergenceError,
        SimulationTimeout,
        SimulatorCrash,
    )
}
"""Error classes by name, so a result carried across processes can be raised again."""
