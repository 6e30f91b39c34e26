"""Issue 12: bad input files and options are one clear line (exit 1) in every engine, never a fallback."""

from __future__ import annotations

import argparse
import re

import numpy as np
import onnx
import pytest
from onnx import helper

from sim.cli import build_parser, main
from tests.helpers import fvi, init, make_model


@pytest.fixture()
def model(tmp_path):
    node = helper.make_node("Gemm", ["x", "W", "B"], ["y"], name="fc")
    path = tmp_path / "m.onnx"
    onnx.save(make_model([node], [fvi("x", ["N", 4])], [fvi("y", ["N", 3])],
                         [init("W", np.eye(4, 3, dtype=np.float32)), init("B", np.zeros(3, np.float32))]), path)
    return str(path)


def _line(capsys, code: int) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1 and "internal error" not in err and "Traceback" not in err, (code, err)
    return lines[0]


def _bad_inputs(tmp_path):
    nan = np.ones((3, 4), np.float32)
    nan[1, 2] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "inf.npy", np.full((2, 4), np.inf, np.float32))
    np.save(tmp_path / "cplx.npy", np.ones((2, 4), np.complex64))
    np.savez(tmp_path / "other.npz", foo=np.ones((2, 4), np.float32))
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04garbage")
    (tmp_path / "adir").mkdir()
    return {"nan.npy": r"'x'.*non-finite.*\[1, 2\]", "inf.npy": r"'x'.*non-finite.*\[0, 0\]",
            "cplx.npy": r"'x' is complex", "other.npz": r"no array named 'x'.*'foo'",
            "corrupt.npz": r"corrupt.npz: cannot read", "adir": r"adir: is a directory"}


@pytest.mark.parametrize("engine", ["ideal", "spice"])
def test_bad_input_files(tmp_path, model, capsys, engine):
    for name, pattern in _bad_inputs(tmp_path).items():
        line = _line(capsys, main(["run", model, "-i", str(tmp_path / name), "--engine", engine, "-q"]))
        assert re.search(pattern, line), (name, line)


def test_spice_engine_batch_and_scalar_checks(tmp_path, model, capsys):
    np.save(tmp_path / "empty.npy", np.ones((0, 4), np.float32))
    np.save(tmp_path / "scalar.npy", np.float32(1))
    np.save(tmp_path / "huge.npy", np.full((2, 4), 1e30, np.float32))
    assert "holds no samples" in _line(capsys, main(["run", model, "-i", str(tmp_path / "empty.npy"),
                                                    "--engine", "spice", "-q"]))
    for engine in ("ideal", "spice"):  # the same shape check in front of both engines
        assert "'x': expected shape [?, 4], got []" in _line(
            capsys, main(["run", model, "-i", str(tmp_path / "scalar.npy"), "--engine", engine, "-q"]))
    line = _line(capsys, main(["run", model, "-i", str(tmp_path / "huge.npy"), "--engine", "spice", "-q"]))
    assert "'x'" in line and "12 V" in line  # refused against the rails before any simulation


@pytest.mark.parametrize("argv, option", [
    (["compile", "M", "-o", "O", "--scale", "0"], "--scale"),
    (["compile", "M", "-o", "O", "--scale", "inf"], "--scale"),
    (["compile", "M", "-o", "O", "--chip-seed", "-1"], "--chip-seed"),
    (["compile", "M", "-o", "O", "--max-devices", "0"], "--max-devices"),
    (["run", "M", "-i", "X", "--engine", "spice", "--scale", "0"], "--scale"),
    (["run", "M", "-i", "X", "--timeout", "-1"], "--timeout"),
    (["validate", "O", "--points", "0"], "--points"),
    (["validate", "O", "--seed", "-3"], "--seed"),
    (["characterize", "opamp.summer", "-o", "O", "--points", "-1"], "--points"),
    (["characterize", "opamp.summer", "-o", "O", "--seed", "-1"], "--seed"),
    (["characterize", "opamp.summer", "-o", "O", "--max-jobs", "-1"], "--max-jobs"),
    (["characterize", "opamp.summer", "-o", "O", "--instances", "0"], "--instances"),
    (["evaluate", "M", "--data", "digits", "--chips", "0"], "--chips"),
])
def test_out_of_range_options(tmp_path, capsys, argv, option):
    argv = [str(tmp_path / a) if a in ("M", "O", "X") else a for a in argv]
    line = _line(capsys, main([*argv, "-q"]))
    assert line.startswith(f"kelvin {argv[0]}: error: {option} must be"), line


