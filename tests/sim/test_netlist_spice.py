"""Whole-network netlists in ngspice: the seed's example, runnable decks, hostile names, validate."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from circuits.data import model_file
from circuits.spice.netlist import spice_name
from compiler.pipeline import compile_model
from sim import zoo
from sim.cli import main
from sim.engine import execute
from sim.spice_commands import run_network_spice

pytestmark = pytest.mark.ngspice
DIGITS = str(model_file("examples", "digits_mlp.onnx"))


def test_gemm_example_from_onnx_within_0_1_pct_fs():
    """One Gemm node (W = [-0.35, 5.24], b = 2.6) -> opamp target -> ngspice, on an 11x11 grid."""
    compiled = compile_model(zoo.gemm_example(), "opamp")
    grid = np.linspace(-1.0, 1.0, 11)
    v = np.array([(a, b) for a in grid for b in grid], dtype=np.float32)
    got = run_network_spice(compiled, {"v": v}, scale=1.0, workers=2, progress=False)["y"][:, 0]
    want = -0.35 * v[:, 0] + 5.24 * v[:, 1] + 2.6
    full_scale = 0.35 + 5.24 + 2.6  # the largest |V_o| over the grid's box
    err_pct = np.max(np.abs(got - want)) / full_scale * 100
    assert err_pct < 0.1, err_pct


def test_digits_mlp_in_ngspice_matches_engine():
    data = np.load(model_file("examples", "digits_test.npz"))
    x = data["X"][:12]
    compiled = compile_model(DIGITS, "opamp")
    ideal = execute(compiled.graph, {"x": x})["logits"]
    spice = run_network_spice(compiled, {"x": x}, scale=0.25, workers=2, progress=False)["logits"]
    assert np.max(np.abs(spice - ideal)) / np.max(np.abs(ideal)) < 5e-3
    assert np.array_equal(spice.argmax(1), ideal.argmax(1))


def test_compile_writes_runnable_netlist_and_stimulus(tmp_path, capsys):
    out = tmp_path / "g"
    model = tmp_path / "gemm.onnx"
    onnx.save(zoo.gemm_example(), model)
    assert main(["compile", str(model), "-o", str(out), "--scale", "1", "-q"]) == 0
    for name in ("netlist.cir", "inputs.inc", "netlist.json", "graph.json", "model.onnx", "kelvin.json"):
        assert (out / name).is_file(), name
    ports = json.loads((out / "netlist.json").read_text())
    assert ports["ports"][-3:] == ["vpos", "vneg", "vref"]

    def ngspice_out() -> float:
        proc = subprocess.run(["ngspice", "-b", str(out / "netlist.cir")], capture_output=True, text=True,
                              cwd=tmp_path, timeout=60)
        assert proc.returncode == 0, proc.stderr
        value = re.search(r"^0\s+(\S+)", proc.stdout, re.M)
        assert value, proc.stdout
        return float(value.group(1))

    assert ngspice_out() == pytest.approx(2.6, abs=2e-3)  # default inputs: zeros -> the bias
    np.save(tmp_path / "v.npy", np.array([[1.0, 1.0], [2.0, -0.5]], np.float32))
    assert main(["stimulus", str(out), "-i", str(tmp_path / "v.npy"), "--row", "1"]) == 0
    assert ngspice_out() == pytest.approx(-0.35 * 2 + 5.24 * -0.5 + 2.6, abs=2e-3)


HOSTILE = [
    "evil\n.control\nshell touch {marker}\n.endc",
    "x\n.include /etc/passwd",
    "* comment\nshell touch {marker}",
    "a b=c {{x}} 'q' \"w\"\r\n.end",
]


def _hostile_model(marker: str) -> onnx.ModelProto:
    names = [h.format(marker=marker) for h in HOSTILE]
    nodes = [
        helper.make_node("Gemm", [names[0], "W"], [names[1]], name=names[2], transB=1, doc_string=names[3]),
        helper.make_node("Relu", [names[1]], [names[3]], name=names[0]),
    ]
    graph = helper.make_graph(
        nodes, names[1],
        [helper.make_tensor_value_info(names[0], onnx.TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info(names[3], onnx.TensorProto.FLOAT, ["N", 2])],
        [onnx.numpy_helper.from_array(np.array([[1.0, -2.0], [0.5, 0.25]], np.float32), "W")],
        doc_string=names[2])
    model = helper.make_model(graph, doc_string=names[0])
    model.ir_version = 8
    return model


def test_hostile_names_cannot_inject_spice(tmp_path, capsys):
    marker = tmp_path / "pwned"
    model_path = tmp_path / "evil.onnx"
    onnx.save(_hostile_model(str(marker)), model_path)
    out = tmp_path / "out"
    assert main(["compile", str(model_path), "-o", str(out), "--scale", "1", "-q"]) == 0
    deck = (out / "netlist.cir").read_text() + (out / "inputs.inc").read_text()
    for line in deck.splitlines():
        stripped = line.strip().lower()
        assert not stripped.startswith((".control", "shell", ".endc", ".end ", ".shell")), line
        if stripped.startswith(".include"):
            assert stripped == ".include inputs.inc"
    proc = subprocess.run(["ngspice", "-b", str(out / "netlist.cir")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    # and the circuit still computes the model
    x = np.array([[0.5, -1.0]], np.float32)
    compiled = compile_model(model_path, "opamp")
    got = run_network_spice(compiled, {compiled.graph.inputs[0]: x}, 1.0, workers=1, progress=False)
    want = np.maximum(x @ np.array([[1.0, -2.0], [0.5, 0.25]]).T, 0)
    np.testing.assert_allclose(next(iter(got.values())), want, atol=5e-3)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_sanitized_names_are_bare_identifiers(text):
    name = spice_name(text)
    assert re.fullmatch(r"[a-z][a-z0-9_]*", name)
    assert len(name) <= 48


def test_validate_reports_and_exit_codes(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["compile", DIGITS, "-o", str(out), "-q"]) == 0
    report = tmp_path / "report.json"
    assert main(["validate", str(out), "--blocks", "6", "--report", str(report), "-q"]) == 0
    doc = json.loads(report.read_text())
    assert doc["passed"] is True and len(doc["blocks"]) == 6
    for b in doc["blocks"]:
        assert {"name", "primitive", "max_error_pct_fs", "rms_error_pct_fs", "tolerance_pct_fs", "passed",
                "settling_s", "power_w"} <= set(b)
        assert b["max_error_pct_fs"] <= b["tolerance_pct_fs"]
        assert b["settling_s"] is not None and 0 <= b["settling_s"] < 1e-4  # 1 MHz op-amps settle in µs
    assert "within tolerance" in capsys.readouterr().out


def test_validate_whole_network_on_inputs(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["compile", DIGITS, "-o", str(out), "-q"]) == 0
    x = np.load(model_file("examples", "digits_test.npz"))["X"][:4]
    np.save(tmp_path / "x.npy", x)
    report = tmp_path / "r.json"
    assert main(["validate", str(out), "--blocks", "1", "-i", str(tmp_path / "x.npy"), "--report", str(report),
                 "-q"]) == 0
    net = json.loads(report.read_text())["network"]
    assert net["samples"] == 4 and net["passed"] and net["argmax_agreement"] == 1.0
    assert net["max_error_pct_fs"] < 0.5
    assert "whole network on 4 input(s)" in capsys.readouterr().out


def test_validate_a_chip_compile_against_that_chip(tmp_path, capsys):
    """A `compile --chip-seed` netlist holds one chip's mismatch: validate --input compares it with that
    chip's engine model (it compared with the nominal network and reported FAIL on every chip)."""
    out = tmp_path / "c"
    assert main(["compile", DIGITS, "-o", str(out), "--target", "current", "--chip-seed", "3", "-q"]) == 0
    np.save(tmp_path / "x.npy", np.load(model_file("examples", "digits_test.npz"))["X"][:3])
    report = tmp_path / "r.json"
    assert main(["validate", str(out), "--blocks", "1", "-i", str(tmp_path / "x.npy"), "--report", str(report),
                 "-q"]) == 0
    net = json.loads(report.read_text())["network"]
    assert net["chip_seed"] == 3 and net["passed"] and net["rms_error_pct_fs"] < 2.0


