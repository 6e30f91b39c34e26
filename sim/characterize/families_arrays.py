"""Array behavioural families: a crossbar column and the Binas current-mode soma and synapse.

Equations in `sim.characterize.families`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sim.characterize.family_base import Family, bounds_of, register

# --- crossbar and current-mode families ----------------------------------------------------

@register
@dataclass(frozen=True, slots=True)
class CrossbarFamily(Family):
    """One crossbar column: effective weight error per row (PCM programming, TIA gain) and an offset."""

    name: ClassVar[str] = "crossbar"
    kind: ClassVar[str] = "crossbar.tiles"
    weights: tuple[float, ...]
    bias: float = 0.0

    def n_inputs(self) -> int:
        return len(self.weights)

    def parameters(self) -> tuple[str, ...]:
        return (*(f"dw_{k}" for k in range(len(self.weights))), "offset")

    def initial(self) -> np.ndarray:
        return np.zeros(len(self.weights) + 1)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        span = max(abs(w) for w in self.weights) or 1.0
        return bounds_of(*[(-span, span)] * len(self.weights), (-span, span))

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        p, pts = self.check(params, x)
        return pts @ (np.asarray(self.weights) + p[:-1]) + self.bias + p[-1]


@register
@dataclass(frozen=True, slots=True)
class CurrentNeuronFamily(Family):
    """Binas soma y = a·max(0, x − θ) + i_leak: per-neuron gain, threshold and leakage floor."""

    name: ClassVar[str] = "current_neuron"
    kind: ClassVar[str] = "current.neuron"

    def parameters(self) -> tuple[str, ...]:
        return ("gain", "threshold", "leak")

    def initial(self) -> np.ndarray:
        return np.array([1.0, 0.0, 0.0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return bounds_of((0.5, 1.5), (-0.5, 0.5), (-0.5, 0.5))

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        (a, th, leak), pts = self.check(params, x)
        return a * np.maximum(pts[:, 0] - th, 0.0) + leak


BRANCH_RATIOS = (4, 2, 1)  # b2, b1, b0 mirror multiplicities


@register
@dataclass(frozen=True, slots=True)
class SynapseFamily(Family):
    """One Binas synapse from its input soma (x columns: input x, level k): per-branch ratio errors."""

    name: ClassVar[str] = "synapse"
    kind: ClassVar[str] = "current.synapse_array"
    w_unit: float = 0.25

    def n_inputs(self) -> int:
        return 2

    def parameters(self) -> tuple[str, ...]:
        return (*(f"eps_{bank}{r}" for bank in "pn" for r in BRANCH_RATIOS), "threshold")

    def initial(self) -> np.ndarray:
        return np.zeros(7)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return bounds_of(*[(-0.5, 0.5)] * 6, (-0.5, 0.5))

    def k_eff(self, params: np.ndarray, level: np.ndarray) -> np.ndarray:
        """Effective signed level of each k: Σ bitᵦ·rᵦ·(1 + ε) over the bank the sign selects.
        ``params`` may carry leading axes that broadcast against ``level`` (one draw per synapse)."""
        p = np.asarray(params, dtype=np.float64)
        k = np.rint(np.asarray(level, dtype=np.float64)).astype(int)
        mag = np.abs(k)
        bits = np.stack([(mag >> 2) & 1, (mag >> 1) & 1, mag & 1], axis=-1).astype(np.float64)
        ratios = np.asarray(BRANCH_RATIOS, dtype=np.float64)
        pos = np.sum(bits * ratios * (1.0 + p[..., 0:3]), axis=-1)
        neg = np.sum(bits * ratios * (1.0 + p[..., 3:6]), axis=-1)
        return np.where(k >= 0, pos, -neg)

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        p, pts = self.check(params, x)
        return self.w_unit * self.k_eff(p, pts[:, 1]) * np.maximum(pts[:, 0] - p[6], 0.0)