def test_global_verbose_and_quiet_take_effect(tmp_path, capsys):
    args = build_parser().parse_args(["-v", "-q", "compile", "m.onnx", "-o", "o"])
    assert isinstance(args, argparse.Namespace) and args.verbose and args.quiet
    args = build_parser().parse_args(["compile", "m.onnx", "-o", "o", "-q"])
    assert args.quiet and not args.verbose
    (tmp_path / "x.onnx").write_text("nope")
    assert main(["-v", "compile", str(tmp_path / "x.onnx"), "-o", str(tmp_path / "o")]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_rank0_model_runs_in_the_engine_and_says_why_not_in_spice(tmp_path, capsys):
    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    path = tmp_path / "r0.onnx"
    onnx.save(make_model([node], [fvi("x", [])], [fvi("y", [])]), path)
    np.save(tmp_path / "x.npy", np.float32(-2.0))
    np.save(tmp_path / "y.npy", np.float32(0.0))
    assert main(["run", str(path), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "out.npy"), "-q"]) == 0
    assert float(np.load(tmp_path / "out.npy")) == 0.0
    capsys.readouterr()
    assert "sample axis" in _line(capsys, main(["run", str(path), "-i", str(tmp_path / "x.npy"),
                                                "--engine", "spice", "-q"]))


def test_unreachable_dask_scheduler_is_one_clear_error():
    from sim.spice.dask_backend import connect
    from sim.spice.errors import SimulationError

    with pytest.raises(SimulationError, match=r"--dask tcp://127.0.0.1:1: cannot reach the Dask scheduler"):
        connect("tcp://127.0.0.1:1", timeout_s=1.0)


def test_stimulus_on_a_directory_without_netlist(tmp_path, capsys):
    node = helper.make_node("Sqrt", ["x"], ["y"], name="root")  # digital periphery: no netlist is written
    onnx.save(make_model([node], [fvi("x", ["N", 3])], [fvi("y", ["N", 3])]), tmp_path / "m.onnx")
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o"), "-q"]) == 0
    np.save(tmp_path / "x.npy", np.ones((1, 3), np.float32))
    capsys.readouterr()
    line = _line(capsys, main(["stimulus", str(tmp_path / "o"), "-i", str(tmp_path / "x.npy")]))
    assert "no netlist.cir" in line
    assert not (tmp_path / "o" / "inputs.inc").exists()


def test_validate_api_refuses_a_one_point_sweep():
    from circuits.errors import ParameterError
    from compiler.pipeline import compile_model
    from sim.validate import validate_graph

    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    graph = compile_model(make_model([node], [fvi("x", ["N", 2])], [fvi("y", ["N", 2])]), "opamp").graph
    with pytest.raises(ParameterError, match="points >= 2"):
        validate_graph(graph, scale=0.25, points=0)


def test_zero_size_input_compiles_without_a_netlist(tmp_path, capsys):
    import json

    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    onnx.save(make_model([node], [fvi("x", ["N", 0])], [fvi("y", ["N", 0])]), tmp_path / "m.onnx")
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o"), "-q"]) == 0
    reason = json.loads((tmp_path / "o" / "graph.json").read_text())["netlist"]["reason"]
    assert "'x'" in reason and "zero-size" in reason


