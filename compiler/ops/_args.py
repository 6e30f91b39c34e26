"""Small readers for kernel arguments: optional input slots, axes and integer lists.

Kernels share these so that "omitted input", "negative axis" and "axes given as a tensor"
mean the same thing in every op.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from circuits.errors import ModelError

# A kernel's arguments (see registry.Kernel).
Inputs = Sequence[np.ndarray | None]
Attrs = Mapping[str, Any]


def optional(inputs: Inputs, index: int) -> np.ndarray | None:
    """Input slot ``index``, or None when the node omits it (empty name or trailing slot)."""
    return inputs[index] if index < len(inputs) else None


def int_list(values: np.ndarray | Iterable[int] | None) -> list[int] | None:
    """A tensor or attribute of integers as a plain list (None stays None)."""
    if values is None:
        return None
    return [int(v) for v in np.asarray(values).reshape(-1)]


def axis(op: str, value: int, rank: int) -> int:
    """``value`` as a non-negative axis of a rank-``rank`` tensor; ModelError when out of range."""
    if not -rank <= value < rank:
        raise ModelError(f"{op}: axis {value} is out of range for a tensor of rank {rank}")
    return value + rank if value < 0 else value


def axes(op: str, values: Sequence[int], rank: int) -> tuple[int, ...]:
    """Distinct non-negative axes of a rank-``rank`` tensor, in the given order."""
    out = tuple(axis(op, int(v), rank) for v in values)
    if len(set(out)) != len(out):
        raise ModelError(f"{op}: repeated axis in {list(values)}")
    return out
