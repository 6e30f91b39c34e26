"""Every characterization bench by primitive kind: `benches` (op-amp blocks, arrays, neurons) and
`benches_select` (max, softmax, products, current-mode junction, average, winner-take-all).

Kept apart from both so neither imports the other's registry (no import circle in ``sim/``).
"""

from __future__ import annotations

import numpy as np

from circuits.errors import ParameterError
from sim.characterize.benches import BENCHES as _CORE
from sim.characterize.benches import Bench
from sim.characterize.benches_select import SELECT_BENCHES

BENCHES = {**_CORE, **SELECT_BENCHES}


def bench_for(kind: str, n_points: int, rng: np.random.Generator) -> Bench:
    """The characterization bench of ``kind`` with ``n_points`` sweep points."""
    if kind not in BENCHES:
        raise ParameterError(f"characterize: no characterization bench for {kind!r}; "
                             f"kinds: {', '.join(sorted(BENCHES))}")
    return BENCHES[kind](n_points, rng)