def _hostile_files(tmp_path):
    """Files a probe of the CLI turned up that ended in internal errors or NaN outputs."""
    import zipfile
    with zipfile.ZipFile(tmp_path / "member.npz", "w") as z:  # an .npz member that is not an .npy
        z.writestr("x.npy", b"not npy")
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (8000000000,), }"
    header += " " * (63 - len(header) % 64) + "\n"  # an .npy header promising 30 GiB
    (tmp_path / "huge.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                                        + header.encode() + b"\0" * 64)
    np.save(tmp_path / "f64.npy", np.full((2, 4), 1e300))  # finite, but Inf in the engine's float32
    (tmp_path / "blank.csv").write_text("\n\n")
    np.save(tmp_path / "single.npy", np.ones((2, 4)))  # an .npy where an .npz data set is due
    return {"member.npz": r"member 'x' is not a NumPy array", "huge.npy": r"larger than this machine's memory",
            "f64.npy": r"'x' holds 1e\+300 at index \[0, 0\], beyond the engine's float32 range",
            "blank.csv": r"blank.csv: holds no numbers"}


def test_hostile_input_files_are_one_line(tmp_path, model, capsys):
    for name, pattern in _hostile_files(tmp_path).items():
        line = _line(capsys, main(["run", model, "-i", str(tmp_path / name), "-q"]))
        assert re.search(pattern, line), (name, line)
    line = _line(capsys, main(["evaluate", model, "--data", str(tmp_path / "single.npy"), "-q"]))
    assert "single .npy array, not an .npz archive" in line, line


def test_training_data_beyond_float32_or_nan_targets(tmp_path, model, capsys):
    base = {"x_train": np.ones((4, 4)), "y_train": np.zeros((4, 3)), "x_test": np.ones((2, 4)),
            "y_test": np.zeros((2, 3))}
    for key, bad, pattern in (("x_test", np.full((2, 4), 1e300), r"x_test holds 1e\+300 at index \(0, 0\)"),
                              ("y_train", np.full((4, 3), np.nan), r"y_train holds nan at index \(0, 0\)")):
        np.savez(tmp_path / "d.npz", **{**base, key: bad})
        line = _line(capsys, main(["evaluate", model, "--data", str(tmp_path / "d.npz"), "--loss", "mse", "-q"]))
        assert re.search(pattern, line), line


@pytest.mark.parametrize("argv, pattern", [
    (["--target", "crossbar", "--hardware", "quantized", "--dac-bits", "1"], r"--dac-bits: .*at least 2 bits"),
    (["--target", "crossbar", "--hardware", "quantized", "--adc-bits", "1"], r"--adc-bits: .*at least 2 bits"),
    (["--hardware", "noise", "--noise", "1e300"], r"--noise: .*in \[0, 1\]")])
def test_options_that_made_nan_or_divided_by_zero(tmp_path, model, capsys, argv, pattern):
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    line = _line(capsys, main(["run", model, "-i", str(tmp_path / "x.npy"), *argv, "-q"]))
    assert re.search(pattern, line), line


def test_output_name_too_long(tmp_path, model, capsys):
    line = _line(capsys, main(["compile", model, "-o", str(tmp_path / ("a" * 300)), "-q"]))
    assert "not a usable output path" in line and "too long" in line, line


def test_netlist_refusals_keep_the_compile(tmp_path, capsys):
    """A MatMul of x by its own transpose mixes a batch's samples: no netlist, said why, graph.json
    written. A 10¹²-feature input is refused by the size check before any port is built (it hung)."""
    import json
    mm = [helper.make_node("Transpose", ["x"], ["xt"], name="t"), helper.make_node("MatMul", ["x", "xt"], ["y"], name="mm")]
    relu = [helper.make_node("Relu", ["x"], ["y"], name="r")]
    for name, nodes, x, y, reason in (("mm", mm, [2, 4], ["a", "b"], r"'mm' \(opamp.matmul\): cannot build one sample"),
                                      ("big", relu, ["N", 10**12], ["N", 10**12], r"about [\d,]+ devices")):
        onnx.save(make_model(nodes, [fvi("x", x)], [fvi("y", y)]), tmp_path / f"{name}.onnx")
        assert main(["compile", str(tmp_path / f"{name}.onnx"), "-o", str(tmp_path / name), "-q"]) == 0
        doc = json.loads((tmp_path / name / "graph.json").read_text())
        assert not doc["netlist"]["written"] and re.search(reason, doc["netlist"]["reason"]), doc["netlist"]


def test_infinite_constant_signal_names_the_tensor(tmp_path, capsys):
    node = helper.make_node("Mul", ["x", "c"], ["y"], name="mu")
    onnx.save(make_model([node], [fvi("x", ["N", 4])], [fvi("y", ["N", 4])],
                         [init("c", np.array([np.inf, 1, 1, 1], np.float32))]), tmp_path / "m.onnx")
    line = _line(capsys, main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o"), "-q"]))
    assert "tensor 'c' holds inf at index [0]" in line, line


def test_nan_outputs_give_strict_json(tmp_path, capsys, caplog):
    """Log of negative inputs is NaN, as onnxruntime says; the metrics stay strict JSON (null) and a
    warning says why, where `allow_nan=False` used to end in an internal ValueError."""
    import json
    onnx.save(make_model([helper.make_node("Log", ["x"], ["y"], name="l")], [fvi("x", ["N", 4])],
                         [fvi("y", ["N", 4])]), tmp_path / "log.onnx")
    np.savez(tmp_path / "d.npz", x_train=-np.ones((4, 4)), y_train=np.zeros((4, 4)), x_test=-np.ones((2, 4)),
             y_test=np.zeros((2, 4)))
    out = tmp_path / "e.json"
    assert main(["evaluate", str(tmp_path / "log.onnx"), "--data", str(tmp_path / "d.npz"), "--loss", "mse",
                 "-o", str(out), "-q"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out.strip())["test_loss"] is None and "not finite" in caplog.text
    assert json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(c))["test_loss"] is None


def test_run_refuses_non_finite_outputs_and_empty_batches(tmp_path, capsys):
    """Log of a negative input is NaN (as onnxruntime says), a float32 overflow is Inf: no circuit outputs
    either, so `run` says which output and where instead of writing them with exit 0; a divisor that is a
    constant 0 is refused at import; an input file without samples is refused."""
    log = make_model([helper.make_node("Log", ["x"], ["y"], name="l")], [fvi("x", ["N", 4])], [fvi("y", ["N", 4])])
    onnx.save(log, tmp_path / "log.onnx")
    div = make_model([helper.make_node("Div", ["x", "c"], ["y"], name="dv")], [fvi("x", ["N", 4])],
                     [fvi("y", ["N", 4])], [init("c", np.array([1, 0, 1, 1], np.float32))])
    onnx.save(div, tmp_path / "div.onnx")
    np.save(tmp_path / "neg.npy", -np.ones((2, 4), np.float32))
    np.save(tmp_path / "none.npy", np.ones((0, 4), np.float32))
    out = tmp_path / "y.npy"
    line = _line(capsys, main(["run", str(tmp_path / "log.onnx"), "-i", str(tmp_path / "neg.npy"), "-o", str(out), "-q"]))
    assert "output 'y' is nan at index [0, 0] (8 values not finite)" in line and not out.exists(), line
    line = _line(capsys, main(["run", str(tmp_path / "div.onnx"), "-i", str(tmp_path / "neg.npy"), "-q"]))
    assert "node 'dv' (Div): divisor 'c' is 0 at index [1]" in line, line
    line = _line(capsys, main(["run", str(tmp_path / "log.onnx"), "-i", str(tmp_path / "none.npy"), "-q"]))
    assert "input 'x' holds no samples" in line, line


@pytest.mark.parametrize("extra, needle", [(["--fits", "F"], "--fits applies to --hardware fitted"),
                                           (["--pcm-time", "5"], "--pcm-time applies to --hardware pcm"),
                                           (["--no-drift-compensation"], "--no-drift-compensation applies")])
def test_options_for_a_mode_not_asked_for(tmp_path, model, capsys, extra, needle):
    """They used to be ignored without a word (e.g. --fits without --hardware fitted ran the ideal model)."""
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    extra = [str(tmp_path) if a == "F" else a for a in extra]
    line = _line(capsys, main(["run", model, "-i", str(tmp_path / "x.npy"), *extra, "-q"]))
    assert needle in line, line


def test_cost_model_constants_that_overflow(tmp_path, model, capsys):
    """1e308 J per conversion is finite, but the totals are not: one line, and no output directory."""
    (tmp_path / "cm.json").write_text('{"e_adc_j": {"value": 1e308}}')
    out = tmp_path / "o"
    line = _line(capsys, main(["compile", model, "-o", str(out), "--target", "crossbar", "--cost-model",
                               str(tmp_path / "cm.json"), "-q"]))
    assert "cm.json: its constants make the cost totals overflow" in line and not out.exists(), line


def test_messages_name_the_node_file_or_option(tmp_path, model, capsys):
    """Errors a probe found correct but unplaced: each now names where the problem is."""
    clip = make_model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="cl")], [fvi("x", ["N", 4])],
                      [fvi("y", ["N", 4])], [init("lo", np.array(1.0, np.float32)), init("hi", np.array(-1.0, np.float32))])
    onnx.save(clip, tmp_path / "clip.onnx")
    const = make_model([helper.make_node("Constant", [], ["y"], name="c", value=onnx.numpy_helper.from_array(
        np.ones(2, np.float32)))], [], [fvi("y", [2])])
    onnx.save(const, tmp_path / "const.onnx")
    np.save(tmp_path / "x5.npy", np.ones((3, 5), np.float32))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "afile").write_text("")
    cases = [
        (["compile", str(tmp_path / "clip.onnx"), "-o", str(tmp_path / "o")], "node 'cl' (opamp.clipper): ClipperBlock"),
        (["run", model, "-i", str(tmp_path / "x5.npy")], f"{tmp_path / 'x5.npy'}: input 'x': expected shape [?, 4]"),
        (["run", model, "-i", str(tmp_path / "obj.npy")], "pickled Python objects"),
        (["run", str(tmp_path / "const.onnx"), "-i", str(tmp_path / "x5.npy")], "the model has no inputs"),
        (["train", model, "--data", "iris", "-o", str(tmp_path / "t.onnx"), "--checkpoint", str(tmp_path / "afile")],
         "--checkpoint"),
    ]
    for argv, needle in cases:
        line = _line(capsys, main([*argv, "-q"]))
        assert needle in line and "allow_pickle" not in line, (argv, line)