def test_validate_fails_when_tolerance_exceeded(tmp_path, capsys, monkeypatch):
    out = tmp_path / "d"
    assert main(["compile", DIGITS, "-o", str(out), "-q"]) == 0
    from circuits.spice.blocks_linear import SummerBlock

    monkeypatch.setattr(SummerBlock, "tolerance_pct_fs", 1e-9)
    assert main(["validate", str(out), "--blocks", "2", "--seed", "1", "-q"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_validate_needs_compiled_dir(tmp_path, capsys):
    assert main(["validate", str(tmp_path)]) == 1
    assert "kelvin compile" in capsys.readouterr().err


def test_spice_run_timeout_is_reported(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 64), np.float32))
    code = main(["run", DIGITS, "-i", str(tmp_path / "x.npy"), "--engine", "spice", "--timeout", "0.01", "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "timed out" in err and err.count("\n") == 1


def test_missing_ngspice_is_one_clear_line(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 2), np.float32))
    model = tmp_path / "g.onnx"
    onnx.save(zoo.gemm_example(), model)
    env = {"PATH": "/usr/bin:/bin", "NGSPICE_LIBRARY_PATH": str(tmp_path / "no_libngspice.so"),
           "PYTHONPATH": ":".join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "run", str(model), "-i", str(tmp_path / "x.npy"),
                           "--engine", "spice", "-q"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert "ngspice" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("target,op,reason", [
    ("crossbar", "Softmax", "digital periphery"),   # crossbar runs Softmax off the analog tiles
    ("current", "Tanh", "digital periphery"),       # current mode has no tanh (its softmax is a circuit: below)
    ("crossbar", "Softmax", "try --target opamp"),
    ("opamp", "LogSoftmax", "no Kelvin target has a circuit for LogSoftmax"),  # PyTorch's usual head
])
def test_netlist_not_written_says_why(tmp_path, capsys, target, op, reason):
    model = helper.make_model(helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], name="sm")], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])]))
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "c"), "--target", target, "-q"]) == 0
    doc = json.loads((tmp_path / "c" / "graph.json").read_text())
    assert doc["netlist"]["written"] is False and reason in doc["netlist"]["reason"]
    assert "netlist: not written" in capsys.readouterr().out
    assert not (tmp_path / "c" / "netlist.cir").exists()


