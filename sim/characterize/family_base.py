"""The behavioural-family contract and registry (the families themselves: `families_opamp`, `families_arrays`).

A family is a frozen dataclass of a characterized block's design constants that maps parameters
and sweep points to outputs with a vectorized `predict`; `register` files it under its primitive
kind in `FAMILIES` (`families.family_class` looks one up once every family module is imported).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, ClassVar

import numpy as np

from circuits.errors import ParameterError


class Family(ABC):
    """One behavioural model family (subclasses are frozen dataclasses of design constants)."""

    __slots__ = ()
    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""

    @abstractmethod
    def parameters(self) -> tuple[str, ...]:
        """Parameter names, in the order of the ``params`` vector."""

    @abstractmethod
    def initial(self) -> np.ndarray:
        """The ideal block's parameters (the fit's starting point)."""

    @abstractmethod
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) bounds of every parameter."""

    @abstractmethod
    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Outputs (rows,) at points ``x`` (rows, inputs), model units."""

    def n_inputs(self) -> int:
        return 1

    def design(self) -> dict[str, Any]:
        """JSON-ready design constants; ``from_design`` rebuilds the family from them."""
        fields = asdict(self)  # type: ignore[call-overload]
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()}

    @classmethod
    def from_design(cls, design: Mapping[str, Any]) -> Family:
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in design.items()})  # type: ignore[call-arg]

    def check(self, params: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(params, x) as float arrays of the right shapes, or ParameterError naming the family."""
        p = np.asarray(params, dtype=np.float64).reshape(-1)
        pts = np.asarray(x, dtype=np.float64)
        pts = pts.reshape(-1, 1) if pts.ndim == 1 else pts
        if p.size != len(self.parameters()):
            raise ParameterError(f"family {self.name}: expected {len(self.parameters())} parameters "
                                 f"{self.parameters()}, got {p.size}")
        if pts.ndim != 2 or pts.shape[1] != self.n_inputs():
            raise ParameterError(f"family {self.name}: points need {self.n_inputs()} column(s), got shape {pts.shape}")
        return p, pts


FAMILIES: dict[str, type[Family]] = {}


def register(cls: type[Family]) -> type[Family]:
    """Class decorator adding a family under its primitive kind."""
    if cls.kind in FAMILIES:
        raise ParameterError(f"families: {cls.kind} already has family {FAMILIES[cls.kind].name}")
    FAMILIES[cls.kind] = cls
    return cls


def softplus(v: np.ndarray, knee: float) -> np.ndarray:
    """knee·ln(1 + e^(v/knee)), overflow-free."""
    return knee * np.logaddexp(0.0, v / knee)


def bounds_of(*pairs: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = zip(*pairs)
    return np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)
