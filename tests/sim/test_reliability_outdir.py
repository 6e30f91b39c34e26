"""Issue 12: a compile's output directory always holds the files of exactly one compile.

Built in a hidden sibling and swapped in under a lock: tested with failing compiles, a SIGKILL
mid-compile, two concurrent compiles, and a recompile that no longer writes chip.npz.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from sim.cli import main
from tests.helpers import fvi, init, make_model

ROOT = Path(__file__).resolve().parents[2]


def _model(path: Path, w: np.ndarray) -> Path:
    node = helper.make_node("Gemm", ["x", "W", "B"], ["y"], name="fc")
    onnx.save(make_model([node], [fvi("x", ["N", w.shape[0]])], [fvi("y", ["N", w.shape[1]])],
                         [init("W", w.astype(np.float32)), init("B", np.zeros(w.shape[1], np.float32))]), path)
    return path


def _snapshot(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def _no_leftovers(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if p.name.startswith(".")], list(parent.iterdir())


@pytest.fixture()
def good(tmp_path, capsys):
    model = _model(tmp_path / "m.onnx", np.eye(3, 2))
    out = tmp_path / "out"
    assert main(["compile", str(model), "-o", str(out), "-q"]) == 0
    capsys.readouterr()
    return out


@pytest.mark.parametrize("case", ["nan", "scale0", "chipseed", "scaleinf", "huge"])
def test_failed_compile_leaves_the_old_directory_whole(tmp_path, good, capsys, case):
    before = _snapshot(good)
    model = _model(tmp_path / "bad.onnx", np.full((3, 2), np.nan if case == "nan" else 1e30 if case == "huge" else 1))
    extra = {"scale0": ["--scale", "0"], "chipseed": ["--chip-seed", "-1"], "scaleinf": ["--scale", "inf"]}
    code = main(["compile", str(model), "-o", str(good), "-q", *extra.get(case, [])])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "internal error" not in err, err
    assert _snapshot(good) == before
    _no_leftovers(tmp_path)


def test_recompile_without_chip_seed_drops_chip_npz(tmp_path, capsys):
    out = tmp_path / "o"
    digits = str(ROOT / "models" / "examples" / "digits_mlp.onnx")
    assert main(["compile", digits, "-o", str(out), "--target", "current", "--chip-seed", "3", "-q"]) == 0
    assert (out / "chip.npz").is_file()
    (out / "notes.txt").write_text("mine")  # not a compile product: carried over
    assert main(["compile", digits, "-o", str(out), "--target", "current", "-q"]) == 0
    assert not (out / "chip.npz").exists()
    assert json.loads((out / "kelvin.json").read_text())["chip_seed"] is None
    assert (out / "notes.txt").read_text() == "mine"


def test_a_validate_report_in_the_directory_does_not_outlive_its_netlist(tmp_path, capsys):
    """A report.json about the op-amp netlist stayed beside the crossbar one that replaced it."""
    out = tmp_path / "o"
    digits = str(ROOT / "models" / "examples" / "digits_mlp.onnx")
    assert main(["compile", digits, "-o", str(out), "-q"]) == 0
    assert main(["validate", str(out), "--blocks", "1", "--report", str(out / "report.json"), "-q"]) == 0
    assert main(["validate", str(out), "--blocks", "1", "--report", str(tmp_path / "outside.json"), "-q"]) == 0
    (out / "notes.txt").write_text("mine")
    assert json.loads((out / "kelvin.json").read_text())["derived"] == ["report.json"]
    assert main(["compile", digits, "-o", str(out), "--target", "crossbar", "-q"]) == 0
    assert not (out / "report.json").exists() and (tmp_path / "outside.json").is_file()
    assert (out / "notes.txt").read_text() == "mine" and "derived" not in json.loads((out / "kelvin.json").read_text())


def test_refuses_a_foreign_non_empty_directory(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    model = _model(tmp_path / "m.onnx", np.eye(3, 2))
    assert main(["compile", str(model), "-o", str(tmp_path), "-q"]) == 1
    assert "not written by kelvin" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"


_SLOW = """
import sys, time
import sim.spice_commands as sc
orig = sc.write_netlist_files
def slow(out, *a, **k):
    nl = orig(out, *a, **k)
    open(sys.argv[1], "w").close()  # half the files are written: now kill or race me
    time.sleep(60)
    return nl