def test_stimulus_refuses_a_model_swapped_after_compile(tmp_path, model, capsys):
    import shutil
    assert main(["compile", model, "-o", str(tmp_path / "o"), "-q"]) == 0
    other = make_model([helper.make_node("Relu", ["x"], ["y"], name="r")], [fvi("x", ["N", 6])], [fvi("y", ["N", 6])])
    onnx.save(other, tmp_path / "other.onnx")
    shutil.copy(tmp_path / "other.onnx", tmp_path / "o" / "model.onnx")
    np.save(tmp_path / "x6.npy", np.ones((1, 6), np.float32))
    line = _line(capsys, main(["stimulus", str(tmp_path / "o"), "-i", str(tmp_path / "x6.npy"), "-q"]))
    assert "input ports are not those of" in line, line


def test_a_damaged_compile_kelvin_json_names_the_file_and_key(tmp_path, model, capsys):
    """kelvin.json holding [1,2] was "unreadable (list indices must be integers or slices, not str)" and
    "scale": "big" was "could not convert string to float"; each is now one line naming the file and key."""
    import json
    out = tmp_path / "o"
    assert main(["compile", model, "-o", str(out), "-q"]) == 0
    np.save(tmp_path / "x.npy", np.ones((1, 4), np.float32))
    meta = out / "kelvin.json"
    good = json.loads(meta.read_text())
    cases = [("[1, 2]", "holds a JSON list, not the object of compile settings"),
             ("{not json", "unreadable, not JSON"),
             (json.dumps({**good, "scale": "big"}), "key 'scale' must be a positive number, got \"big\""),
             (json.dumps({**good, "scale": -1}), "key 'scale' must be a positive number, got -1"),
             (json.dumps({**good, "target": 5}), "key 'target' must be one of opamp, current, crossbar, got 5"),
             (json.dumps({**good, "chip_seed": "7"}), "key 'chip_seed' must be null or an integer >= 0"),
             (json.dumps({k: v for k, v in good.items() if k != "target"}), "has no 'target' key")]
    for text, needle in cases:
        meta.write_text(text)
        for argv in (["stimulus", str(out), "-i", str(tmp_path / "x.npy")], ["validate", str(out), "--blocks", "1"]):
            line = _line(capsys, main([*argv, "-q"]))
            assert line.startswith(f"kelvin {argv[0]}: error: {meta}: ") and needle in line, (text, line)
    meta.write_text(json.dumps({k: v for k, v in good.items() if k not in ("chip_seed", "sizing", "tile")}))
    assert main(["stimulus", str(out), "-i", str(tmp_path / "x.npy"), "-q"]) == 0  # an older compile still reads


