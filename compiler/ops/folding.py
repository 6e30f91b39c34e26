"""Ops that appear in shape subgraphs of torch.onnx exports, evaluated for constant folding.

Shape, Gather, Slice, Cast, Constant, ConstantOfShape, Expand, Range, Equal and Where work
on any plain numpy dtype (integers included); exotic ONNX types (bfloat16, float8, int4,
strings) raise UnsupportedError.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from circuits.errors import ModelError, UnsupportedError

from ._args import Attrs, Inputs, axes, axis, int_list, optional
from .registry import register

# ONNX element types that map onto plain numpy dtypes.
_PLAIN_TYPES = {
    getattr(TensorProto, name): np.dtype(helper.tensor_dtype_to_np_dtype(getattr(TensorProto, name)))
    for name in (
        "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
        "FLOAT16", "FLOAT", "DOUBLE",
    )
}
_PLAIN_DTYPES = frozenset(_PLAIN_TYPES.values())


def _plain(op: str, *arrays: np.ndarray | None) -> None:
    """UnsupportedError unless every array has a plain numeric/bool dtype."""
    for a in arrays:
        if a is not None and a.dtype not in _PLAIN_DTYPES:
            raise UnsupportedError(f"{op}: tensors of dtype {a.dtype} are not supported")


@register("Shape", (1, 13, 15, 19, 21, 23, 24, 25))
def shape(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """The input's shape as int64, sliced by start/end (v15+, clamped to [0, rank])."""
    dims = inputs[0].shape
    rank = len(dims)
    start, end = int(attrs.get("start", 0)), attrs.get("end")
    end = rank if end is None else int(end)
    start, end = (min(max(v + rank if v < 0 else v, 0), rank) for v in (start, end))
    return [np.array(dims[start:end], dtype=np.int64)]


@register("Gather", (1, 11, 13))
def gather(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Take entries along ``axis`` at ``indices`` (negative indices count from the end)."""
    data, indices = inputs[0], inputs[1]
    ax = axis("Gather", int(attrs["axis"]), data.ndim)
    size = data.shape[ax]
    if indices.size and (indices.min() < -size or indices.max() >= size):
        raise ModelError(f"Gather: indices out of range for axis {ax} of size {size}")
    return [np.take(data, indices.astype(np.int64), axis=ax)]


def _clamped_slice(start: int, end: int, step: int, dim: int) -> slice:
    """ONNX Slice bounds on an axis of size ``dim`` as a Python slice (ONNX clamps differently)."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)


@register("Slice", (1, 10, 11, 13))
def slice_(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Strided slice along ``axes``: attributes in v1, inputs (with steps) from v10."""
    x = inputs[0]
    if version < 10:
        starts, ends = int_list(attrs["starts"]), int_list(attrs["ends"])
        ax_list, steps = int_list(attrs.get("axes")), None
    else:
        starts, ends = int_list(inputs[1]), int_list(inputs[2])
        ax_list, steps = int_list(optional(inputs, 3)), int_list(optional(inputs, 4))
    ax_list = list(range(len(starts))) if ax_list is None else ax_list
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(ax_list) == len(steps):
        raise ModelError("Slice: starts, ends, axes and steps must have the same length")
    if 0 in steps:
        raise ModelError("Slice: steps must be non-zero")
    index = [slice(None)] * x.ndim
    for a, s, e, st in zip(axes("Slice", ax_list, x.ndim), starts, ends, steps):
        index[a] = _clamped_slice(s, e, st, x.shape[a])
    return [x[tuple(index)]]


@register("Cast", (6, 9, 13, 19, 21, 23, 24, 25, 28))
def cast(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Convert to the element type ``to`` (plain numeric and bool types only)."""
    x, to = inputs[0], int(attrs["to"])
    _plain("Cast", x)
    if to not in _PLAIN_TYPES:
        name = TensorProto.DataType.Name(to) if to in TensorProto.DataType.values() else str(to)
        raise UnsupportedError(f"Cast: to={name} is not supported (plain numeric and bool types only)")
    with np.errstate(invalid="ignore", over="ignore"):
        return [x.astype(_PLAIN_TYPES[to])]


@register("Constant", (1, 9, 11, 12, 13, 19, 21, 23, 24, 25))
def constant(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """The tensor held by whichever value attribute is set."""
    if attrs.get("value") is not None:
        return [np.asarray(attrs["value"])]
    for name, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                        ("value_int", np.int64), ("value_ints", np.int64)):
        if attrs.get(name) is not None:
            return [np.array(attrs[name], dtype=dtype)]
    set_names = sorted(k for k, v in attrs.items() if v is not None)
    raise UnsupportedError(
        f"Constant: only tensor, float(s) and int(s) values are supported, got {set_names}"
    )


@register("ConstantOfShape", (9, 20, 21, 23, 24, 25))
def constant_of_shape(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """A tensor of shape ``input`` filled with the one-element ``value`` (default float32 0)."""
    value = attrs.get("value")
    value = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value)
    _plain("ConstantOfShape", value)
    if value.size != 1:
        raise ModelError(f"ConstantOfShape: value must have one element, got shape {value.shape}")
    return [np.full(int_list(inputs[0]), value.reshape(()), dtype=value.dtype)]


@register("Expand", (8, 13))
def expand(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Broadcast the input against ``shape`` (multidirectionally, so 1s in shape keep input dims)."""
    x, dims = inputs[0], tuple(int_list(inputs[1]))
    try:
        return [np.array(np.broadcast_to(x, np.broadcast_shapes(x.shape, dims)))]
    except ValueError as err:
        raise ModelError(
            f"Expand: input of shape {x.shape} does not broadcast with shape {list(dims)}"
        ) from err


@register("Range", (11, 27))
def range_(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """start + i * delta for i < max(ceil((limit - start) / delta), 0)."""
    start, limit, delta = inputs[0], inputs[1], inputs[2]
    _plain("Range", start, limit, delta)
    if delta == 0:
        raise ModelError("Range: delta must be non-zero")
    count = max(int(np.ceil((float(limit) - float(start)) / float(delta))), 0)
    if start.dtype.kind in "iu":
        count = max(-(-(int(limit) - int(start)) // int(delta)), 0)
    return [(start + np.arange(count, dtype=np.int64) * delta).astype(start.dtype)]


@register("Equal", (7, 11, 13, 19))
def equal(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Elementwise A == B with broadcasting, as bool."""
    a, b = inputs[0], inputs[1]
    _plain("Equal", a, b)
    return [np.equal(a, b)]


@register("Where", (9, 16))
def where(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """X where condition is true, else Y, with broadcasting."""
    return [np.where(inputs[0], inputs[1], inputs[2])]
