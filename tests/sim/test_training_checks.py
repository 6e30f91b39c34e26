"""Training and evaluation options that changed nothing, metrics that were not the file's, and paths a
failed run left behind (an independent probe's findings, each now refused or fixed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from circuits.errors import KelvinError, ParameterError
from compiler.pipeline import compile_model
from sim.cli import main
from sim.engine.prepare import HardwareOptions, build_program
from sim.train.commands import evaluate_file, train_file
from sim.train.loop import TrainConfig
from sim.zoo import mlp

ROOT = Path(__file__).resolve().parents[2]
DIGITS = str(ROOT / "models/examples/digits_mlp.onnx")


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_noise_or_population_on_a_chip_at_inference_is_refused():
    c = compile_model(DIGITS, "current")
    for modes in (("noise", "chip"), ("population", "chip")):
        with pytest.raises(ParameterError, match="at inference a chip is its netlist's model"):
            build_program(c, HardwareOptions(modes=modes, chip_seed=1))
        build_program(c, HardwareOptions(modes=modes, chip_seed=1), trainable=True)  # training acts on them


def test_opamp_quantized_without_weight_bits_is_refused(capsys):
    assert main(["evaluate", DIGITS, "--data", "digits", "--hardware", "quantized", "-q"]) == 1
    assert "--hardware quantized on the op-amp target rounds its resistor ratios to --weight-bits" in _err(capsys)


@pytest.mark.parametrize("args, message", [
    (["--target", "current", "--hardware", "quantized", "--chip-seed", "3"], "--chip-seed picks the chip"),
    (["--optimizer", "adam", "--momentum", "0.5"], "--momentum applies to --optimizer sgd"),
])
def test_options_that_changed_nothing_are_refused(tmp_path, capsys, args, message):
    assert main(["train", DIGITS, "--data", "digits", "-o", str(tmp_path / "t.onnx"), "--epochs", "1", "-q",
                 *args]) == 1
    assert message in _err(capsys)
    assert not (tmp_path / "t.onnx").exists()


def test_cross_entropy_on_one_output_is_refused(tmp_path, capsys):
    model = tmp_path / "one.onnx"
    onnx.save(mlp((64, 8, 1), seed=0), model)
    x = np.random.default_rng(0).uniform(0, 1, (20, 64)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.zeros(20, int), x_test=x, y_test=np.zeros(20, int))
    assert main(["train", str(model), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "t.onnx"),
                 "--epochs", "1", "-q"]) == 1
    assert "the model has one output, and cross-entropy needs one per class" in _err(capsys)


def test_train_metrics_are_what_evaluate_measures_on_the_file(tmp_path):
    """Crossbar converters: the reported figure comes from a program built as `evaluate` builds it."""
    model = tmp_path / "m.onnx"
    onnx.save(mlp((64, 16, 10), seed=0), model)
    hw = HardwareOptions(modes=("quantized",))
    doc = train_file(str(model), "digits", str(tmp_path / "t.onnx"), target="crossbar", hardware=hw,
                     config=TrainConfig(epochs=2, lr=0.05, seed=0), progress=False)
    again = evaluate_file(str(tmp_path / "t.onnx"), "digits", target="crossbar", hardware=hw, progress=False)
    assert doc["test_loss"] == pytest.approx(again["test_loss"], rel=1e-6)
    assert doc["test_accuracy"] == again["test_accuracy"] >= 0.8


def test_failed_metrics_paths_leave_no_model_and_spare_the_checkpoint(tmp_path, capsys):
    (tmp_path / "q.png").mkdir()  # the curves' path is taken: refused before training
    out = tmp_path / "t.onnx"
    assert main(["train", DIGITS, "--data", "digits", "-o", str(out), "--metrics", str(tmp_path / "q.json"),
                 "--epochs", "1", "-q"]) == 1
    assert "q.png" in _err(capsys) and not out.exists() and not (tmp_path / "q.json").exists()
    ck = tmp_path / "ck"
    assert main(["train", DIGITS, "--data", "digits", "-o", str(out), "--checkpoint", str(ck),
                 "--metrics", str(ck / "checkpoint.npz"), "--epochs", "1", "-q"]) == 1
    assert "inside --checkpoint" in _err(capsys)


def test_damaged_checkpoints_and_scalar_labels_are_named(tmp_path, capsys):
    out, ck = tmp_path / "t.onnx", tmp_path / "ck"
    base = ["train", DIGITS, "--data", "digits", "-o", str(out), "--checkpoint", str(ck), "-q", "--epochs", "2"]
    assert main(base) == 0
    arrays = dict(np.load(ck / "checkpoint.npz"))
    arrays = {k: v for k, v in arrays.items() if not k.startswith("p.")}  # the parameters cut out
    np.savez(ck / "checkpoint.npz", **arrays)
    assert main(base + ["--resume"]) == 1
    assert "a damaged Kelvin checkpoint (KeyError" in _err(capsys)
    x = np.random.default_rng(0).uniform(0, 1, (20, 64)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.float32(3.0), x_test=x, y_test=np.zeros(20, int))
    assert main(["train", DIGITS, "--data", str(tmp_path / "d.npz"), "-o", str(out), "-q"]) == 1
    assert "y_train is a single value" in _err(capsys)


def test_evaluate_api_arguments_are_checked():
    for kw, message in (({"data": None}, "data: a data set name"), ({"engine": "gpu"}, "engine: behavioral"),
                        ({"chips": 0}, "chips: an integer ≥ 1"), ({"seed": 1.5}, "seed: an integer ≥ 0"),
                        ({"hardware": "quantized"}, "hardware: a HardwareOptions"), ({"loss": "nll"}, "loss: ce")):
        args = {"data": "digits", **kw}
        with pytest.raises(KelvinError, match=message):
            evaluate_file(DIGITS, args.pop("data"), progress=False, **args)
    assert json.dumps(evaluate_file(DIGITS, "digits", progress=False))  # the defaults still run


def test_banks_whose_weights_all_round_to_zero_are_warned_about():
    from sim.train.commands import dead_banks
    model = mlp((64, 16, 10), seed=0)
    for t in model.graph.initializer:
        if len(t.dims) == 2:  # every weight 0.05: below half the current target's 0.25 level step
            t.CopyFrom(onnx.numpy_helper.from_array(np.full(tuple(t.dims), 0.05, np.float32), t.name))
    c = compile_model(model, "current")
    lines = dead_banks(build_program(c, HardwareOptions(modes=("quantized",)), trainable=True))
    assert lines and all("every weight rounds to level 0" in line for line in lines)
    assert not dead_banks(build_program(compile_model(DIGITS, "current"), HardwareOptions(modes=("quantized",)),
                                        trainable=True))


def test_boolean_labels_are_two_classes_and_mixed_label_kinds_are_named(tmp_path, capsys):
    from sim.train.data import load_dataset
    x = np.random.default_rng(0).uniform(0, 1, (20, 4)).astype(np.float32)
    y = np.arange(20) % 2 == 0
    np.savez(tmp_path / "b.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    d = load_dataset(str(tmp_path / "b.npz"))
    assert d.classes == 2 and d.y_train.dtype.kind == "i" and d.y_train.sum() == 10
    np.savez(tmp_path / "m.npz", x_train=x, y_train=y.astype(int), x_test=x, y_test=y.astype(np.float32))
    with pytest.raises(KelvinError, match=r"m\.npz: y_train is int64 and y_test float32; give both"):
        load_dataset(str(tmp_path / "m.npz"))


def test_cosine_schedule_is_the_annealing_formula():
    """η_k = η(1 + cos(πk/K))/2 at known points; constant is η throughout; other names are refused."""
    from sim.train.schedule import scheduled_lr
    assert scheduled_lr(0.1, "cosine", 0, 100) == pytest.approx(0.1)
    assert scheduled_lr(0.1, "cosine", 50, 100) == pytest.approx(0.05)
    assert scheduled_lr(0.1, "cosine", 25, 100) == pytest.approx(0.05 * (1 + np.sqrt(0.5)))
    assert 0 < scheduled_lr(0.1, "cosine", 99, 100) < 0.1 * 3e-4
    assert scheduled_lr(0.1, "constant", 99, 100) == 0.1
    with pytest.raises(ParameterError, match="--lr-schedule"):
        scheduled_lr(0.1, "linear", 0, 10)


def test_training_steps_through_the_whole_schedule(monkeypatch):
    """The loop asks for steps 0 … K−1 of K = epochs × ⌈n/batch⌉, in order, and the optimizer uses each."""
    import sim.train.loop as loop
    from sim.train.data import load_dataset
    calls, used = [], []
    real = loop.scheduled_lr

    def spy(lr, schedule, step, total):
        calls.append((step, total))
        return real(lr, schedule, step, total)

    monkeypatch.setattr(loop, "scheduled_lr", spy)
    compiled = compile_model(DIGITS, "opamp")
    program = build_program(compiled, HardwareOptions(), trainable=True)
    data = load_dataset("digits")
    import sim.train.optim as optim
    step_one = optim.Adam.step_one
    monkeypatch.setattr(optim.Adam, "step_one", lambda self, k, p, g: (used.append(self.lr), step_one(self, k, p, g)))
    loop.train(program, data, TrainConfig(epochs=2, batch_size=500, lr=0.01, optimizer="adam", schedule="cosine"),
               progress=False)
    per_epoch = -(-len(data.x_train) // 500)
    assert calls == [(k, 2 * per_epoch) for k in range(2 * per_epoch)]
    lrs = sorted(set(used), reverse=True)
    assert lrs == pytest.approx([real(0.01, "cosine", k, 2 * per_epoch) for k in range(2 * per_epoch)])


def test_an_unknown_schedule_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:  # argparse's choices: usage, then one error line naming the option
        main(["train", DIGITS, "--data", "digits", "-o", str(tmp_path / "t.onnx"), "-q", "--lr-schedule", "linear"])
    assert exc.value.code != 0
    assert "argument --lr-schedule: invalid choice: 'linear'" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "t.onnx").exists()
    with pytest.raises(KelvinError, match="--lr-schedule: one of constant, cosine"):
        TrainConfig(schedule="step").check()