def test_current_softmax_gets_a_netlist(tmp_path, capsys):
    """Softmax on the current target is a differential-pair array, so the netlist is written."""
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], name="sm")], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])]))
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "c"), "--target", "current", "-q"]) == 0
    doc = json.loads((tmp_path / "c" / "graph.json").read_text())
    assert doc["netlist"]["written"] is True
    assert "current.softmax" in (tmp_path / "c" / "netlist.cir").read_text()


def test_ngspice_binary_present():
    assert shutil.which("ngspice")


def test_validate_on_a_dask_cluster(tmp_path, capsys):
    """`--dask ADDRESS` runs the simulations on a Dask cluster (here a local one) with the same results."""
    from distributed import LocalCluster

    out = tmp_path / "g"
    onnx.save(zoo.gemm_example(), tmp_path / "g.onnx")
    assert main(["compile", str(tmp_path / "g.onnx"), "-o", str(out), "--scale", "1", "-q"]) == 0
    local, remote = tmp_path / "local.json", tmp_path / "dask.json"
    assert main(["validate", str(out), "--report", str(local), "-q"]) == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        assert main(["validate", str(out), "--report", str(remote), "--dask", cluster.scheduler_address, "-q"]) == 0
    a, b = (json.loads(p.read_text())["blocks"][0] for p in (local, remote))
    assert a["max_error_pct_fs"] == pytest.approx(b["max_error_pct_fs"], rel=1e-9)