def test_evaluate_and_train_options_that_were_ignored_or_misreported(tmp_path, model, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.uniform(0, 1, (8, 4)), y_train=rng.integers(0, 3, 8),
             x_test=rng.uniform(0, 1, (5, 4)), y_test=rng.integers(0, 3, 5))
    d = str(tmp_path / "d.npz")
    for argv, needle in ((["evaluate", model, "--data", d, "--engine", "spice", "--samples", "9"], "has 5 samples"),
                         (["evaluate", model, "--data", d, "--samples", "3"], "--samples applies to --engine spice"),
                         (["evaluate", model, "--data", d, "--engine", "spice", "--target", "current", "--chips", "2"],
                          "--chips (a yield over chip instances) runs in the engine"),
                         (["train", model, "--data", d, "-o", str(tmp_path / "t.onnx"), "--eval-chip-seed", "2"],
                          "--eval-chip-seed applies to --eval-hardware chip"),
                         (["compile", model, "-o", str(tmp_path / "o"), "--chip-seed", str(2**64)], "[0, 2^63)")):
        line = _line(capsys, main([*argv, "-q"]))
        assert needle in line, (argv, line)


def test_resume_refuses_data_whose_content_changed():
    """The checkpoint's identity hashed the data's name and size only: a file rewritten with other values
    resumed as if nothing had changed."""
    from compiler.pipeline import compile_model
    from sim.engine.prepare import build_program
    from sim.train.data import Dataset
    from sim.train.loop import TrainConfig, run_id
    from sim.zoo import mlp
    prog = build_program(compile_model(mlp((4, 3), seed=0), "opamp"), trainable=True)
    x = np.ones((6, 4), np.float32)
    a = Dataset("d.npz", x, np.zeros(6, np.int64), x, np.zeros(6, np.int64), 3)
    b = Dataset("d.npz", x * 2, np.zeros(6, np.int64), x, np.zeros(6, np.int64), 3)
    cfg = TrainConfig()
    assert run_id(prog, a, cfg, {}) == run_id(prog, a, cfg, {}) != run_id(prog, b, cfg, {})


