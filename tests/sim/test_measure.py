"""Chip measurement and fitting (`sim.measure`): the lab record, the fit against known factors, the CLI,
and the fitted model against ngspice on a small chip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from circuits.errors import InputError
from compiler.pipeline import compile_model
from sim import zoo
from sim.cli import main
from sim.measure.data import Measurements
from sim.measure.fit import BITS, MeasuredChip, _Design, fit_chip
from sim.measure.lab import Plan, banks_of, design


@pytest.fixture(scope="module")
def small():
    return compile_model(zoo.mlp((6, 5, 3), seed=0), "current")


def _synthetic(compiled, plan: Plan, seed: int = 3, spread: float = 0.08):
    """Measurements of a chip whose factors are known: the fit's independent oracle."""
    rng = np.random.default_rng(seed)
    levels, bias, config, x = design(compiled, plan)
    banks = banks_of(compiled)
    truth, soma = {}, {}
    inp = x
    for b in banks:
        rows, cols = b.rows, inp.shape[1]
        a = 1 + spread * rng.standard_normal((rows, 2, 3))
        c = 1 + spread * rng.standard_normal((cols, 2))
        cr = 1 + spread * rng.standard_normal(2)
        d = _Design.of(b.name, levels[b.name], bias[b.name], config, rows // b.out, cols // b.inputs)
        cur = np.maximum(0.0, d.preactivation(a, c, cr, inp, 0.25))
        soma[b.name] = cur
        truth[b.name] = (a, c, cr)
        inp = cur
    last = banks[-1]
    s = soma[last.name]
    y = s[:, :last.out] - (s[:, last.out:] if not last.rectify else 0)
    meas = Measurements(config, x, y, levels, bias, soma, tuple(b.name for b in banks),
                        {b.name: b.source for b in banks}, 0.25, 1e-8, {"outputs": ["y"], "source": "synthetic"})
    return meas, truth


def test_design_uses_single_bits_and_keeps_rectified_rows_mostly_positive(small):
    levels, bias, config, x = design(small, Plan(configs=3, probes_per_config=5))
    for name, lev in levels.items():
        assert lev.shape[0] == 3 and set(np.unique(np.abs(lev))) <= set(BITS)
    assert np.mean(levels["fc0"] > 0) > 0.55  # rectified bank: mostly positive
    assert np.all(bias["fc0"] > 0)
    assert config.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert x.shape == (15, 6) and x.min() >= 0 and x.max() <= 1


def test_fit_recovers_known_factors(small, tmp_path):
    meas, truth = _synthetic(small, Plan(configs=3, probes_per_config=20))
    path = meas.save(tmp_path / "m.npz")
    chip = fit_chip(Measurements.load(path))
    for name, (a, c, cr) in truth.items():
        fit = chip.banks[name]
        got = fit.table().table[..., [1, 2, 4]]
        # the true table at single-bit levels: c[j, s]·b·A[R, s, b] (the product; A·c has one gauge)
        want = c[None, :, :, None] * (np.array(BITS) * a)[:, None, :, :]
        used = np.abs(want) > 0
        err = np.abs(got[used] / want[used] - 1)
        assert np.median(err) < 0.02, (name, np.median(err))
        assert fit.rms_rel < 1e-3
    # the read-out of exact differences is +1/-1
    m = chip.readouts["y"]
    np.testing.assert_allclose(m, np.hstack([np.eye(3), -np.eye(3)]), atol=0.01)


def test_fits_directory_roundtrip_and_engine_uses_it(small, tmp_path):
    from sim.engine.prepare import HardwareOptions, build_program
    meas, _ = _synthetic(small, Plan(configs=2, probes_per_config=12))
    chip = fit_chip(meas)
    chip.save(tmp_path / "fits")
    again = MeasuredChip.load(tmp_path / "fits")
    assert set(again.banks) == set(chip.banks)
    np.testing.assert_allclose(again.tables()["fc0"].table, chip.tables()["fc0"].table)
    prog = build_program(small, HardwareOptions.parse("fitted", fits=str(tmp_path / "fits"), sizing="compact"),
                         trainable=True)
    x = np.random.default_rng(0).uniform(0, 1, (4, 6)).astype(np.float32)
    z = prog.run({"x": x})["y"]
    assert z.shape == (4, 3) and np.isfinite(z).all()
    other = compile_model(zoo.mlp((6, 4, 3), seed=0), "current")
    with pytest.raises(InputError, match="bank 'fc0'"):
        build_program(other, HardwareOptions.parse("fitted", fits=str(tmp_path / "fits")))


def test_bad_measurement_files_get_one_clear_error(small, tmp_path, capsys):
    meas, _ = _synthetic(small, Plan(configs=1, probes_per_config=4))
    good = meas.save(tmp_path / "m.npz")
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    missing = dict(arrays)
    del missing["soma/fc0"]
    np.savez(tmp_path / "missing.npz", **missing)
    bad = dict(arrays, **{"levels/fc0": arrays["levels/fc0"] * 3})
    np.savez(tmp_path / "levels.npz", **bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for name, msg in (("missing.npz", "soma/fc0"), ("levels.npz", "levels beyond"), ("junk.npz", "not a readable")):
        assert main(["fit-chip", str(tmp_path / name), "-o", str(tmp_path / "f"), "-q"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and msg in err and name in err
    assert not (tmp_path / "f").exists()


def test_fit_chip_cli_then_train_on_the_fitted_chip(small, tmp_path, capsys):
    meas, _ = _synthetic(small, Plan(configs=2, probes_per_config=10))
    meas.save(tmp_path / "m.npz")
    assert main(["fit-chip", str(tmp_path / "m.npz"), "-o", str(tmp_path / "fits"), "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["banks"]) == {"fc0", "y"}
    rng = np.random.default_rng(0)
    xs = rng.uniform(0, 1, (40, 6)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=xs, y_train=rng.integers(0, 3, 40), x_test=xs[:8], y_test=rng.integers(0, 3, 8))
    small_model = tmp_path / "small.onnx"
    small_model.write_bytes(zoo.mlp((6, 5, 3), seed=0).SerializeToString())
    assert main(["train", str(small_model), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "t.onnx"),
                 "--target", "current", "--hardware", "fitted", "--fits", str(tmp_path / "fits"), "--epochs", "1",
                 "-q"]) == 0


def test_measured_model_tracks_ngspice_better_than_nominal(small):
    """16 ngspice operating points of chip 0; the fitted model then predicts unseen inputs on other weights."""
    from sim.engine.prepare import HardwareOptions, build_program
    from sim.measure.lab import measure_chip
    from sim.spice_commands import run_network_spice
    import tempfile
    meas = measure_chip(small, 0, sizing="compact", plan=Plan(2, 8), progress=False)
    assert meas.probes == 16 and np.isfinite(meas.y).all()
    chip = fit_chip(meas)
    x = np.random.default_rng(5).uniform(0, 1, (6, 6)).astype(np.float32)
    spice = run_network_spice(small, {"x": x}, 1e-8, chip_seed=0, sizing="compact", progress=False)["y"]
    with tempfile.TemporaryDirectory() as d:
        chip.save(d)
        fitted = build_program(small, HardwareOptions.parse("fitted", fits=d, sizing="compact")).run({"x": x})["y"]
    nominal = build_program(small, HardwareOptions.parse("quantized", sizing="compact")).run({"x": x})["y"]
    fs = np.abs(spice).max()
    rms_fit = np.sqrt(np.mean((fitted - spice) ** 2)) / fs
    rms_nom = np.sqrt(np.mean((nominal - spice) ** 2)) / fs
    assert rms_fit < rms_nom and rms_fit < 0.03, (rms_fit, rms_nom)


def test_measure_cli_writes_data_and_fits(tmp_path, capsys):
    model = tmp_path / "small.onnx"
    model.write_bytes(zoo.mlp((6, 5, 3), seed=0).SerializeToString())
    assert main(["measure", str(model), "--chip-seed", "2", "--configs", "1", "--probes", "6", "-o",
                 str(tmp_path / "m.npz"), "--fits", str(tmp_path / "fits"), "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["simulations"] == 6 and set(doc["identifiability"]) == {"fc0", "y"}
    meas = Measurements.load(tmp_path / "m.npz")
    assert meas.meta["source"] == "ngspice, chip seed 2" and meas.soma["y"].shape == (6, 6)
    assert MeasuredChip.load(tmp_path / "fits").banks["fc0"].equations > 0
    opamp = compile_model(zoo.mlp((6, 5, 3), seed=0), "opamp")
    from circuits.errors import UnsupportedError
    with pytest.raises(UnsupportedError, match="current-mode"):
        banks_of(opamp)
