"""The reference networks build, check, run in onnxruntime, and the bundled examples reproduce."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from sim import zoo

EXAMPLES = zoo.EXAMPLES_DIR
TORCH_EXAMPLES = ("torch_cnn_legacy", "torch_cnn_legacy_nofold", "torch_cnn_dynamo",
                  "torch_mlp_legacy", "torch_mlp_dynamo")
BUILDERS = {
    "gemm_example": zoo.gemm_example,
    "mlp": zoo.mlp,
    "mlp_tanh_opset13": lambda: zoo.mlp((5, 7, 7, 3), seed=1, activation="Tanh", opset=13),
    "cnn": zoo.cnn,
    "cnn_avgpool": lambda: zoo.cnn(seed=2, global_pool=False),
    "digits_mlp": zoo.digits_mlp,
}


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    """An onnxruntime CPU session on an in-memory model."""
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _batch_dim(value: onnx.ValueInfoProto) -> str:
    """The symbolic name of a graph input's or output's first dimension."""
    return value.type.tensor_type.shape.dim[0].dim_param


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_builder_checks_and_runs_at_batch_1_and_3(name: str) -> None:
    model = BUILDERS[name]()
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 10
    assert _batch_dim(model.graph.input[0]) == "N" and _batch_dim(model.graph.output[0]) == "N"
    sess = _session(model)
    inp = sess.get_inputs()[0]
    rng = np.random.default_rng(0)
    x3 = rng.uniform(0.0, 1.0, [3, *inp.shape[1:]]).astype(np.float32)
    y3 = sess.run(None, {inp.name: x3})[0]
    y1 = sess.run(None, {inp.name: x3[:1]})[0]
    assert y3.shape[0] == 3 and y1.shape[0] == 1 and np.all(np.isfinite(y3))
    np.testing.assert_allclose(y1, y3[:1], rtol=1e-5, atol=1e-6)


def test_builders_are_seeded() -> None:
    a, b, c = zoo.mlp(seed=3), zoo.mlp(seed=3), zoo.mlp(seed=4)
    assert a.SerializeToString() == b.SerializeToString() != c.SerializeToString()


def test_opset_is_honored_and_checked() -> None:
    assert zoo.cnn(opset=13).opset_import[0].version == 13
    with pytest.raises(ValueError, match="opset 7"):
        zoo.mlp(opset=7)
    with pytest.raises(ValueError, match="activation"):
        zoo.mlp(activation="Gelu")


def test_gemm_example_matches_its_formula() -> None:
    v = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, -3.0]], dtype=np.float32)
    y = _session(zoo.gemm_example()).run(None, {"v": v})[0]
    np.testing.assert_allclose(y[:, 0], -0.35 * v[:, 0] + 5.24 * v[:, 1] + 2.6, rtol=1e-6)


def test_resnet18_parameter_count_and_batch_1_run() -> None:
    model = zoo.resnet18()
    assert zoo.param_count(model) == 11_689_512  # torchvision's count: BN weight+bias, no stats
    assert zoo.param_count(model, include_bn_stats=True) == 11_689_512 + 2 * 4_800
    x = np.random.default_rng(0).normal(size=(1, 3, 224, 224)).astype(np.float32)
    y = _session(model).run(None, {"x": x})[0]
    assert y.shape == (1, 1000) and np.all(np.isfinite(y))
    assert 0.1 < float(y.std()) < 10.0  # activations stay O(1) through the network


def test_resnet18_small_variant_runs_at_batch_3() -> None:
    model = zoo.resnet18(seed=1, num_classes=7, image_size=32)
    x = np.random.default_rng(1).normal(size=(3, 3, 32, 32)).astype(np.float32)
    assert _session(model).run(None, {"x": x})[0].shape == (3, 7)


def test_digits_model_reaches_recorded_accuracy() -> None:
    model = onnx.load(str(zoo.DIGITS_MLP_PATH))
    props = {p.key: p.value for p in model.metadata_props}
    recorded = float(props["test_accuracy"])
    assert recorded >= 0.94 and props["seed"] == "0"
    data = np.load(zoo.DIGITS_TEST_PATH)
    assert data["X"].dtype == np.float32 and data["y"].dtype == np.int64
    logits = _session(model).run(None, {"x": data["X"]})[0]
    accuracy = float(np.mean(np.argmax(logits, axis=1) == data["y"]))
    assert accuracy >= recorded - 1.0 / len(data["y"])


def test_training_reproduces_the_bundled_digits_model() -> None:
    from sim.zoo_train import train_digits_mlp

    model, accuracy = train_digits_mlp(seed=0)
    assert accuracy >= 0.94
    bundled = zoo.DIGITS_MLP_PATH.read_bytes()
    assert model.SerializeToString(deterministic=True) == bundled


@pytest.mark.parametrize("stem", TORCH_EXAMPLES)
def test_torch_example_output_reproduced(stem: str) -> None:
    model = onnx.load(str(EXAMPLES / f"{stem}.onnx"))
    onnx.checker.check_model(model)
    assert model.ir_version <= 10
    assert isinstance(_batch_dim(model.graph.input[0]), str) and _batch_dim(model.graph.input[0])
    stored = np.load(EXAMPLES / f"{stem}.io.npz")
    sess = _session(model)
    name = sess.get_inputs()[0].name
    got = sess.run(None, {name: stored["x"]})[0]
    np.testing.assert_allclose(got, stored["y"], rtol=0, atol=1e-4)
    got1 = sess.run(None, {name: stored["x"][:1]})[0]
    np.testing.assert_allclose(got1, stored["y"][:1], rtol=0, atol=1e-4)
