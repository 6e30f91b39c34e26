"""Map network ops onto a target's analog primitives (circuits.targets).

Each op is classified into a role (linear, relu, affine, max, ...) with the parameters the
primitive needs. Roles the target builds become PrimitiveNodes; everything else stays an
OpNode: wiring ops are wires, the rest run in the digital periphery and are reported so.

Attention. A product of two activations (Q·Kᵀ, attention×V) has no fixed weights to store, so
it maps to analog multipliers: ``opamp.matmul`` (ActivationMatMul) puts one offset log/exp
multiplier on every term (3 op-amps, 3 NPNs, 2 capacitors, 10 resistors) and sums the
terms' currents on one output stage per element (see ActivationMatMul.devices). A sequence
of T tokens with head width d costs 2·T²·d multipliers per head (T²·d for each product):
256 for T = 4, d = 8. The other option, crossbars
reprogrammed per input, was rejected: programming PCM conductances takes iterative
program-and-verify pulses (microseconds to milliseconds per device) and wears the devices
out (10⁶–10⁸ cycles), which a per-token rewrite would exhaust. Ops with no analog circuit
(LayerNormalization, Sqrt, Erf, Gelu, Where with a mask) stay in the digital periphery;
x² (Pow 2) becomes a multiplier and ReduceSum a summer.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from circuits.base import Primitive
from circuits.errors import KelvinError
from circuits.targets import Target, get_target
from compiler.ir import Graph, OpNode, PrimitiveNode
from compiler.ops.reduce import reduce_axes
from compiler.passes.linear import dense_params

log = logging.getLogger(__name__)

Role = tuple[str, dict[str, Any], list[str]]
"""(role, primitive parameters, signal inputs)."""


class MapToPrimitives:
    """Replace every op a target can build in analog with a PrimitiveNode holding that primitive."""

    name = "map-to-primitives"

    def __init__(self, target: str | Target = "opamp") -> None:
        self.target = get_target(target) if isinstance(target, str) else target
        self.name = f"map-to-{self.target.name}"

    def run(self, g: Graph) -> bool:
        changed = False
        for node in g.nodes:
            if not isinstance(node, OpNode) or node.name not in g:
                continue
            role = classify(g, node)
            if role is None:
                continue
            kind, params, inputs = role
            cls = self.target.primitive_for(kind)
            if cls is None:
                log.debug("%s: no %s primitive for %s (%s); stays digital", self.target.name, kind,
                          node.name, node.op)
                continue
            outputs, origin = list(node.outputs), (node.name,)
            if kind == "linear" and self.target.fuse_rectifier:
                relu = _sole_relu_consumer(g, node)
                if relu is not None:
                    params["rectify"] = True
                    outputs, origin = list(relu.outputs), (node.name, relu.name)
                    g.remove(relu)
            try:
                primitive: Primitive = cls(**params)
            except KelvinError as exc:
                log.debug("%s: cannot build %s for %s: %s", self.target.name, kind, node.name, exc)
                continue
            copies, lanes = _copies_and_lanes(g, kind, inputs[0], outputs[0])
            reuse = 1
            if not self.target.unroll_positions:
                copies, reuse = 1, copies
                if kind != "linear":  # elementwise on a feature map: one lane per channel, once per position
                    lanes, reuse = _channels_and_positions(g, outputs[0], lanes)
            new = PrimitiveNode(name=node.name, inputs=inputs, outputs=outputs, primitive=primitive,
                                target=self.target.name, copies=copies, lanes=lanes, reuse=reuse,
                                origin=origin)
            g.replace(node, [new])
            changed = True
        if changed:
            g.prune_constants()
        return changed


def _sole_relu_consumer(g: Graph, node: OpNode) -> OpNode | None:
    out = node.outputs[0]
    users = g.consumers(out)
    if len(users) == 1 and out not in g.outputs:
        u = users[0]
        if isinstance(u, OpNode) and u.op == "Relu":
            return u
    return None


def _copies_and_lanes(g: Graph, role: str, x: str, y: str) -> tuple[int, int]:
    """Linear banks are copied per leading position; elementwise banks count output elements."""
    if role == "linear":
        shape = g.shape(x)
        w_rank = 1  # Dense reduces the last axis; grouped Dense also keeps the group axis
        if shape is None:
            return 1, 1
        lead = shape[1:-w_rank]
        producer = g.producer(x)
        if isinstance(producer, OpNode) and producer.op == "kelvin.Im2Col":
            lead = shape[1:-2]
        return (_prod(lead), 1) if lead else (1, 1)
    shape = g.shape(y)
    return 1, (_prod(shape[1:]) if shape else 1)


def _channels_and_positions(g: Graph, y: str, lanes: int) -> tuple[int, int]:
    """(channels, positions) of an N×C×spatial output, so a time-multiplexed target builds one circuit per
    channel and uses it once per position (as its convolutions are); (lanes, 1) for other shapes."""
    shape = g.shape(y)
    if shape is None or len(shape) < 3 or not isinstance(shape[1], int):
        return lanes, 1
    positions = _prod(shape[2:])
    return (shape[1], positions) if shape[1] * positions == lanes else (lanes, 1)


def _prod(dims) -> int:
    total = 1
    for d in dims:
        if not isinstance(d, int):
            return 1
        total *= d
    return total


def _const(g: Graph, t: str) -> np.ndarray | None:
    return g.constants.get(t) if t else None


def classify(g: Graph, node: OpNode) -> Role | None:
    """The role an op plays, or None if it is wiring or cannot be built (dynamic parameters)."""
    handler = _CLASSIFIERS.get(node.op)
    return None if handler is None else handler(g, node)


def _dense(g: Graph, n: OpNode) -> Role:
    w, b = dense_params(g, n)
    return "linear", {"weights": w, "bias": b}, [n.inputs[0]]


def _simple(role: str, **params: Any):
    return lambda g, n: (role, dict(params), [n.inputs[0]])


def _leaky(g: Graph, n: OpNode) -> Role:
    return "leaky_relu", {"negative_slope": float(n.attrs.get("alpha", 0.01))}, [n.inputs[0]]


def _clip(g: Graph, n: OpNode) -> Role | None:
    if n.version < 11:
        lo, hi = float(n.attrs.get("min", -np.inf)), float(n.attrs.get("max", np.inf))
    else:
        bounds = []
        for i in (1, 2):
            t = n.inputs[i] if len(n.inputs) > i else ""
            if t and t not in g.constants:
                return None
            bounds.append(float(g.constants[t]) if t else None)
        lo = -np.inf if bounds[0] is None else bounds[0]
        hi = np.inf if bounds[1] is None else bounds[1]
    return "clip", {"low": lo, "high": hi}, [n.inputs[0]]


def _softmax(g: Graph, n: OpNode) -> Role | None:
    shape = g.shape(n.inputs[0])
    if shape is None:
        return None
    rank = len(shape)
    axis = int(n.attrs.get("axis", -1 if n.version >= 13 else 1)) % rank
    axes = (axis,) if n.version >= 13 else tuple(range(axis, rank))
    return "softmax", {"axes": tuple(a - rank for a in axes)}, [n.inputs[0]]


def _affine(inputs: list[str], signs: list[float], g: Graph) -> Role | None:
    """Σ signᵢ·xᵢ with constants folded into the bias."""
    gains, signals, bias = [], [], None
    for t, s in zip(inputs, signs):
        c = _const(g, t)
        if c is None:
            gains.append(s)
            signals.append(t)
        else:
            term = s * c.astype(np.float64)
            bias = term if bias is None else bias + term
    if not signals:
        return None
    return "affine", {"gains": tuple(gains), "bias": bias}, signals


def _add(g: Graph, n: OpNode) -> Role | None:
    return _affine(list(n.inputs), [1.0, 1.0], g)


def _sub(g: Graph, n: OpNode) -> Role | None:
    return _affine(list(n.inputs), [1.0, -1.0], g)


def _sum(g: Graph, n: OpNode) -> Role | None:
    return _affine(list(n.inputs), [1.0] * len(n.inputs), g)


def _mul(g: Graph, n: OpNode) -> Role | None:
    a, b = n.inputs
    ca, cb = _const(g, a), _const(g, b)
    if ca is None and cb is None:
        return "mul", {}, [a, b]
    signal, c = (a, cb) if cb is not None else (b, ca)
    return "affine", {"gains": (c.astype(np.float64),), "bias": None}, [signal]


def _div(g: Graph, n: OpNode) -> Role | None:
    a, b = n.inputs
    cb = _const(g, b)
    if cb is not None:
        if not np.all(cb != 0):
            return None
        return "affine", {"gains": (1.0 / cb.astype(np.float64),), "bias": None}, [a]
    return "div", {}, [a, b]


def _batchnorm(g: Graph, n: OpNode) -> Role | None:
    params = [_const(g, t) for t in n.inputs[1:5]]
    shape = g.shape(n.inputs[0])
    if any(p is None for p in params) or shape is None or n.attrs.get("training_mode", 0):
        return None
    if n.attrs.get("spatial", 1) != 1:
        return None
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    s = gamma / np.sqrt(var + float(n.attrs.get("epsilon", 1e-5)))
    bshape = (-1,) + (1,) * (len(shape) - 2)
    return "affine", {"gains": (s.reshape(bshape),), "bias": (beta - mean * s).reshape(bshape)}, [n.inputs[0]]


def _matmul(g: Graph, n: OpNode) -> Role | None:
    """Activation × activation (weights became Dense earlier); needs the inner size for its bill."""
    if any(t in g.constants for t in n.inputs):
        return None
    shape = g.shape(n.inputs[0])
    if not shape or not isinstance(shape[-1], int):
        return None
    return "matmul", {"inner": shape[-1]}, list(n.inputs)


def _pow(g: Graph, n: OpNode) -> Role | None:
    """x² is a multiplier with both inputs tied together; other powers stay digital."""
    e = _const(g, n.inputs[1])
    if e is None or e.size != 1 or float(e.reshape(())) != 2.0:
        return None
    return "mul", {}, [n.inputs[0], n.inputs[0]]


def _reduce_sum(g: Graph, n: OpNode) -> Role | None:
    """Σ over per-sample axes known at compile time: an averaging summer with gain 1."""
    shape = g.shape(n.inputs[0])
    given = n.inputs[1] if len(n.inputs) > 1 else ""
    if shape is None or (given and given not in g.constants):
        return None
    axes = reduce_axes(n.op, [None, _const(g, given)], n.attrs, len(shape), n.version >= 13)
    if not axes or 0 in axes:
        return None
    rank = len(shape)
    return "average", {"axes": tuple(a - rank for a in axes), "gain": 1.0,
                       "window": _window(g, n.inputs[0], axes),
                       "keepdims": bool(n.attrs.get("keepdims", 1))}, [n.inputs[0]]


def _window_max(g: Graph, n: OpNode) -> Role:
    axes = tuple(n.attrs["axes"])
    return "max", {"axes": axes, "window": _window(g, n.inputs[0], axes),
                   "keepdims": bool(n.attrs.get("keepdims", 1))}, [n.inputs[0]]


def _window_sum(g: Graph, n: OpNode) -> Role | None:
    gain = _const(g, n.inputs[1])
    if gain is None:
        return None
    axes = tuple(n.attrs["axes"])
    return "average", {"axes": axes, "gain": gain, "window": _window(g, n.inputs[0], axes),
                       "keepdims": bool(n.attrs.get("keepdims", 1))}, [n.inputs[0]]


def _window(g: Graph, x: str, axes: tuple[int, ...]) -> int:
    shape = g.shape(x)
    return _prod([shape[a] for a in axes]) if shape else 1


_CLASSIFIERS = {
    "kelvin.Dense": _dense,
    "Relu": _simple("relu"),
    "LeakyRelu": _leaky,
    "Sigmoid": _simple("sigmoid", function="sigmoid"),
    "Tanh": _simple("tanh", function="tanh"),
    "Exp": _simple("exp"),
    "Log": _simple("log"),
    "Clip": _clip,
    "Softmax": _softmax,
    "Add": _add,
    "Sub": _sub,
    "Sum": _sum,
    "Mul": _mul,
    "Div": _div,
    "BatchNormalization": _batchnorm,
    "MatMul": _matmul,
    "Pow": _pow,
    "ReduceSum": _reduce_sum,
    "kelvin.WindowMax": _window_max,
    "kelvin.WindowSum": _window_sum,
}


def has_analog_role(kind: str) -> bool:
    """Whether an op of ``kind`` can become an analog primitive on some target (its role classifier)."""
    return kind in _CLASSIFIERS