sc.write_netlist_files = slow
from sim.cli import main
sys.exit(main(["compile", sys.argv[2], "-o", sys.argv[3], "-q", "--target", sys.argv[4]]))
"""


def _start_slow(tmp_path: Path, model: Path, out: Path, target: str) -> tuple[subprocess.Popen, Path]:
    flag = tmp_path / "flag"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW, str(flag), str(model), str(out), target], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not flag.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc, flag


def test_sigkill_mid_compile_keeps_the_old_directory(tmp_path, good, capsys):
    before = _snapshot(good)
    model = _model(tmp_path / "other.onnx", np.ones((3, 2)))
    proc, _ = _start_slow(tmp_path, model, good, "current")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert _snapshot(good) == before
    # the next compile is not blocked by the dead one's lock and sweeps its half-built sibling
    assert main(["compile", str(model), "-o", str(good), "-q"]) == 0
    assert json.loads((good / "kelvin.json").read_text())["source"] == str(model)
    _no_leftovers(tmp_path)


def test_concurrent_compile_is_refused_while_one_runs(tmp_path, good, capsys):
    model = _model(tmp_path / "other.onnx", np.ones((3, 2)))
    proc, _ = _start_slow(tmp_path, model, good, "current")
    try:
        assert main(["compile", str(model), "-o", str(good), "-q"]) == 1
        err = capsys.readouterr().err
        assert "another kelvin run is writing" in err and err.count("\n") == 1
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_two_concurrent_cli_compiles_never_mix(tmp_path, capsys):
    model = _model(tmp_path / "m.onnx", np.eye(3, 2))
    out = tmp_path / "out"
    procs = [subprocess.Popen([sys.executable, "-m", "sim.cli", "compile", str(model), "-o", str(out), "-q",
                               "--target", t], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for t in ("opamp", "crossbar")]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert any(code == 0 for code, _ in results), results
    for code, err in results:
        assert code == 0 or "another kelvin run is writing" in err, err
    target = json.loads((out / "kelvin.json").read_text())["target"]
    assert json.loads((out / "graph.json").read_text())["target"]["name"] == target
    assert f"target {target}" in (out / "netlist.cir").read_text().splitlines()[0]
    _no_leftovers(tmp_path)


def test_outputs_of_one_kind_never_replace_another(tmp_path, capsys):
    """A CSV measurement (maybe silicon data that cannot be taken again), a fits directory, a compile and a
    demo all hold a kelvin.json; each command now refuses a directory of another kind instead of replacing
    or merging into it (compile -o MEASUREMENT kept probes.csv beside a new kelvin.json)."""
    import json

    from sim.cli import main
    from tests.helpers import fvi, init, make_model
    node = onnx.helper.make_node("Gemm", ["x", "W"], ["y"], name="fc")
    onnx.save(make_model([node], [fvi("x", ["N", 4])], [fvi("y", ["N", 3])], [init("W", np.eye(4, 3, dtype=np.float32))]),
              tmp_path / "m.onnx")
    meas = tmp_path / "meas"
    meas.mkdir()
    (meas / "kelvin.json").write_text(json.dumps({"kind": "measurement", "banks": [], "shapes": {}}))
    (meas / "probes.csv").write_text("config\n")
    before = {p.name: p.read_bytes() for p in meas.iterdir()}
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(meas), "-q"]) == 1
    assert "holds a Kelvin measurement output, not a compile one" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in meas.iterdir()} == before
    legacy = tmp_path / "legacy"  # a measurement written before kinds were recorded: known by its shapes
    legacy.mkdir()
    (legacy / "kelvin.json").write_text(json.dumps({"banks": [], "shapes": {}}))
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(legacy), "-q"]) == 1
    assert "measurement output" in capsys.readouterr().err
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "c"), "-q"]) == 0
    assert json.loads((tmp_path / "c" / "kelvin.json").read_text())["kind"] == "compile"
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "c"), "-q"]) == 0  # same kind: replaced


def test_an_output_never_overwrites_an_input(tmp_path, capsys):
    from sim.cli import main
    from tests.helpers import fvi, init, make_model
    node = onnx.helper.make_node("Gemm", ["x", "W"], ["y"], name="fc")
    model = tmp_path / "m.onnx"
    onnx.save(make_model([node], [fvi("x", ["N", 4])], [fvi("y", ["N", 3])], [init("W", np.eye(4, 3, dtype=np.float32))]),
              model)
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    kept = model.read_bytes()
    for argv, needle in ((["run", str(model), "-i", str(tmp_path / "x.npy"), "-o", str(model)], "would overwrite model"),
                         (["run", str(model), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "x.npy")],
                          "would overwrite input"),
                         (["train", str(model), "--data", "iris", "-o", str(tmp_path / "t.onnx"), "--metrics",
                           str(tmp_path / "t.onnx")], "--metrics")):
        assert main([*argv, "-q"]) == 1
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    assert model.read_bytes() == kept


def test_validate_report_never_overwrites_what_it_validates(tmp_path, capsys):
    """--report out/model.onnx (or the netlist, graph.json, the -i file) was exit 0 with the file gone."""
    out = tmp_path / "o"
    digits = str(ROOT / "models" / "examples" / "digits_mlp.onnx")
    assert main(["compile", digits, "-o", str(out), "-q"]) == 0
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 64), np.float32))
    before = _snapshot(out)
    for target in ("model.onnx", "netlist.cir", "graph.json", "kelvin.json", str(x)):
        report = target if target == str(x) else str(out / target)
        code = main(["validate", str(out), "--blocks", "1", "-i", str(x), "--report", report, "-q"])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and "would overwrite" in err and "--report" in err, err
    assert _snapshot(out) == before and np.load(x).shape == (1, 64)
    for _ in range(2):  # its own report, again: replaced
        assert main(["validate", str(out), "--blocks", "1", "--report", str(out / "report.json"), "-q"]) == 0