def test_a_model_that_mixes_samples_runs_whole_and_gets_no_netlist(tmp_path, capsys):
    """Softmax over axis 0 on 300 samples: `run` cut them into 256 + 44 and each column summed to 2
    (0.18 from onnxruntime); compile wrote a netlist whose softmax ran over the features."""
    import json

    import onnxruntime as ort
    m = make_model([helper.make_node("Softmax", ["x"], ["y"], axis=0, name="sm")], [fvi("x", ["N", 4])],
                   [fvi("y", ["N", 4])])
    m.ir_version = 8
    onnx.save(m, tmp_path / "m.onnx")
    x = np.random.default_rng(0).standard_normal((300, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(tmp_path / "m.onnx"), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"), "-q"]) == 0
    ref = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, atol=1e-6)
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "c"), "-q"]) == 0
    reason = json.loads((tmp_path / "c" / "graph.json").read_text())["netlist"]["reason"]
    assert "node 'sm' (opamp.softmax) mixes the samples of a batch" in reason, reason
    line = _line(capsys, main(["run", str(tmp_path / "m.onnx"), "-i", str(tmp_path / "x.npy"), "-o",
                               str(tmp_path / "s.npy"), "--engine", "spice", "-q"]))
    assert "mixes the samples of a batch" in line and "a netlist computes each sample alone" in line, line


def test_values_for_initializers_or_unknown_names_are_refused(tmp_path, capsys):
    """W both an initializer and a graph input (ONNX: an overridable default): a fed W was ignored
    with exit 0 (2.97 from onnxruntime's answer), and so was an .npz key that names nothing."""
    import sim.backend as kb
    from circuits.errors import InputError
    gemm = helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")
    m = make_model([gemm], [fvi("x", ["N", 3]), fvi("W", [3, 2])], [fvi("y", ["N", 2])],
                   [init("W", np.ones((3, 2), np.float32))])
    onnx.save(m, tmp_path / "m.onnx")
    x = np.ones((2, 3), np.float32)
    for extra, match in (({"W": np.zeros((3, 2), np.float32)}, "array 'W' names an initializer"),
                         ({"typo": x}, "array 'typo' is not an input of the model")):
        np.savez(tmp_path / "f.npz", x=x, **extra)
        line = _line(capsys, main(["run", str(tmp_path / "m.onnx"), "-i", str(tmp_path / "f.npz"), "-o",
                                   str(tmp_path / "y.npy"), "-q"]))
        assert match in line and "f.npz" in line, line
        with pytest.raises(InputError, match=match):
            kb.prepare(str(tmp_path / "m.onnx")).run({"x": x, **extra})
    assert not (tmp_path / "y.npy").exists()


