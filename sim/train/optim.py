"""Optimizers over a dict of named parameters, updated in place; their state is checkpointable.

- SGD with momentum and decoupled-free L2 weight decay, as torch.optim.SGD:
  g ← g + λ·p;  v ← μ·v + g;  p ← p − η·v.
- Adam (Kingma & Ba 2015), as torch.optim.Adam (L2 weight decay added to the gradient):
  m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;  p ← p − η·m̂/(√v̂ + ε), m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ).

`step_one` updates one parameter, so a pipelined backward can update each block as soon as its
gradient is ready. Each update is one fused Numba loop over the parameter (in place, no temporaries).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from circuits.errors import ParameterError

Array = np.ndarray


@dataclass
class Optimizer:
    lr: float
    weight_decay: float = 0.0
    state: dict[str, Array] = field(default_factory=dict)
    t: int = 0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise ParameterError(f"--lr: a learning rate > 0, got {self.lr}")
        if not (np.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ParameterError(f"--weight-decay: ≥ 0, got {self.weight_decay}")

    def begin_step(self) -> None:
        self.t += 1

    def step(self, params: dict[str, Array], grads: Mapping[str, Array]) -> None:
        self.begin_step()
        for k, g in grads.items():
            if k in params:
                self.step_one(k, params[k], g)

    def step_one(self, key: str, p: Array, g: Array) -> None:
        raise NotImplementedError

    def warm_up(self, dtype) -> None:
        """Load the compiled update loop before anything is timed (Numba's first call)."""
        p = np.zeros(1, dtype)
        saved, t = (self.state, self.t)
        self.state, self.t = {}, 1
        self.step_one("_warm", p, p.copy())
        self.state, self.t = saved, t

    def state_arrays(self) -> dict[str, Array]:
        return {**{f"opt.{k}": v for k, v in self.state.items()}, "opt.t": np.asarray(self.t)}

    def load_state(self, arrays: Mapping[str, Array]) -> None:
        self.t = int(arrays["opt.t"])
        self.state = {k[4:]: np.array(v) for k, v in arrays.items() if k.startswith("opt.") and k != "opt.t"}


@njit(cache=True, nogil=True)
def _sgd(p, g, v, lr, momentum, decay, first):  # pragma: no cover - compiled
    for i in range(p.size):
        gi = g[i] + decay * p[i]
        vi = gi if first else momentum * v[i] + gi
        v[i] = vi
        p[i] -= lr * vi


@njit(cache=True, nogil=True)
def _adam(p, g, m, v, lr_t, b1, b2, eps_t, decay):  # pragma: no cover - compiled
    for i in range(p.size):
        gi = g[i] + decay * p[i]
        mi = b1 * m[i] + (1 - b1) * gi
        vi = b2 * v[i] + (1 - b2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr_t * mi / (np.sqrt(vi) + eps_t)


def _flat(a: Array) -> Array:
    return a.reshape(-1)


@dataclass
class SGD(Optimizer):
    momentum: float = 0.9

    def step_one(self, key, p, g):
        """One fused loop (Numba): the three NumPy passes it replaces cost 3× at MLP sizes."""
        v = self.state.get(f"v.{key}")
        first = v is None
        if first:
            v = self.state[f"v.{key}"] = np.empty_like(p)
        t = p.dtype.type
        _sgd(_flat(p), _flat(np.ascontiguousarray(g, p.dtype)), _flat(v), t(self.lr), t(self.momentum),
             t(self.weight_decay), first)


@dataclass
class Adam(Optimizer):
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def step_one(self, key, p, g):
        m = self.state.setdefault(f"m.{key}", np.zeros_like(p))
        v = self.state.setdefault(f"v.{key}", np.zeros_like(p))
        t = p.dtype.type
        lr_t = self.lr * np.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        eps_t = self.eps * np.sqrt(1 - self.beta2 ** self.t)
        _adam(_flat(p), _flat(np.ascontiguousarray(g, p.dtype)), _flat(m), _flat(v), t(lr_t), t(self.beta1),
              t(self.beta2), t(eps_t), t(self.weight_decay))


def make_optimizer(name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> Optimizer:
    if name == "sgd":
        if not (0 <= momentum < 1):
            raise ParameterError(f"--momentum: in [0, 1), got {momentum}")
        return SGD(lr=lr, weight_decay=weight_decay, momentum=momentum)
    if name == "adam":
        return Adam(lr=lr, weight_decay=weight_decay)
    raise ParameterError(f"--optimizer: sgd or adam, got {name!r}")
