"""Learning-rate schedules, set on the optimizer before each step (`sim.train.loop`).

- ``constant``: η.
- ``cosine``: η_k = η·(1 + cos(πk/K))/2 over the run's K steps, annealing to zero (Loshchilov &
  Hutter 2017, SGDR without restarts). Training *for* a mismatched chip, it was worth 0.6-0.8 points
  on digits over a constant rate (measured in `sim.demo._train`'s docstring).

No NumPy-heavy or Numba imports: the CLI reads `SCHEDULES` for its choices.
"""

from __future__ import annotations

import math

from circuits.errors import ParameterError

SCHEDULES = ("constant", "cosine")


def scheduled_lr(lr: float, schedule: str, step: int, total: int) -> float:
    """The learning rate for step ``step`` (0-based) of ``total`` under ``schedule`` (module docstring)."""
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    raise ParameterError(f"--lr-schedule: one of {', '.join(SCHEDULES)}, got {schedule!r}")