@pytest.mark.parametrize("extra, match", [
    (["--noise", "0.1"], "--noise applies to --hardware noise"),
    (["--weight-bits", "2"], "--weight-bits applies to --hardware quantized"),
    (["--target", "current", "--hardware", "quantized", "--weight-bits", "4"], "--weight-bits applies to the opamp and crossbar"),
    (["--hardware", "quantized", "--dac-bits", "4"], "--dac-bits applies to the crossbar target, not opamp"),
    (["--target", "crossbar", "--wire-ohm", "300"], "--wire-ohm applies to --hardware irdrop"),
    (["--sizing", "minimum"], "--sizing sizes the current target's mirrors, not the opamp"),
    (["--target", "current", "--sizing", "minimum"], "--sizing sets the mirrors' mismatch"),
    (["--scale", "0.01"], "--scale applies to --engine spice"),
    (["--timeout", "1"], "--timeout applies to --engine spice"),
    (["--workers", "2"], "--workers applies to --engine spice"),
    (["--dask", "tcp://127.0.0.1:1"], "--dask applies to --engine spice"),
    (["--engine", "spice", "--hardware", "quantized", "--weight-bits", "2"], "an op-amp netlist holds the exact"),
])
def test_options_that_would_change_nothing_are_refused(tmp_path, capsys, extra, match):
    """Each was exit 0 with outputs identical to the plain run (--dask even tried to connect)."""
    m = make_model([helper.make_node("Gemm", ["x", "w"], ["y"], name="g")], [fvi("x", ["N", 4])],
                   [fvi("y", ["N", 2])], [init("w", np.ones((4, 2), np.float32))])
    onnx.save(m, tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    line = _line(capsys, main(["run", str(tmp_path / "m.onnx"), "-i", str(tmp_path / "x.npy"), "-o",
                               str(tmp_path / "y.npy"), "-q", *extra]))
    assert match in line, line
    assert not (tmp_path / "y.npy").exists()


def test_compile_refuses_sizing_on_a_target_without_mirrors(tmp_path, capsys):
    line = _line(capsys, main(["compile", "models/examples/digits_mlp.onnx", "-o", str(tmp_path / "c"),
                               "--sizing", "minimum", "-q"]))
    assert "--sizing sizes the current target's mirrors, not the opamp target's" in line, line


def test_train_and_evaluate_refuse_a_model_that_mixes_samples(tmp_path, capsys):
    """They run in mini-batches: a batch-axis Softmax would be trained on a different function."""
    m = make_model([helper.make_node("MatMul", ["x", "w"], ["z"], name="mm"),
                    helper.make_node("Softmax", ["z"], ["y"], axis=0, name="sm")],
                   [fvi("x", ["N", 4])], [fvi("y", ["N", 3])], [init("w", np.ones((4, 3), np.float32))])
    onnx.save(m, tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.uniform(0, 1, (20, 4)).astype(np.float32), y_train=rng.integers(0, 3, 20),
             x_test=rng.uniform(0, 1, (6, 4)).astype(np.float32), y_test=rng.integers(0, 3, 6))
    for argv in (["train", str(tmp_path / "m.onnx"), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "t.onnx")],
                 ["evaluate", str(tmp_path / "m.onnx"), "--data", str(tmp_path / "d.npz")]):
        line = _line(capsys, main([*argv, "-q"]))
        assert "node 'sm'" in line and "mixes the samples of a batch" in line and "mini-batches" in line, line
    assert not (tmp_path / "t.onnx").exists()


def test_build_program_refuses_what_is_not_a_compiled_model():
    from circuits.errors import KelvinError
    from sim.engine.prepare import build_program
    with pytest.raises(KelvinError, match="compiled: a compiled model"):
        build_program(None)


