"""--chip-seed: one reproducible chip instance as a netlist; clear errors where it is not modelled yet."""

from __future__ import annotations

import json

import numpy as np

from circuits.data import model_file
from sim.cli import main

DIGITS = str(model_file("examples", "digits_mlp.onnx"))


def _compile(tmp_path, name, *extra):
    out = tmp_path / name
    assert main(["compile", DIGITS, "-o", str(out), "--target", "current", "-q", *extra]) == 0
    return out


def test_same_seed_same_chip_other_seed_other_chip(tmp_path, capsys):
    a = _compile(tmp_path, "a", "--chip-seed", "7")
    b = _compile(tmp_path, "b", "--chip-seed", "7")
    c = _compile(tmp_path, "c", "--chip-seed", "8")
    nominal = _compile(tmp_path, "n")
    text = {p.name: (p / "netlist.cir").read_text() for p in (a, b, c, nominal)}
    assert text["a"] == text["b"] != text["c"]
    assert "delvto" in text["a"] and "delvto" not in text["n"]
    assert json.loads((a / "kelvin.json").read_text())["chip_seed"] == 7


def test_chip_seed_errors_are_one_line(tmp_path, capsys):
    assert main(["compile", DIGITS, "-o", str(tmp_path / "o"), "--chip-seed", "1", "-q"]) == 1
    err = capsys.readouterr().err
    assert "target current" in err and err.count("\n") == 1


def test_chip_parameters_and_engine_run(tmp_path, capsys):
    """compile writes the instance's behavioral parameters; run --chip-seed evaluates it in the engine."""
    out = _compile(tmp_path, "a", "--chip-seed", "5")
    params = np.load(out / "chip.npz")
    assert int(params["seed"]) == 5 and any(k.endswith(".weights") for k in params.files)
    x = np.load(model_file("examples", "digits_test.npz"))["X"][:20]
    np.save(tmp_path / "x.npy", x)
    ys = []
    for seed in ("5", "5", "6"):
        y_path = tmp_path / f"y{len(ys)}.npy"
        assert main(["run", DIGITS, "-i", str(tmp_path / "x.npy"), "--target", "current", "--chip-seed", seed,
                     "-o", str(y_path), "-q"]) == 0
        ys.append(np.load(y_path))
    nominal = tmp_path / "yn.npy"
    assert main(["run", DIGITS, "-i", str(tmp_path / "x.npy"), "--target", "current", "-o", str(nominal), "-q"]) == 0
    assert np.array_equal(ys[0], ys[1]) and not np.array_equal(ys[0], ys[2])
    assert not np.allclose(ys[0], np.load(nominal))  # mismatch moves the outputs
    assert np.mean(ys[0].argmax(1) == np.load(nominal).argmax(1)) >= 0.8
