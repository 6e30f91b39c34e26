"""The engine's inference fast paths for windows: convolutions without an im2col (shifted GEMMs), in
chunks of gathered rows, max pools without a gather, rectifiers and sums written in place."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from compiler.ops._window import (
    conv2d_gathered, conv2d_shifted, geometry, im2col_2d, max_pool_2d, shifted_conv_pays, windows,
)
from compiler.pipeline import compile_model
from sim.engine.prepare import HardwareOptions, build_program
from sim.engine.program import Program

# (N, C, H, W, Cout, kernel, pads, strides, dilations)
CASES = [
    (2, 5, 7, 6, 4, (3, 3), (1, 1, 1, 1), (1, 1), (1, 1)),
    (1, 20, 6, 9, 7, (3, 3), (0, 0, 0, 0), (1, 1), (1, 1)),
    (3, 17, 8, 5, 3, (3, 2), (2, 0, 1, 1), (1, 1), (2, 1)),
    (2, 16, 5, 5, 6, (1, 1), (0, 0, 0, 0), (1, 1), (1, 1)),
    (2, 18, 9, 8, 5, (3, 3), (1, 1, 1, 1), (2, 2), (1, 1)),
    (1, 3, 12, 11, 4, (7, 7), (3, 3, 3, 3), (2, 2), (1, 1)),
]


def _reference(x, w, b, win):
    cols = im2col_2d(x.astype(np.float64), win, 0.0)
    return cols @ w.reshape(w.shape[0], -1).T.astype(np.float64) + b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_shifted_and_gathered_convolutions_equal_the_im2col_product(case, dtype):
    n, c, h, w_, cout, k, pads, strides, dil = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w_)).astype(dtype)
    w = rng.standard_normal((cout, c, *k)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    win = geometry("Conv", (h, w_), k, {"pads": list(pads), "strides": list(strides), "dilations": list(dil)})
    ref = _reference(x, w, b, win)
    tol = (1e-5 if dtype == np.float32 else 1e-12) * np.abs(ref).max()
    got = conv2d_gathered(x, w.reshape(cout, -1), b, win, 0.0, taps_first=False)
    assert got.dtype == dtype and np.abs(got - ref).max() <= tol
    tf = w.transpose(0, 2, 3, 1).reshape(cout, -1)
    got = conv2d_gathered(x, tf, None, win, 0.0, taps_first=True)
    assert np.abs(got + b - ref).max() <= tol
    if strides == (1, 1):
        taps = np.ascontiguousarray(w.reshape(cout, c, -1).transpose(2, 0, 1))
        for xin in (x, np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)):  # NCHW, NHWC memory
            for bias in (b, None):
                got = conv2d_shifted(xin, taps, bias, win, 0.0)
                assert got.dtype == dtype and got.shape == ref.shape
                assert np.abs(got + (0 if bias is not None else b) - ref).max() <= tol
    else:
        with pytest.raises(ValueError, match="stride 1"):
            conv2d_shifted(x, w.reshape(cout, c, -1).transpose(2, 0, 1), b, win, 0.0)


def test_gathered_convolution_works_in_chunks(monkeypatch):
    """Several chunks of rows, the last one short, give the same product as one."""
    import compiler.ops._window as window
    n, c, h, cout = 3, 16, 7, 5
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    w = rng.standard_normal((cout, c * 9)).astype(np.float32)
    win = geometry("Conv", (h, h), (3, 3), {"pads": [1, 1, 1, 1]})
    whole = conv2d_gathered(x, w, None, win, 0.0, taps_first=False)
    monkeypatch.setattr(window, "GATHER_CHUNK_ROWS", 10)
    monkeypatch.setattr(window, "GATHER_CHUNK_BYTES", 1)
    assert np.abs(conv2d_gathered(x, w, None, win, 0.0, taps_first=False) - whole).max() <= 1e-5 * np.abs(whole).max()


def test_shifted_conv_pays_on_resnet18_layers_where_measured():
    def pays(size, channels, stride=1):
        win = geometry("Conv", (size, size), (3, 3), {"pads": [1] * 4, "strides": [stride] * 2})
        return shifted_conv_pays(win, (size, size), channels)
    assert pays(56, 64) and pays(28, 128)
    assert not pays(14, 256) and not pays(7, 512) and not pays(56, 128, stride=2)


@pytest.mark.parametrize("attrs", [{"pads": [1, 1, 1, 1], "strides": [2, 2]}, {"pads": [0, 1, 2, 0]},
                                   {"strides": [2, 1], "dilations": [1, 2]}])
def test_max_pool_2d_equals_the_max_over_gathered_windows(attrs):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 9, 8)).astype(np.float32)
    x[1, 2, 3, 4] = np.nan
    for ceil in (False, True):
        win = geometry("MaxPool", (9, 8), (3, 3), attrs, ceil_mode=ceil)
        ref = windows(x, win, -np.inf).max(axis=(-2, -1))
        got = max_pool_2d(x, win).reshape(2, *win.out_shape, 5).transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(got, ref)


def _cnn(c_in: int, width: int, wide: int) -> onnx.ModelProto:
    """conv 3×3 pads 1 → relu → conv 3×3 pads 1 + residual → relu → conv 3×3 pads 0 (``wide`` outputs)
    → max pool 3×3/2 pads 1, and a 1×1 conv; biases everywhere, a non-square image."""
    rng = np.random.default_rng(3)

    def conv(name, cin, cout, k):
        return [onnx.numpy_helper.from_array(rng.standard_normal((cout, cin, k, k)).astype(np.float32) * 0.3, name),
                onnx.numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32) * 0.1, name + "_b")]
    inits = conv("w1", c_in, width, 3) + conv("w2", width, width, 3) + conv("w3", width, wide, 3) + conv("w4", wide, 6, 1)
    nodes = [helper.make_node("Conv", ["x", "w1", "w1_b"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "w2_b"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "r1"], ["s"]),
             helper.make_node("Relu", ["s"], ["r2"]),
             helper.make_node("Conv", ["r2", "w3", "w3_b"], ["c3"], pads=[0, 0, 0, 0]),
             helper.make_node("MaxPool", ["c3"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["m", "w4", "w4_b"], ["y"])]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c_in, 11, 9])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return onnx.shape_inference.infer_shapes(m)


def _spy_paths(monkeypatch) -> list[str]:
    seen: list[str] = []
    orig = Program._conv_direct

    def spy(self, bank, x, gather, how, rng):
        seen.append(how)
        return orig(self, bank, x, gather, how, rng)
    monkeypatch.setattr(Program, "_conv_direct", spy)
    return seen


@pytest.mark.parametrize("c_in, width, wide, paths", [
    (3, 4, 4, {"ordered"}),                        # few channels: chunks of (C, kh, kw) rows
    (3, 24, 96, {"ordered", "shifted", "taps_first"}),  # 24 outputs shifted, 96 (waste 1.44 > 1 + 32/96) gathered
    (20, 40, 40, {"shifted"}),
])
@pytest.mark.parametrize("batch", [1, 3])
def test_direct_convolutions_equal_onnxruntime_and_the_training_path(monkeypatch, c_in, width, wide, paths, batch):
    m = _cnn(c_in, width, wide)
    c = compile_model(m, "opamp")
    x = np.random.default_rng(4).standard_normal((batch, c_in, 11, 9)).astype(np.float32)
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    scale = np.abs(ref).max()
    for dtype in (np.float32, np.float64):
        prog = Program(c.graph, dtype=dtype)
        seen = _spy_paths(monkeypatch)
        fast = prog.run({"x": x})["y"]
        assert paths <= set(seen), seen
        assert any(s.pool_max is not None for s in prog.steps) and any(s.in_place >= 0 for s in prog.steps)
        slow = prog.forward({"x": x}, train=True)[0]["y"]
        assert fast.dtype == dtype and np.abs(fast - ref).max() <= 1e-5 * scale
        assert np.abs(fast - slow).max() <= (1e-5 if dtype == np.float32 else 1e-12) * scale
        monkeypatch.undo()


def test_in_place_steps_spare_feeds_graph_outputs_and_requested_tensors():
    """A rectifier or sum writes over its input only when nothing else can see it: not a feed, not a
    graph output, not a tensor the caller asked for."""
    m = _cnn(20, 24, 24)
    m.graph.output.extend([helper.make_tensor_value_info("s", TensorProto.FLOAT, ["N", 24, 11, 9])])  # a relu's input
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    prog = Program(compile_model(m, "opamp").graph)
    x = np.random.default_rng(5).standard_normal((2, 20, 11, 9)).astype(np.float32)
    x0 = x.copy()
    ref = dict(zip(("y", "s"), sess.run(None, {"x": x})))
    for _ in range(2):
        got = prog.run({"x": x})
        for k in ("y", "s"):
            assert np.abs(got[k] - ref[k]).max() <= 1e-5 * np.abs(ref[k]).max(), k
    np.testing.assert_array_equal(x, x0)
    wanted = ["c1", "c2", "r1", "y"]  # c1, c2: a relu's and a sum's inputs, overwritten unless asked for
    slow = prog.forward({"x": x}, train=True, wanted=wanted)[0]
    fast = prog.run({"x": x}, outputs=wanted)
    for k in wanted:
        assert np.abs(fast[k] - slow[k]).max() <= 1e-5 * np.abs(slow[k]).max(), k


@pytest.mark.parametrize("target, opts", [
    ("opamp", HardwareOptions(modes=("quantized",), weight_bits=4)),  # weight maps: direct convolutions
    ("current", HardwareOptions(modes=("quantized",))),  # synapse levels, banks with their own rectifier
    ("crossbar", HardwareOptions(modes=("quantized",))),  # converters on each bank's input: gathered as before
])
def test_hardware_maps_apply_alike_on_the_fast_paths(monkeypatch, target, opts):
    m = _cnn(20, 24, 40)
    prog = build_program(compile_model(m, target), opts)
    x = np.random.default_rng(6).standard_normal((2, 20, 11, 9)).astype(np.float32)
    seen = _spy_paths(monkeypatch)
    fast = prog.run({"x": x})["y"]
    assert bool(seen) == (target != "crossbar")
    slow = prog.forward({"x": x}, train=True)[0]["y"]
    assert np.abs(fast - slow).max() <= 1e-5 * np.abs(slow).max()


def test_a_rectifying_bank_rectifies_its_direct_convolution():
    from types import SimpleNamespace

    from sim.engine.kernels import DenseKernel
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 16, 6, 5)).astype(np.float32)
    w = rng.standard_normal((8, 16 * 9)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    win = geometry("Conv", (6, 5), (3, 3), {"pads": [1, 1, 1, 1]})
    prim = SimpleNamespace(rectify=True)
    ref, _ = DenseKernel().forward(prim, {"weights": w, "bias": b}, [im2col_2d(x, win, 0.0)], False)
    taps = np.ascontiguousarray(w.reshape(8, 16, 9).transpose(2, 0, 1))
    got = DenseKernel().forward_conv(prim, {"weights": taps, "bias": b}, x,
                                     lambda x_, w_, b_: conv2d_shifted(x_, w_, b_, win, 0.0))
    assert ref.min() == 0 and np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
