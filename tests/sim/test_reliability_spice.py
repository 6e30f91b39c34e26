"""Issue 12 in ngspice: long names, unrealizable values, external data, a CNN on the current target,
and a spice batch that keeps the samples that succeeded."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import onnx
import pytest
from onnx import helper

from sim.cli import main
from tests.helpers import fvi, init, make_model

pytestmark = pytest.mark.ngspice

LONG = "serving_default_dense_input_" + "a" * 30


def _gemm(path, x="x", y="y", w=None):
    w = np.array([[0.5, -1.0, 0.25], [1.0, 0.5, -0.5], [-0.25, 0.75, 1.0], [0.5, 0.5, 0.5]], np.float32) \
        if w is None else w
    node = helper.make_node("Gemm", [x, "W", "B"], [y], name="fc")
    model = make_model([node], [fvi(x, ["N", w.shape[0]])], [fvi(y, ["N", w.shape[1]])],
                       [init("W", w), init("B", np.full(w.shape[1], 0.1, np.float32))])
    onnx.save(model, path)
    return model


def _ngspice_ok(outdir):
    proc = subprocess.run(["ngspice", "-b", "netlist.cir"], cwd=outdir, capture_output=True, text=True, timeout=60)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Error" not in text and "already exists" not in text, text[-2000:]
    return text


def test_long_input_and_output_names_run_in_ngspice(tmp_path, capsys):
    _gemm(tmp_path / "m.onnx", LONG, LONG.replace("input", "output"))
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o"), "-q"]) == 0
    _ngspice_ok(tmp_path / "o")


def test_unrealizable_weights_fail_unless_forced(tmp_path, capsys, caplog):
    _gemm(tmp_path / "m.onnx", w=np.full((4, 3), 1e30, np.float32))
    for target in ("opamp", "current", "crossbar"):
        assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / target), "--target", target,
                     "-q"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "node 'fc'" in err and "--force" in err and "realiz" in err, err
        assert not (tmp_path / target).exists()
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "f"), "--force", "-q"]) == 0
    assert any("written anyway (--force)" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert (tmp_path / "f" / "netlist.cir").is_file()


def test_external_data_directory_stands_on_its_own(tmp_path, capsys):
    model = _gemm(tmp_path / "plain.onnx")
    src = tmp_path / "src"
    src.mkdir()
    onnx.save_model(model, src / "m.onnx", save_as_external_data=True, location="m.data", size_threshold=0)
    out = tmp_path / "o"
    assert main(["compile", str(src / "m.onnx"), "-o", str(out), "-q"]) == 0
    (src / "m.data").unlink()  # the output directory must not depend on the source any more
    x = np.array([[0.5, -0.5, 1.0, 0.25]], np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["stimulus", str(out), "-i", str(tmp_path / "x.npy"), "-q"]) == 0
    text = _ngspice_ok(out)
    assert "p_out_y_0" in text or "out_y_0" in text


def test_cnn_on_the_current_target(tmp_path, capsys):
    """Flat input reshaped to an image, Conv, Relu, (Max|Average)Pool, Flatten, Gemm: no internal error
    in the wiring (a padded max-pool's pads read ground: no second rail in current mode); a written
    netlist runs in ngspice."""
    rng = np.random.default_rng(1)
    for pool in ("MaxPool", "AveragePool"):
        nodes = [helper.make_node("Reshape", ["x", "shp"], ["img"], name="rs"),
                 helper.make_node("Conv", ["img", "cw", "cb"], ["c"], name="conv", pads=[1, 1, 1, 1],
                                  kernel_shape=[3, 3]),
                 helper.make_node("Relu", ["c"], ["r"], name="relu"),
                 helper.make_node(pool, ["r"], ["p"], name="pool", strides=[2, 2],  # max: padded, reads ground
                                  **({"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]} if pool == "MaxPool"
                                     else {"kernel_shape": [2, 2]})),
                 helper.make_node("Flatten", ["p"], ["f"], name="flat"),
                 helper.make_node("Gemm", ["f", "W", "B"], ["y"], name="fc")]
        inits = [init("shp", np.array([-1, 1, 4, 4], np.int64)),
                 init("cw", (rng.standard_normal((2, 1, 3, 3)) * 0.3).astype(np.float32)),
                 init("cb", np.zeros(2, np.float32)), init("W", (rng.standard_normal((8, 2)) * 0.3).astype(np.float32)),
                 init("B", np.zeros(2, np.float32))]
        path = tmp_path / f"{pool}.onnx"
        onnx.save(make_model(nodes, [fvi("x", ["N", 16])], [fvi("y", ["N", 2])], inits), path)
        out = tmp_path / pool
        assert main(["compile", str(path), "-o", str(out), "--target", "current", "-q"]) == 0
        err = capsys.readouterr()
        assert "internal error" not in err.err
        doc = json.loads((out / "graph.json").read_text())
        if doc["netlist"]["written"]:
            _ngspice_ok(out)
        else:
            assert "node 'pool'" in doc["netlist"]["reason"]


def test_digital_op_message_does_not_suggest_the_same_target(tmp_path, capsys):
    node = helper.make_node("Sqrt", ["x"], ["y"], name="root")
    onnx.save(make_model([node], [fvi("x", ["N", 3])], [fvi("y", ["N", 3])]), tmp_path / "m.onnx")
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o"), "-q"]) == 0
    reason = json.loads((tmp_path / "o" / "graph.json").read_text())["netlist"]["reason"]
    assert "node 'root'" in reason and "try --target opamp" not in reason
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "c"), "--target", "crossbar", "-q"]) == 0
    # no target has a Sqrt circuit, so none is suggested (a Softmax on crossbar does get the hint)
    assert "no Kelvin target has a circuit for Sqrt" in json.loads((tmp_path / "c" / "graph.json").read_text())[
        "netlist"]["reason"]


def test_failed_samples_are_marked_and_the_rest_written(tmp_path, capsys, monkeypatch):
    import sim.spice_commands as sc

    _gemm(tmp_path / "m.onnx")
    x = np.random.default_rng(0).uniform(-1, 1, (3, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    real = sc.run_jobs

    def one_broken(jobs, **kw):  # sample 1's deck is rejected by ngspice: a real failure of one row
        broken = "* broken\nX1 a b nosuchsubckt\n.op\n.end\n"
        jobs = [j if j.name != "sample_1" else type(j)(j.name, broken, j.timeout_s) for j in jobs]
        return real(jobs, **kw)

    monkeypatch.setattr(sc, "run_jobs", one_broken)
    y_path = tmp_path / "y.npy"
    code = main(["run", str(tmp_path / "m.onnx"), "-i", str(tmp_path / "x.npy"), "-o", str(y_path),
                 "--engine", "spice", "--workers", "1", "-q"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "rows 1" in err and str(y_path) in err, err
    y = np.load(y_path)
    assert np.isnan(y[1]).all() and np.isfinite(y[[0, 2]]).all()
    w = onnx.numpy_helper.to_array(onnx.load(tmp_path / "m.onnx").graph.initializer[0])
    want = x[[0, 2]].astype(np.float64) @ w + 0.1
    np.testing.assert_allclose(y[[0, 2]], want, atol=0.01)
