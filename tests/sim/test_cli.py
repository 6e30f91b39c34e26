"""The kelvin CLI: compile/run/demo work; bad input gives one clear line and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import helper

from circuits.data import model_file
from sim import zoo
from sim.cli import main
from tests.helpers import fvi, make_model, ort_run

DIGITS = str(model_file("examples", "digits_mlp.onnx"))


def _lstm_model(path):
    node = helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=2, name="lstm_1")
    model = make_model([node], [fvi("x", [1, 1, 2]), fvi("w", [1, 8, 2]), fvi("r", [1, 8, 2])],
                       [fvi("y", [1, 1, 1, 2])])
    onnx.save(model, path)


def _one_error_line(capsys, code):
    out, err = capsys.readouterr()
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_compile_writes_graph_json(tmp_path, capsys):
    assert main(["compile", DIGITS, "-o", str(tmp_path / "out"), "--target", "current", "-q"]) == 0
    out = capsys.readouterr().out
    assert "current.synapse_array" in out and "mosfet" in out
    doc = json.loads((tmp_path / "out" / "graph.json").read_text())
    assert doc["target"]["name"] == "current"
    # Binas et al.: 5 transistors per neuron, 11 per weight (biases included); the signed output
    # layer is read by a soma pair fed by the synapses and their negated copies.
    hidden = 11 * (64 * 16 + 16) + 5 * 16
    output = 2 * (11 * (16 * 10 + 10) + 5 * 10)
    assert doc["summary"]["devices"]["mosfet"] == hidden + output
    assert all({"name", "kind", "placement"} <= set(n) for n in doc["nodes"])


def test_run_matches_onnxruntime(tmp_path, capsys):
    x = np.random.default_rng(0).random((20, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", DIGITS, "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"),
                 "--batch-size", "7", "-q"]) == 0
    y = np.load(tmp_path / "y.npy")
    np.testing.assert_allclose(y, ort_run(onnx.load(DIGITS), {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_run_csv_input(tmp_path, capsys):
    x = np.random.default_rng(1).random((3, 64))
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    assert main(["run", DIGITS, "--input", str(tmp_path / "x.csv"), "-q"]) == 0
    assert "shape [3, 10]" in capsys.readouterr().out


def test_demo_bad_options_one_line(tmp_path, capsys):
    """The demo itself runs in tests/sim/test_demo.py (small model); here its CLI refuses bad budgets."""
    for bad in (["--spice-samples", "0"], ["--seed", "-2"], ["--epochs", "0"], ["--dynamics-samples", "0"],
                ["--model", str(tmp_path / "no.onnx")]):
        assert main(["demo", "-o", str(tmp_path / "demo"), "-q", *bad]) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and bad[0] in err
    assert not (tmp_path / "demo").exists()


def test_bad_non_onnx_file(tmp_path, capsys):
    p = tmp_path / "readme.onnx"
    p.write_text("# not a model\n")
    line = _one_error_line(capsys, main(["compile", str(p), "-o", str(tmp_path / "o")]))
    assert "readme.onnx" in line


def test_bad_truncated_file(tmp_path, capsys):
    data = zoo.mlp().SerializeToString()
    p = tmp_path / "half.onnx"
    p.write_bytes(data[: len(data) // 3])
    line = _one_error_line(capsys, main(["compile", str(p), "-o", str(tmp_path / "o")]))
    assert "half.onnx" in line


def test_bad_unsupported_op(tmp_path, capsys):
    p = tmp_path / "lstm.onnx"
    _lstm_model(p)
    line = _one_error_line(capsys, main(["compile", str(p), "-o", str(tmp_path / "o")]))
    assert "LSTM" in line and "lstm_1" in line


def test_bad_missing_model_and_input(tmp_path, capsys):
    line = _one_error_line(capsys, main(["compile", str(tmp_path / "none.onnx"), "-o", str(tmp_path)]))
    assert "none.onnx" in line
    line = _one_error_line(capsys, main(["run", DIGITS, "--input", str(tmp_path / "missing.npy")]))
    assert "missing.npy" in line


def test_bad_input_shape(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 63), np.float32))
    line = _one_error_line(capsys, main(["run", DIGITS, "--input", str(tmp_path / "x.npy"), "-q"]))
    assert "expected shape" in line


def test_bad_unwritable_outdir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = _one_error_line(capsys, main(["compile", DIGITS, "-o", str(blocker / "sub")]))
    assert "sub" in line


def test_failed_compile_keeps_previous_output(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compile", DIGITS, "-o", str(out), "-q"]) == 0
    before = (out / "graph.json").read_bytes()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    assert main(["compile", str(bad), "-o", str(out), "-q"]) != 0
    assert (out / "graph.json").read_bytes() == before
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_verbose_shows_traceback(tmp_path, capsys):
    p = tmp_path / "x.onnx"
    p.write_text("nope")
    assert main(["compile", str(p), "-o", str(tmp_path / "o"), "-v"]) != 0
    assert "Traceback" in capsys.readouterr().err


def test_help_everywhere():
    for args in ([], ["compile"], ["run"], ["demo"]):
        proc = subprocess.run([sys.executable, "-m", "sim.cli", *args, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "usage: kelvin" in proc.stdout


def test_entry_point_exit_code(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"\x00" * 10)
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "compile", str(p), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "bad.onnx" in proc.stderr
