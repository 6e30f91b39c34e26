"""Every kernel, ONNX-op gradient and whole network against float64 central finite differences."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from circuits import PRIMITIVES, current, opamp
from circuits.crossbar import CrossbarArray
from compiler.onnx_import import import_model
from compiler.pipeline import compile_model
from sim.engine.kernels import KERNELS
from sim.engine.program import Program

RTOL = 1e-6
rng = np.random.default_rng(0)


def _w(*shape):
    return rng.standard_normal(shape)


def _pos(*shape):
    return rng.uniform(0.5, 2.0, shape)


# kind -> (primitive, input arrays): inputs away from kinks so finite differences are exact
CASES = {
    "opamp.summer": (lambda: opamp.InvertingSummerArray(_w(3, 4), _w(3)), lambda: [_w(5, 4)]),
    "opamp.elementwise_summer": (lambda: opamp.ElementwiseSummer((0.5, _w(4)), _w(4)), lambda: [_w(5, 4), _w(5, 4)]),
    "opamp.rectifier": (lambda: opamp.PrecisionRectifier(0.1), lambda: [_w(5, 4)]),
    "opamp.clipper": (lambda: opamp.Clipper(-0.5, 0.5), lambda: [_w(5, 4)]),
    "opamp.diffpair": (lambda: opamp.DiffPairActivation("tanh"), lambda: [_w(5, 4)]),
    "opamp.log": (lambda: opamp.LogAmp(), lambda: [_pos(5, 4)]),
    "opamp.exp": (lambda: opamp.AntilogAmp(), lambda: [_w(5, 4)]),
    "opamp.multiplier": (lambda: opamp.LogExpMultiplier(), lambda: [_w(5, 4), _w(4)]),
    "opamp.divider": (lambda: opamp.LogExpDivider(), lambda: [_w(5, 4), _pos(5, 4)]),
    "opamp.matmul": (lambda: opamp.ActivationMatMul(inner=3), lambda: [_w(2, 4, 3), _w(2, 3, 5)]),
    "opamp.softmax": (lambda: opamp.SoftmaxUnit((-1,)), lambda: [_w(5, 4)]),
    "opamp.max": (lambda: opamp.MaxSelector((-1,), window=4), lambda: [_w(5, 3, 4)]),
    "opamp.average": (lambda: opamp.AveragingSummer((-1,), 0.25, window=4), lambda: [_w(5, 3, 4)]),
    "opamp.integrator": (lambda: opamp.Integrator(1e-3, 0.2, 1e-4), lambda: [_w(3, 7)]),
    "opamp.differentiator": (lambda: opamp.Differentiator(1e-3, 1e-4), lambda: [_w(3, 7)]),
    "current.synapse_array": (lambda: current.SynapseArray(_w(3, 4), _w(3) + 3.0, rectify=True), lambda: [_pos(5, 4)]),
    "current.neuron": (lambda: current.CurrentNeuron(), lambda: [_w(5, 4)]),
    "current.junction": (lambda: current.CurrentJunction((1.0, 2.0), 0.5), lambda: [_w(5, 4), _w(5, 4)]),
    "current.wta": (lambda: current.WinnerTakeAll((-1,), window=4), lambda: [_w(5, 3, 4)]),
    "current.average": (lambda: current.MirrorAverage((-1,), 0.25, window=4), lambda: [_w(5, 3, 4)]),
    "current.softmax": (lambda: current.SoftmaxNormalizer((-1,)), lambda: [_w(5, 4)]),
    "crossbar.tiles": (lambda: CrossbarArray(_w(2, 3, 4), _w(2, 3)), lambda: [_w(5, 2, 4)]),
}


def test_every_kernel_has_a_case_and_every_primitive_a_kernel():
    assert set(PRIMITIVES) <= set(KERNELS)
    assert set(KERNELS) <= set(CASES)


def _fd_check(f, arrays: list[np.ndarray], analytic: list[np.ndarray], eps=1e-6, samples=12):
    """Compare analytic gradients with central differences at a few random entries of each array."""
    for a, g in zip(arrays, analytic):
        assert g is not None and g.shape == a.shape
        idx = rng.choice(a.size, size=min(samples, a.size), replace=False)
        for i in idx:
            old = a.flat[i]
            a.flat[i] = old + eps
            up = f()
            a.flat[i] = old - eps
            dn = f()
            a.flat[i] = old
            num = (up - dn) / (2 * eps)
            assert num == pytest.approx(g.flat[i], rel=RTOL, abs=RTOL * max(1.0, abs(num))), (i, num, g.flat[i])


@pytest.mark.parametrize("kind", sorted(CASES))
def test_kernel_gradient(kind):
    make_prim, make_x = CASES[kind]
    prim = make_prim()
    xs = make_x()
    k = KERNELS[kind]
    p = {n: np.array(v, dtype=np.float64) for n, v in prim.parameters().items()}
    y, saved = k.forward(prim, p, xs, True)
    r = rng.standard_normal(y.shape)
    gxs, gp = k.backward(prim, p, saved, r)

    def loss():
        return float(np.sum(k.forward(prim, p, xs, False)[0] * r))

    _fd_check(loss, xs, gxs)
    _fd_check(loss, [p[n] for n in p], [gp[n] for n in p])
    assert np.allclose(y, prim.ideal(*xs)), "the kernel and the primitive's ideal are one statement"


def _single_op_model(op, inputs, attrs=None, consts=None, opset=17):
    """A one-node ONNX model with float64 inputs ``inputs`` {name: shape} and constant inputs."""
    consts = consts or {}
    names = list(inputs) + list(consts)
    node = helper.make_node(op, names, ["y"], **(attrs or {}))
    inits = [onnx.numpy_helper.from_array(v, k) for k, v in consts.items()]
    ins = [helper.make_tensor_value_info(n, TensorProto.DOUBLE, s) for n, s in inputs.items()]
    probe = helper.make_model(helper.make_graph([node], "g", ins, [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [])],
                                                inits), opset_imports=[helper.make_opsetid("", opset)])
    y = ReferenceEvaluator(probe).run(None, {n: np.zeros(s) for n, s in inputs.items()})[0]
    graph = helper.make_graph([node], "g", ins, [helper.make_tensor_value_info("y", TensorProto.DOUBLE, y.shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


OP_CASES = [
    ("Relu", {"x": (3, 4)}, {}, {}),
    ("LeakyRelu", {"x": (3, 4)}, {"alpha": 0.2}, {}),
    ("Sigmoid", {"x": (3, 4)}, {}, {}),
    ("Tanh", {"x": (3, 4)}, {}, {}),
    ("Exp", {"x": (3, 4)}, {}, {}),
    ("Softmax", {"x": (3, 4)}, {"axis": 0}, {}),
    ("Sqrt", {"x": (3, 4)}, {}, {}),
    ("Abs", {"x": (3, 4)}, {}, {}),
    ("Neg", {"x": (3, 4)}, {}, {}),
    ("Elu", {"x": (3, 4)}, {"alpha": 0.7}, {}),
    ("Selu", {"x": (3, 4)}, {}, {}),
    ("Softplus", {"x": (3, 4)}, {}, {}),
    ("Softsign", {"x": (3, 4)}, {}, {}),
    ("HardSigmoid", {"x": (3, 4)}, {"alpha": 0.4}, {}),
    ("HardSwish", {"x": (3, 4)}, {}, {}),
    ("PRelu", {"x": (3, 4)}, {}, {"s": rng.uniform(0.05, 0.5, 4)}),
    ("Pow", {"a": (3, 4), "b": (4,)}, {}, {}),
    ("Pow", {"a": (3, 4)}, {}, {"e": np.array(2.5)}),
    ("Erf", {"x": (3, 4)}, {}, {}),
    ("Gelu", {"x": (3, 4)}, {}, {}),
    ("Gelu", {"x": (3, 4)}, {"approximate": "tanh"}, {}),
    ("LayerNormalization", {"x": (2, 3, 4)}, {"axis": -1}, {"g": rng.standard_normal(4), "b": rng.standard_normal(4)}),
    ("LayerNormalization", {"x": (2, 3, 4)}, {"axis": 1}, {"g": rng.standard_normal((3, 4))}),
    ("ReduceSum", {"x": (2, 3, 4)}, {"keepdims": 0}, {"ax": np.array([1], np.int64)}),
    ("ReduceMean", {"x": (2, 3, 4)}, {"axes": [0, 2]}, {}),
    ("LogSoftmax", {"x": (3, 4)}, {"axis": 0}, {}),
    ("LogSoftmax", {"x": (2, 3, 4)}, {"axis": -1}, {}),
    ("Add", {"a": (3, 4), "b": (4,)}, {}, {}),
    ("Sub", {"a": (3, 4), "b": (3, 1)}, {}, {}),
    ("Mul", {"a": (3, 4), "b": (4,)}, {}, {}),
    ("Div", {"a": (3, 4)}, {}, {"b": np.array([1.5, 2.0, -1.2, 3.0])}),
    ("MatMul", {"a": (2, 3, 4), "b": (4, 5)}, {}, {}),
    ("Transpose", {"x": (2, 3, 4)}, {"perm": [2, 0, 1]}, {}),
    ("Reshape", {"x": (2, 3, 4)}, {}, {"s": np.array([6, 4], np.int64)}),
    ("Flatten", {"x": (2, 3, 4)}, {"axis": 1}, {}),
    ("Concat", {"a": (2, 3), "b": (2, 2)}, {"axis": 1}, {}),
    ("Slice", {"x": (4, 6)}, {}, {"st": np.array([1, 0], np.int64), "en": np.array([3, 5], np.int64),
                                   "ax": np.array([0, 1], np.int64), "sp": np.array([1, 2], np.int64)}),
    ("Gather", {"x": (5, 3)}, {"axis": 0}, {"i": np.array([4, 0, 4], np.int64)}),
    ("MaxPool", {"x": (1, 2, 5, 5)}, {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 1]}, {}),
    ("AveragePool", {"x": (1, 2, 4, 4)}, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, {}),
    ("GlobalAveragePool", {"x": (2, 3, 4, 4)}, {}, {}),
    ("Conv", {"x": (1, 2, 5, 5)}, {"pads": [1, 1, 1, 1], "strides": [2, 1]},
     {"w": rng.standard_normal((3, 2, 3, 3)), "b": rng.standard_normal(3)}),
]


POSITIVE = {"Sqrt", "Pow"}  # ops whose real domain is x > 0 (fractional powers)


@pytest.mark.parametrize("op, inputs, attrs, consts", OP_CASES, ids=[c[0] for c in OP_CASES])
def test_op_gradient_through_program(op, inputs, attrs, consts):
    """Ops as imported (and, for Conv/pools, as lowered to primitives) against finite differences."""
    model = _single_op_model(op, inputs, attrs, consts, opset=20 if op == "Gelu" else 17)
    lowered = ("Conv", "MaxPool", "AveragePool")  # always lowered by the pipeline: checked as lowered
    graphs = [] if op in lowered else [import_model(model)]
    if op in lowered + ("MatMul", "GlobalAveragePool"):
        graphs.append(compile_model(model, target="opamp").graph)
    for g in graphs:
        prog = Program(g, dtype=np.float64)
        feeds = {n: rng.uniform(0.5, 2.0, s) if op in POSITIVE else rng.standard_normal(s) for n, s in inputs.items()}
        out, tape = prog.forward(feeds, train=True)
        r = rng.standard_normal(out["y"].shape)
        grads = prog.backward(tape, {"y": r}, input_grads=True)

        def loss():
            return float(np.sum(prog.run(feeds)["y"] * r))

        _fd_check(loss, [feeds[n] for n in inputs], [grads[f"input:{n}"] for n in inputs])
        if prog.params:
            keys = sorted(prog.params)
            _fd_check(loss, [prog.params[k] for k in keys], [grads[k] for k in keys])


@pytest.mark.parametrize("path, target", [
    ("models/examples/digits_mlp.onnx", "opamp"),
    ("models/examples/digits_mlp.onnx", "current"),
    ("models/examples/torch_cnn_legacy.onnx", "opamp"),
    ("models/examples/torch_cnn_dynamo.onnx", "crossbar"),
])
def test_whole_network_gradient(path, target):
    """MLP and small CNN: every parameter tensor's gradient of a softmax cross-entropy loss."""
    c = compile_model(path, target=target)
    prog = Program(c.graph, dtype=np.float64)
    name = c.graph.inputs[0]
    shape = [d if isinstance(d, int) else 3 for d in c.graph.shape(name)]
    x = rng.uniform(0, 1, shape)
    out_name = c.graph.outputs[0]
    n_out = c.graph.shape(c.graph.outputs[0])[-1]
    labels = rng.integers(0, n_out, shape[0])

    def loss_and_grad(train):
        out, tape = prog.forward({name: x}, train=train)
        z = out[out_name]
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(len(labels)), labels]).sum()
        if not train:
            return loss
        g = p.copy()
        g[np.arange(len(labels)), labels] -= 1
        return loss, prog.backward(tape, {out_name: g})

    _, grads = loss_and_grad(True)
    keys = sorted(prog.params)
    assert keys and set(grads) == set(keys)
    _fd_check(lambda: loss_and_grad(False), [prog.params[k] for k in keys], [grads[k] for k in keys], samples=4)


