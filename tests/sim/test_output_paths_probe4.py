"""Output paths that mixed two outputs or options that changed nothing, each now one line and exit 1 before
any work: measure's -o and --fits nested, a result file written into a Kelvin output directory, demo's
--dataset beside --model and --data, and a chip measurement given as --fits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from circuits.errors import OutputError
from circuits.files import check_output
from sim import zoo
from sim.cli import build_parser, main

DIGITS = Path(__file__).resolve().parents[2] / "models/examples/digits_mlp.onnx"


def _never(what: str):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what} ran although the options were refused")
    return fail


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "small.onnx"
    path.write_bytes(zoo.mlp((6, 5, 3), seed=0).SerializeToString())
    return path


@pytest.fixture
def compile_dir(tmp_path, model, capsys):
    """A current-mode compile directory (kelvin.json kind "compile"); no ngspice needed."""
    out = tmp_path / "cdir"
    assert main(["compile", str(model), "-o", str(out), "--target", "current", "-q"]) == 0
    capsys.readouterr()
    assert json.loads((out / "kelvin.json").read_text())["kind"] == "compile"
    return out


# --- 1: measure -o and --fits never nest ----------------------------------------------------------------
def test_measure_refuses_nested_output_and_fits_before_compiling(tmp_path, model, capsys, monkeypatch):
    """-o nestD --fits nestD/sub was exit 0 with the fits inside the CSV measurement (then carried into the
    next one); -o newF/meas --fits newF refused --fits only after ngspice; -o fitsF/m.npz --fits fitsF left
    the npz inside fitsF. Now refused first, naming both options, with nothing created."""
    import compiler.pipeline
    from sim.measure import lab

    monkeypatch.setattr(compiler.pipeline, "compile_model", _never("the compile"))
    monkeypatch.setattr(lab, "measure_chip", _never("the measurement"))
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    cases = (("nestD", "nestD/sub"), ("newF/meas", "newF"), ("fitsF/m.npz", "fitsF"), ("link/m.npz", "real"),
             ("real", "link/fits"))
    for out, fits in cases:
        code = main(["measure", str(model), "--chip-seed", "1", "--configs", "2", "--probes", "2",
                     "-o", str(tmp_path / out), "--fits", str(tmp_path / fits), "-q"])
        assert code == 1, (out, fits)
        _one_line_error(capsys, f"-o {tmp_path / out}", f"--fits {tmp_path / fits}", "inside the other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real", "small.onnx"]
    assert not any((tmp_path / "real").iterdir())


def test_measure_accepts_sibling_output_and_fits(tmp_path, model, capsys, monkeypatch):
    """Names sharing a prefix (m, m2) or a parent are not nested: the check lets them through to the run
    (here a stand-in that fails, an internal error, so no ngspice runs)."""
    from sim.measure import lab

    monkeypatch.setattr(lab, "measure_chip", _never("the measurement"))
    for out, fits in (("m", "m2"), ("d/m.npz", "d/fits")):
        assert main(["measure", str(model), "--chip-seed", "1", "-o", str(tmp_path / out), "--fits",
                     str(tmp_path / fits), "-q"]) == 3
        _one_line_error(capsys, "the measurement ran")


# --- 2: no result file inside a Kelvin output directory --------------------------------------------------
def test_check_output_refuses_a_file_in_a_kelvin_output_directory(tmp_path):
    for kind in ("compile", "measurement", "measured_chip", "demo", "fits"):
        d = tmp_path / kind
        d.mkdir()
        (d / "kelvin.json").write_text(json.dumps({"kind": kind}))
        with pytest.raises(OutputError, match=f"is a Kelvin {kind} directory, which holds only that output's "
                                              "files; write y.npy elsewhere"):
            check_output(d / "y.npy", directory=False)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("a user's file")
    assert check_output(plain / "y.npy", directory=False) == plain / "y.npy"
    foreign = tmp_path / "foreign"  # a kelvin.json naming no Kelvin output: not judged
    foreign.mkdir()
    (foreign / "kelvin.json").write_text(json.dumps({"name": "my project"}))
    assert check_output(foreign / "y.npy", directory=False) == foreign / "y.npy"
    assert check_output(tmp_path / "new" / "y.npy", directory=False) == tmp_path / "new" / "y.npy"


def test_run_and_measure_refuse_a_file_in_a_compile_directory(tmp_path, model, compile_dir, capsys, monkeypatch):
    """run -o cdir/y.npy and measure -o cdir/m.npz were exit 0 with the file in the compile directory (kept
    through a recompile); now one line each and the directory unchanged."""
    from sim.measure import lab

    monkeypatch.setattr(lab, "measure_chip", _never("the measurement"))
    before = sorted(p.name for p in compile_dir.iterdir())
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(0, 1, (3, 6)).astype(np.float32))
    assert main(["run", str(model), "-i", str(tmp_path / "x.npy"), "-o", str(compile_dir / "y.npy"), "-q"]) == 1
    _one_line_error(capsys, f"{compile_dir} is a Kelvin compile directory", "write y.npy elsewhere")
    assert main(["measure", str(model), "--chip-seed", "1", "-o", str(compile_dir / "m.npz"), "-q"]) == 1
    _one_line_error(capsys, f"{compile_dir} is a Kelvin compile directory", "write m.npz elsewhere")
    assert sorted(p.name for p in compile_dir.iterdir()) == before
    assert main(["run", str(model), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "out" / "y.npy"), "-q"]) == 0
    assert np.load(tmp_path / "out" / "y.npy").shape == (3, 3)


def test_train_refuses_outputs_in_a_compile_directory(tmp_path, model, compile_dir, capsys):
    """train's -o and --metrics go through check_output(directory=False), so they are refused too."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (12, 6)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=rng.integers(0, 3, 12), x_test=x[:4], y_test=rng.integers(0, 3, 4))
    for extra, name in ((["-o", str(compile_dir / "t.onnx")], "t.onnx"),
                        (["-o", str(tmp_path / "t.onnx"), "--metrics", str(compile_dir / "m.json")], "m.json")):
        assert main(["train", str(model), "--data", str(tmp_path / "d.npz"), *extra, "--epochs", "1", "-q"]) == 1
        _one_line_error(capsys, "is a Kelvin compile directory", f"write {name} elsewhere")
    assert not (tmp_path / "t.onnx").exists()


