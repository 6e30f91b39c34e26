"""What the runner is asked to simulate and what it hands back; both cross process boundaries."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from circuits.errors import ParameterError
from sim.spice.errors import BY_NAME, SimulationError


@dataclass(frozen=True, slots=True)
class SimJob:
    """A named SPICE deck with its analysis cards and .end (no .control block); the runner issues 'run'."""

    name: str
    netlist: str
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ParameterError("SimJob.name must be a non-empty string")
        if not (isinstance(self.timeout_s, (int, float)) and math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ParameterError(
                f"SimJob {self.name!r}: timeout_s must be a positive number of seconds, got {self.timeout_s!r}"
            )


@dataclass(frozen=True, slots=True)
class SimResult:
    """Outcome of one job: vectors by ngspice name when ok, else the error text and its class name."""

    name: str
    ok: bool
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    error: str | None = None
    elapsed_s: float = 0.0
    log: str = ""
    error_type: str | None = None

    def raise_for_error(self) -> SimResult:
        """Raise the job's SimulationError subclass if it failed; return self so calls can chain."""
        if self.ok:
            return self
        raise BY_NAME.get(self.error_type or "", SimulationError)(self.error or f"job {self.name!r} failed")

    @classmethod
    def failure(cls, name: str, error: SimulationError, elapsed_s: float, log: str = "") -> SimResult:
        """A failed result carrying the error's message and class."""
        return cls(name, False, {}, str(error), elapsed_s, log, type(error).__name__)
