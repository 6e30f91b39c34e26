"""ReduceSum and ReduceMean: a sum (or mean) over ``axes``, which move from attribute to input.

ReduceSum takes ``axes`` as an input from v13, ReduceMean from v18; with the input form an
empty or omitted ``axes`` reduces every axis unless ``noop_with_empty_axes`` is set.
"""

from __future__ import annotations

import numpy as np

from ._args import Attrs, Inputs, axes, int_list, optional
from .registry import register


def reduce_axes(op: str, inputs: Inputs, attrs: Attrs, rank: int, axes_input: bool) -> tuple[int, ...] | None:
    """The non-negative axes to reduce; None means "no-op" (empty axes with noop_with_empty_axes).

    ``inputs[1]`` is the axes input (read when ``axes_input``), otherwise the attribute is.
    """
    given = int_list(optional(inputs, 1)) if axes_input else int_list(attrs.get("axes"))
    if not given:
        if axes_input and attrs.get("noop_with_empty_axes", 0):
            return None
        given = list(range(rank))
    return axes(op, given, rank)


@register("ReduceSum", (1, 11, 13))
def reduce_sum(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Sum over ``axes`` (attribute before v13, input from v13); no axes means all axes."""
    x = inputs[0]
    red = reduce_axes("ReduceSum", inputs, attrs, x.ndim, version >= 13)
    if red is None:
        return [x]
    acc = np.float64 if x.dtype.kind == "f" else None
    return [np.asarray(x.sum(axis=red, keepdims=bool(attrs["keepdims"]), dtype=acc)).astype(x.dtype)]


@register("ReduceMean", (1, 11, 13, 18))
def reduce_mean(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Mean over ``axes`` (attribute before v18, input from v18); no axes means all axes."""
    x = inputs[0]
    red = reduce_axes("ReduceMean", inputs, attrs, x.ndim, version >= 18)
    if red is None:
        return [x]
    with np.errstate(invalid="ignore", divide="ignore"):
        y = x.astype(np.float64).mean(axis=red, keepdims=bool(attrs["keepdims"]))
    return [np.asarray(y).astype(x.dtype)]
