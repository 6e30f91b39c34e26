"""kelvin train / evaluate: accuracy, export, determinism, resume after SIGKILL, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from circuits.current import SynapseArray
from circuits.errors import InputError, KelvinError
from circuits.spice.emit_current import quantized_synapse_array
from compiler.pipeline import compile_model
from sim.cli import main
from sim.engine.prepare import HardwareOptions
from sim.train.commands import evaluate_file, train_file
from sim.train.loop import TrainConfig
from sim.zoo import mlp

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mlp32(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("m") / "mlp32.onnx"
    onnx.save(mlp((64, 32, 10), seed=0), path)
    return str(path)


def _ort(path: str, x: np.ndarray) -> np.ndarray:
    m = onnx.load(path)
    m.ir_version = min(m.ir_version, 10)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def test_ideal_training_reaches_96_percent_and_exports_what_it_trained(mlp32, tmp_path):
    out, metrics = tmp_path / "t.onnx", tmp_path / "m.json"
    doc = train_file(mlp32, "digits", str(out), metrics=str(metrics),
                     config=TrainConfig(epochs=20, lr=0.05, batch_size=32, seed=0), progress=False)
    assert doc["test_accuracy"] >= 0.96
    saved = json.loads(metrics.read_text())
    for key in ("test_accuracy", "train_accuracy", "test_loss", "epochs", "samples_per_s", "seconds", "hardware",
                "seed", "history"):
        assert key in saved
    assert len(saved["history"]) == 20 and (tmp_path / "m.png").stat().st_size > 1000
    m = onnx.load(out)
    src = onnx.load(mlp32)
    assert [n.name for n in m.graph.node] == [n.name for n in src.graph.node]
    assert m.opset_import[0].version == src.opset_import[0].version
    props = {p.key: p.value for p in m.metadata_props}
    assert props["kelvin.trained.hardware"] == "ideal" and props["kelvin.trained.seed"] == "0"
    x = np.random.default_rng(0).uniform(0, 1, (50, 64)).astype(np.float32)
    from sim.engine import execute
    c = compile_model(str(out), "opamp")
    mine = execute(c.graph, {c.graph.inputs[0]: x})[c.graph.outputs[0]]
    ref = _ort(str(out), x)
    assert np.max(np.abs(mine - ref)) <= 1e-5 * np.max(np.abs(ref))


def test_same_seed_same_weights_and_pipelined_differs(mlp32, tmp_path):
    cfg = TrainConfig(epochs=2, lr=0.05, seed=3)
    a = train_file(mlp32, "digits", str(tmp_path / "a.onnx"), config=cfg, progress=False)
    b = train_file(mlp32, "digits", str(tmp_path / "b.onnx"), config=cfg, progress=False)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert a["history"][-1]["train_loss"] == b["history"][-1]["train_loss"]
    pipe = TrainConfig(epochs=2, lr=0.05, seed=3, pipelined=True)
    c = train_file(mlp32, "digits", str(tmp_path / "c.onnx"), config=pipe, progress=False)
    assert (tmp_path / "c.onnx").read_bytes() != (tmp_path / "a.onnx").read_bytes()
    assert c["test_accuracy"] > 0.85


def test_quantized_training_exports_levels_and_compiles_without_second_rounding(tmp_path):
    out = tmp_path / "q.onnx"
    hw = HardwareOptions(modes=("quantized",))
    doc = train_file(str(ROOT / "models/examples/digits_mlp.onnx"), "digits", str(out), target="current",
                     hardware=hw, config=TrainConfig(epochs=2, lr=0.01), progress=False)
    assert doc["test_accuracy"] > 0.9
    c = compile_model(str(out), "current")
    for node in c.graph.nodes:
        prim = getattr(node, "primitive", None)
        if isinstance(prim, SynapseArray):
            again = quantized_synapse_array(prim)
            np.testing.assert_allclose(again.weights, prim.weights, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(again.bias, prim.bias, rtol=1e-6, atol=1e-7)


def test_evaluate_chips_reports_a_distribution(tmp_path):
    doc = evaluate_file(str(ROOT / "models/examples/digits_mlp.onnx"), "digits", target="current",
                        hardware=HardwareOptions(sizing="compact"), chips=3, progress=False)
    assert doc["chips"] == 3 and len(doc["accuracies"]) == 3
    assert doc["worst"] <= doc["p5"] <= doc["mean"] <= max(doc["accuracies"])


def _train_cmd(model, out, ckpt, epochs, extra=()):
    return [sys.executable, "-m", "sim.cli", "train", model, "--data", "digits", "-o", str(out), "--epochs",
            str(epochs), "--lr", "0.05", "--lr-schedule", "cosine", "--seed", "7", "--checkpoint", str(ckpt), "-q",
            *extra]


def test_resume_after_sigkill_is_byte_identical(mlp32, tmp_path):
    """Cosine schedule included: a resumed run that restarted the annealing would differ."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    full = tmp_path / "full.onnx"
    subprocess.run(_train_cmd(mlp32, full, tmp_path / "ck_full", 6), check=True, env=env, cwd=ROOT)
    ckpt = tmp_path / "ck"
    proc = subprocess.Popen(_train_cmd(mlp32, tmp_path / "killed.onnx", ckpt, 6, ("--batch-size", "8")[:0]),
                            env=env, cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline and not (ckpt / "checkpoint.npz").exists():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (ckpt / "checkpoint.npz").exists()
    resumed = tmp_path / "resumed.onnx"
    subprocess.run(_train_cmd(mlp32, resumed, ckpt, 6, ("--resume",)), check=True, env=env, cwd=ROOT)
    assert resumed.read_bytes() == full.read_bytes()


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize("case, needle", [
    ("labels", "labels go up to 11"),
    ("shape", "features per sample"),
    ("missing", "missing array(s) y_test"),
    ("nan_loss", "non-finite loss at epoch 1, step"),
    ("no_ckpt", "--resume: no checkpoint"),
    ("other_ckpt", "checkpoint of another model"),
    ("chip_needs_seed", "--hardware chip needs --chip-seed"),
])
def test_bad_training_input_is_one_line(mlp32, tmp_path, capsys, case, needle):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (40, 64)).astype(np.float32)
    y = rng.integers(0, 10, 40)
    data = "digits"
    extra: list[str] = []
    model = mlp32
    if case == "labels":
        data = _npz(tmp_path / "d.npz", x_train=x, y_train=y + 2, x_test=x, y_test=y)
    elif case == "shape":
        data = _npz(tmp_path / "d.npz", x_train=x[:, :10], y_train=y, x_test=x[:, :10], y_test=y)
    elif case == "missing":
        data = _npz(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x)
    elif case == "nan_loss":
        extra = ["--lr", "1e30", "--checkpoint", str(tmp_path / "ck")]
    elif case == "no_ckpt":
        extra = ["--resume", "--checkpoint", str(tmp_path / "none")]
    elif case == "other_ckpt":
        assert main(["train", mlp32, "--data", "digits", "-o", str(tmp_path / "a.onnx"), "--epochs", "1", "-q",
                     "--checkpoint", str(tmp_path / "ck")]) == 0
        model = str(ROOT / "models/examples/digits_mlp.onnx")
        extra = ["--resume", "--checkpoint", str(tmp_path / "ck")]
    elif case == "chip_needs_seed":
        extra = ["--target", "current", "--hardware", "chip"]
    capsys.readouterr()
    rc = main(["train", model, "--data", data, "-o", str(tmp_path / "t.onnx"), "--epochs", "2", "-q", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and needle in err[0], err
    if case == "nan_loss":
        assert not (tmp_path / "t.onnx").exists()


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_checkpoint_dir_of_another_output_or_a_user_is_refused(mlp32, tmp_path, capsys):
    """--checkpoint wrote checkpoint.npz into any directory: a compile output, a source checkout
    (models/examples), a user's folder. Each is now one line naming --checkpoint and the directory,
    before any training, and the directory is left as it was."""
    compiled, user, foreign = tmp_path / "compiled", tmp_path / "user", tmp_path / "foreign"
    assert main(["compile", mlp32, "-o", str(compiled), "-q"]) == 0
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    foreign.mkdir()
    np.savez(foreign / "checkpoint.npz", w=np.ones(3))
    capsys.readouterr()
    for d, needle in ((compiled, "holds a Kelvin compile output"), (user, "is not empty (notes.txt)"),
                      (foreign, "checkpoint.npz is not a Kelvin checkpoint")):
        before = _tree(d)
        for extra in ([], ["--resume"]) if d is not foreign else ([],):
            rc = main(["train", mlp32, "--data", "digits", "-o", str(tmp_path / "t.onnx"), "--epochs", "1", "-q",
                       "--checkpoint", str(d), *extra])
            err = capsys.readouterr().err.strip().splitlines()
            assert rc == 1 and len(err) == 1 and f"--checkpoint {d}: " in err[0] and needle in err[0], err
        assert _tree(d) == before and not (tmp_path / "t.onnx").exists()


def test_checkpoint_dir_of_an_earlier_run_is_reused(mlp32, tmp_path):
    """A new or empty directory, or one with an earlier run's checkpoint.npz (and a killed write's temp
    file), is still accepted: a second run replaces the checkpoint, --resume continues from it."""
    ckpt = tmp_path / "ck"
    ckpt.mkdir()
    (ckpt / ".checkpoint.npz.999999999.abc.tmp").write_bytes(b"half")
    out = str(tmp_path / "t.onnx")
    for _ in range(2):
        doc = train_file(mlp32, "digits", out, config=TrainConfig(epochs=1), checkpoint=str(ckpt), progress=False)
        assert doc["resumed_from_epoch"] is None and (ckpt / "checkpoint.npz").is_file()
    doc = train_file(mlp32, "digits", out, config=TrainConfig(epochs=1), checkpoint=str(ckpt), resume=True,
                     progress=False)
    assert doc["resumed_from_epoch"] == 1


def test_training_for_one_chip_beats_naive_deployment(tmp_path):
    """Binas et al.: train the nominal weights through chip 3's mismatch, deploy the levels on chip 3."""
    model = str(ROOT / "models/examples/digits_mlp.onnx")
    chip = HardwareOptions(modes=("chip",), chip_seed=3, sizing="compact")
    naive = evaluate_file(model, "digits", target="current", hardware=chip, progress=False)["test_accuracy"]
    out = tmp_path / "aware.onnx"
    doc = train_file(model, "digits", str(out), target="current", hardware=chip,
                     config=TrainConfig(epochs=4, lr=0.002, optimizer="adam"), progress=False)
    deployed = evaluate_file(str(out), "digits", target="current", hardware=chip, progress=False)["test_accuracy"]
    assert deployed == pytest.approx(doc["test_accuracy"])
    assert deployed > naive


def test_a_softmax_head_trains_on_its_probabilities():
    """Exported classifiers often end in Softmax: ce then is the NLL of those probabilities."""
    from sim.train.commands import loss_for
    from sim.train.loss import loss_and_grad
    assert loss_for(compile_model(str(ROOT / "models/examples/torch_mlp_dynamo.onnx"), "opamp"), "ce") == "nll"
    assert loss_for(compile_model(str(ROOT / "models/examples/digits_mlp.onnx"), "opamp"), "ce") == "ce"
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=5)
    y = rng.integers(0, 4, 5)
    value, g = loss_and_grad("nll", p, y)
    assert value == pytest.approx(-np.mean(np.log(p[np.arange(5), y])))
    eps = 1e-7
    for i, j in ((0, y[0]), (3, y[3]), (2, (y[2] + 1) % 4)):
        q = p.copy()
        q[i, j] += eps
        assert (loss_and_grad("nll", q, y)[0] - value) / eps == pytest.approx(g[i, j], rel=1e-4, abs=1e-6)


def test_val_split_tests_on_the_held_out_part(mlp32, tmp_path):
    """--val-split F holds out F of the training set as the test split (it used to train on the rest and
    still test on the data set's own test split, discarding the held-out part); a fraction that leaves
    either part empty is one clear error."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (50, 64))
    _npz(tmp_path / "d.npz", x_train=x, y_train=rng.integers(0, 10, 50), x_test=x[:7], y_test=np.zeros(7, np.int64))
    doc = train_file(mlp32, str(tmp_path / "d.npz"), str(tmp_path / "v.onnx"), config=TrainConfig(epochs=1),
                     val_split=0.2, progress=False)
    assert (doc["train_samples"], doc["test_samples"]) == (40, 10)
    with pytest.raises(InputError, match=r"--val-split 0.999: holds out 50 of 50"):
        train_file(mlp32, str(tmp_path / "d.npz"), str(tmp_path / "w.onnx"), config=TrainConfig(epochs=1),
                   val_split=0.999, progress=False)


def test_a_bad_eval_hardware_fails_before_training_and_keeps_the_old_model(mlp32, tmp_path):
    """--eval-hardware pcm on the op-amp target was found only after the whole run, with -o already
    replaced by the new model; it is now checked first, and -o is written after everything that can fail."""
    out = tmp_path / "t.onnx"
    out.write_text("previous")
    with pytest.raises(KelvinError, match="--eval-hardware: --hardware pcm: not available on target 'opamp'"):
        train_file(mlp32, "digits", str(out), eval_hardware=HardwareOptions(modes=("pcm",)),
                   config=TrainConfig(epochs=1), progress=False)
    assert out.read_text() == "previous"