def test_celu_gradient_against_its_forward():
    """Celu's schema (v12) takes float only, so the float64 models above cannot hold it: its
    backward is checked on the op's own forward directly."""
    from compiler.ops import lookup
    from sim.engine.ops import OP_GRADS
    fwd = lookup("Celu", 12).kernel
    x = rng.standard_normal((3, 4))
    attrs = {"alpha": 1.3}
    r = rng.standard_normal(x.shape)
    g = OP_GRADS["Celu"]([x], fwd([x], attrs, 12), attrs, 12, r)[0]
    _fd_check(lambda: float(np.sum(fwd([x], attrs, 12)[0] * r)), [x], [g])


@pytest.mark.parametrize("attrs", [{}, {"transA": 1, "alpha": 0.5}, {"transB": 1, "beta": 2.0}])
def test_gemm_of_two_signals_has_its_gradient(attrs):
    """A Gemm whose both factors are signals (attention-like) stays an op: its backward against
    finite differences, through a Program."""
    a_shape = (4, 3) if attrs.get("transA") else (3, 4)
    b_shape = (5, 4) if attrs.get("transB") else (4, 5)
    nodes = [helper.make_node("Gemm", ["a", "b", "c"], ["y"], **attrs)]
    ins = [helper.make_tensor_value_info(n, TensorProto.DOUBLE, s) for n, s in (("a", a_shape), ("b", b_shape),
                                                                                 ("c", (5,)))]
    model = helper.make_model(helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info("y", TensorProto.DOUBLE,
                                                                                                 (3, 5))]),
                              opset_imports=[helper.make_opsetid("", 13)])
    prog = Program(import_model(model), dtype=np.float64)
    feeds = {"a": rng.standard_normal(a_shape), "b": rng.standard_normal(b_shape), "c": rng.standard_normal(5)}
    out, tape = prog.forward(feeds, train=True)
    r = rng.standard_normal(out["y"].shape)
    grads = prog.backward(tape, {"y": r}, input_grads=True)
    _fd_check(lambda: float(np.sum(prog.run(feeds)["y"] * r)), list(feeds.values()),
              [grads[f"input:{n}"] for n in feeds])