def test_run_output_must_be_npy_or_npz_and_a_chip_names_a_passthrough_output(tmp_path, capsys):
    """-o y.csv wrote NPY bytes into y.csv with exit 0; an output that is the input itself was an
    AssertionError in the chip model."""
    np.save(tmp_path / "x.npy", np.ones((2, 64), np.float32))
    for name in ("y.csv", "y", "y.txt"):
        line = _line(capsys, main(["run", "models/examples/digits_mlp.onnx", "-i", str(tmp_path / "x.npy"), "-o",
                                   str(tmp_path / name), "-q"]))
        assert "written as .npy (one output) or .npz" in line and name in line, line
        assert not (tmp_path / name).exists()
    m = make_model([helper.make_node("Relu", ["x"], ["y"], name="r")], [fvi("x", ["N", 4])],
                   [fvi("y", ["N", 4]), fvi("x", ["N", 4])])
    onnx.save(m, tmp_path / "p.onnx")
    np.save(tmp_path / "p.npy", np.ones((2, 4), np.float32))
    line = _line(capsys, main(["run", str(tmp_path / "p.onnx"), "-i", str(tmp_path / "p.npy"), "-o",
                               str(tmp_path / "p.npz"), "--target", "current", "--chip-seed", "1", "-q"]))
    assert "graph output 'x' is a graph input passed straight through" in line, line


def test_spice_refuses_outputs_that_are_not_signals(tmp_path, capsys):
    """A Cast-to-int output came back from ngspice as raw floats, a Shape output with a sample axis."""
    for nodes, out, match in (([helper.make_node("Cast", ["x"], ["y"], to=onnx.TensorProto.INT32, name="c")],
                               helper.make_tensor_value_info("y", onnx.TensorProto.INT32, ["N", 4]), "'y' is int32 data"),
                              ([helper.make_node("Shape", ["x"], ["y"], name="s")],
                               helper.make_tensor_value_info("y", onnx.TensorProto.INT64, [2]), "'y' is int64 data")):
        onnx.save(make_model(nodes, [fvi("x", ["N", 4])], [out]), tmp_path / "m.onnx")
        np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
        line = _line(capsys, main(["run", str(tmp_path / "m.onnx"), "-i", str(tmp_path / "x.npy"), "-o",
                                   str(tmp_path / "y.npz"), "--engine", "spice", "-q"]))
        assert match in line and "not an analog signal" in line, line


def test_a_fixed_batch_model_compiles_and_says_why_it_has_no_netlist(tmp_path, capsys):
    """Input [2, 3, 4] with a [2, 2, 4] constant: `run` is right, but compile failed on shapes the model
    never had ((1, 3, 4) against (2, 2, 4)), as if the model were broken."""
    import json
    m = make_model([helper.make_node("Concat", ["x", "c"], ["y"], axis=1, name="cat")], [fvi("x", [2, 3, 4])],
                   [fvi("y", [2, 5, 4])], [init("c", np.ones((2, 2, 4), np.float32))])
    onnx.save(m, tmp_path / "m.onnx")
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "c"), "-q"]) == 0
    reason = json.loads((tmp_path / "c" / "graph.json").read_text())["netlist"]["reason"]
    assert "node 'cat'" in reason and "input 'x' has a fixed first dimension of 2" in reason, reason


def test_run_cuts_a_batch_only_when_its_samples_are_checked_independent(tmp_path, capsys):
    """LayerNormalization over axis 0 with a [5, 4] scale, 5 samples, --batch-size 2: the check cannot run
    a batch of 2, and the chunks failed with numpy's broadcast text; run whole, it matches onnxruntime."""
    import onnxruntime as ort
    m = make_model([helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=0, name="ln")],
                   [fvi("x", ["N", 4])], [fvi("y", ["N", 4])],
                   [init("s", np.full((5, 4), 2.0, np.float32)), init("b", np.ones((5, 4), np.float32))])
    m.ir_version = 8
    onnx.save(m, tmp_path / "m.onnx")
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(tmp_path / "m.onnx"), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"),
                 "--batch-size", "2", "-q"]) == 0
    ref = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, atol=1e-5)
