"""Data-movement ops: Flatten, Reshape, Transpose, Concat, Split, Identity, Dropout, Unsqueeze, Squeeze.

None of them computes; they move or relabel elements. Dropout is the inference form only.
"""

from __future__ import annotations

from math import prod

import numpy as np

from circuits.errors import ModelError, UnsupportedError

from ._args import Attrs, Inputs, axes, axis, int_list, optional
from .registry import register


@register("Flatten", (1, 9, 11, 13, 21, 23, 24, 25))
def flatten(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Reshape to 2-D (prod(shape[:axis]), prod(shape[axis:])); axis may equal the rank."""
    x = inputs[0]
    ax = int(attrs["axis"])
    if not -x.ndim <= ax <= x.ndim:
        raise ModelError(f"Flatten: axis {ax} is out of range for a tensor of rank {x.ndim}")
    ax = ax + x.ndim if ax < 0 else ax
    return [x.reshape(prod(x.shape[:ax]), prod(x.shape[ax:]))]


@register("Reshape", (5, 13, 14, 19, 21, 23, 24, 25))
def reshape(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Reshape to the ``shape`` input: 0 copies the input dim (unless allowzero), -1 is inferred."""
    x, shape = inputs[0], int_list(inputs[1])
    allow_zero = bool(attrs.get("allowzero", 0))
    dims: list[int] = []
    for i, s in enumerate(shape):
        if s == 0 and not allow_zero:
            if i >= x.ndim:
                raise ModelError(f"Reshape: shape {shape} copies dim {i} of an input of rank {x.ndim}")
            s = x.shape[i]
        elif s < -1:
            raise ModelError(f"Reshape: invalid dimension {s} in shape {shape}")
        dims.append(s)
    if dims.count(-1) > 1:
        raise ModelError(f"Reshape: shape {shape} has more than one -1")
    if -1 in dims:
        known = prod(d for d in dims if d != -1)
        if known == 0 or x.size % known:
            raise ModelError(f"Reshape: cannot infer -1 in {shape} for an input of shape {x.shape}")
        dims[dims.index(-1)] = x.size // known
    if prod(dims) != x.size:
        raise ModelError(f"Reshape: input of shape {x.shape} cannot take shape {dims}")
    return [x.reshape(dims)]


@register("Transpose", (1, 13, 21, 23, 24, 25))
def transpose(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Permute axes by ``perm`` (default: reverse them)."""
    x = inputs[0]
    perm = attrs.get("perm")
    if perm is None or (len(perm) == 0 and x.ndim):
        return [np.transpose(x)]
    if sorted(int(p) for p in perm) != list(range(x.ndim)):
        raise ModelError(f"Transpose: perm={list(perm)} is not a permutation of {x.ndim} axes")
    return [np.transpose(x, [int(p) for p in perm])]


@register("Concat", (4, 11, 13))
def concat(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Join the inputs along ``axis``."""
    parts = [a for a in inputs if a is not None]
    ax = axis("Concat", int(attrs["axis"]), parts[0].ndim)
    try:
        return [np.concatenate(parts, axis=ax)]
    except ValueError as err:
        shapes = ", ".join(str(a.shape) for a in parts)
        raise ModelError(f"Concat: shapes {shapes} do not concatenate on axis {ax}") from err


def split_sizes(inputs: Inputs, attrs: Attrs, version: int, length: int) -> list[int]:
    """Split's part sizes on an axis of ``length``: ``split`` (an attribute before v13, an input from
    v13), else ``num_outputs`` parts of ceil(length/num_outputs), the last one shorter (v18; the
    importer records the node's output count as ``num_outputs`` for the older equal split)."""
    given = int_list(optional(inputs, 1)) if version >= 13 else int_list(attrs.get("split"))
    if given:
        if any(s < 0 for s in given):
            raise ModelError(f"Split: split sizes {given} include a negative size; each must be >= 0")
        if sum(given) != length:
            raise ModelError(f"Split: split sizes {given} sum to {sum(given)}, but the axis has length {length}; "
                             "they must add up to it")
        return given
    parts = attrs.get("num_outputs")
    if parts is None or int(parts) < 1:
        raise ModelError("Split: neither split sizes nor num_outputs say how to split")
    parts = int(parts)
    if version < 18 and length % parts:
        raise ModelError(f"Split: an axis of length {length} does not split into {parts} equal parts")
    chunk = -(-length // parts)
    return [max(0, min(chunk, length - k * chunk)) for k in range(parts)]


def implied_attributes(op: str, attrs: Attrs, outputs: int) -> dict:
    """``attrs`` plus what ONNX leaves to the node's arity: Split's equal parts before v18 are as
    many as its outputs (recorded as ``num_outputs``, the v18 attribute). Importer and tests use this."""
    out = dict(attrs)
    if op == "Split" and out.get("num_outputs") is None:
        out["num_outputs"] = outputs
    return out


@register("Split", (2, 11, 13, 18))
def split(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Cut the input along ``axis`` into consecutive parts (`split_sizes`)."""
    x = inputs[0]
    ax = axis("Split", int(attrs.get("axis", 0)), x.ndim)
    ends = np.cumsum(split_sizes(inputs, attrs, version, x.shape[ax]))[:-1]
    return list(np.split(x, ends, axis=ax))


@register("Identity", (1, 13, 14, 16, 19, 21, 23, 24, 25))
def identity(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """The input itself (tensors only)."""
    return [inputs[0]]


@register("Dropout", (7, 10, 12, 13, 22))
def dropout(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Inference dropout: [x, mask of ones]; training with a non-zero ratio is unsupported."""
    x = inputs[0]
    if version >= 12:
        ratio_in, training_in = optional(inputs, 1), optional(inputs, 2)
        ratio = 0.5 if ratio_in is None else float(ratio_in)
        training = training_in is not None and bool(training_in)
        if training and ratio > 0:
            raise UnsupportedError(
                f"Dropout: training_mode=True with ratio={ratio} is not supported; "
                "Kelvin evaluates inference graphs only"
            )
    mask = np.ones(x.shape, dtype=x.dtype if version < 10 else np.bool_)
    return [x, mask]


def _axes_arg(op: str, inputs: Inputs, attrs: Attrs, version: int) -> list[int] | None:
    """The ``axes`` of Unsqueeze/Squeeze: an attribute before v13, an optional input from v13."""
    return int_list(optional(inputs, 1)) if version >= 13 else int_list(attrs.get("axes"))


@register("Unsqueeze", (1, 11, 13, 21, 23, 24, 25))
def unsqueeze(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Insert size-1 axes at ``axes`` (indices into the output shape)."""
    x = inputs[0]
    given = _axes_arg("Unsqueeze", inputs, attrs, version)
    if not given:
        raise ModelError("Unsqueeze: axes are required")
    new = axes("Unsqueeze", given, x.ndim + len(given))
    return [np.expand_dims(x, new)]


@register("Squeeze", (1, 11, 13, 21, 23, 24, 25))
def squeeze(inputs: Inputs, attrs: Attrs, version: int) -> list[np.ndarray]:
    """Remove the size-1 axes ``axes`` (all size-1 axes when none are given)."""
    x = inputs[0]
    given = _axes_arg("Squeeze", inputs, attrs, version)
    if not given:
        return [np.squeeze(x)]
    drop = axes("Squeeze", given, x.ndim)
    if any(x.shape[a] != 1 for a in drop):
        raise ModelError(f"Squeeze: axes {given} of shape {x.shape} are not all of size 1")
    return [np.squeeze(x, axis=drop)]