# --- 3: demo --dataset beside --model and --data -------------------------------------------------------
def test_demo_refuses_dataset_that_model_and_data_override(tmp_path, model, capsys, monkeypatch):
    import sim.demo

    monkeypatch.setattr(sim.demo, "_run", _never("the demo"))
    np.savez(tmp_path / "d.npz", x_train=np.zeros((4, 6), np.float32), y_train=np.zeros(4, int),
             x_test=np.zeros((2, 6), np.float32), y_test=np.zeros(2, int))
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(model), "--data", str(tmp_path / "d.npz"), "--dataset", "mnist",
                 "-o", str(out), "-q"]) == 1
    _one_line_error(capsys, "--dataset mnist", "drop it")
    assert not out.exists()


def test_demo_dataset_default_and_its_uses_are_unchanged(tmp_path, model, monkeypatch):
    """Not given, --dataset is None on the command line and digits in the demo (and its kelvin.json); with
    --model alone it still names the data (its documented default), and with --data alone the network."""
    import sim.demo
    from sim.demo import DemoConfig, run_demo

    assert build_parser().parse_args(["demo"]).dataset is None
    assert DemoConfig().dataset_name == "digits" and DemoConfig(dataset="mnist").dataset_name == "mnist"
    DemoConfig(dataset="mnist", model=str(model)).check()
    DemoConfig(dataset="mnist", data="iris").check()
    DemoConfig(model=str(model), data="iris").check()
    recorded = {}

    def record(stage, final, cfg, progress):
        recorded.update(json.loads((stage / "kelvin.json").read_text()))
        return {}

    monkeypatch.setattr(sim.demo, "_run", record)
    run_demo(tmp_path / "demo", DemoConfig(), progress=False)
    assert recorded["kind"] == "demo" and recorded["dataset"] == "digits"


# --- 4: --fits naming a chip measurement -------------------------------------------------------------
def test_fitted_hardware_names_a_measurement_given_as_fits(tmp_path, model, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 6), np.float32))
    meas = tmp_path / "meas"
    meas.mkdir()
    (meas / "kelvin.json").write_text(json.dumps({"kind": "measurement"}))
    (meas / "probes.csv").write_text("probe\n")
    char = tmp_path / "char"
    char.mkdir()
    (char / "kelvin.json").write_text(json.dumps({"kind": "characterization"}))
    empty = tmp_path / "empty"
    empty.mkdir()
    for fits, needles in ((meas, ("is a chip measurement; fit it first: kelvin fit-chip", "-o FITS")),
                          (char, ("is a characterization; fit it first: kelvin fit",)),
                          (empty, ("no fit files (*.json) in it; run kelvin characterize and kelvin fit",))):
        assert main(["run", str(model), "-i", str(tmp_path / "x.npy"), "--target", "current", "--hardware", "fitted",
                     "--fits", str(fits), "-q"]) == 1
        _one_line_error(capsys, f"--fits {fits}: ", *needles)


def test_evaluate_metrics_into_a_compile_dir_are_refused(tmp_path, capsys):
    cdir = tmp_path / "c"
    assert main(["compile", str(DIGITS), "-o", str(cdir), "-q"]) == 0
    before = sorted(p.name for p in cdir.iterdir())
    assert main(["evaluate", str(DIGITS), "--data", "digits", "-o", str(cdir / "r.json"), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is a Kelvin compile directory" in err, err
    assert sorted(p.name for p in cdir.iterdir()) == before
