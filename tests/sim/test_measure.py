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
from sim.measure.lab import Plan, banks_of, default_plan, design


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
    # a directory edited by hand: a table of another shape, a NaN, a read-out of an output the model lacks
    import shutil
    with np.load(tmp_path / "fits/measured_chip.npz") as z:
        arrays = {k: z[k] for k in z.files}
    doc = json.loads((tmp_path / "fits/kelvin.json").read_text())
    for name, change, msg in (("shape", {"fc0/a": np.ones((9, 2, 3))}, r"fc0: a has shape \(9, 2, 3\)"),
                              ("nan", {"fc0/c": arrays["fc0/c"] * np.nan}, "fc0: c holds non-finite values"),
                              ("readout", None, "a read-out of 'zz', which is not an output")):
        d = tmp_path / name
        shutil.copytree(tmp_path / "fits", d)
        if change is None:
            (d / "kelvin.json").write_text(json.dumps(dict(doc, outputs=["zz"])))
            np.savez(d / "measured_chip.npz", **{k.replace("/y", "/zz"): v for k, v in arrays.items()})
        else:
            np.savez(d / "measured_chip.npz", **dict(arrays, **change))
        with pytest.raises(InputError, match=msg):
            build_program(small, HardwareOptions.parse("fitted", fits=str(d), sizing="compact"))


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
    meta = json.loads(str(arrays["meta"]))
    for name, inputs in (("unfed.npz", {"fc0": "x"}), ("cycle.npz", {"fc0": "y", "y": "fc0"})):
        np.savez(tmp_path / name, **dict(arrays, meta=np.array(json.dumps(dict(meta, inputs=inputs)))))
    hostile = {"huge.npz": {"soma/fc0": np.full_like(arrays["soma/fc0"], -1e300)},  # used to fit into NaN tables
               "text.npz": {"x": np.full(arrays["x"].shape, "a")},                    # an internal ValueError
               "fraction.npz": {"levels/fc0": arrays["levels/fc0"] + 0.5}}            # silently truncated
    for name, change in hostile.items():
        np.savez(tmp_path / name, **dict(arrays, **change))
    for name, msg in (("missing.npz", "soma/fc0"), ("levels.npz", "levels beyond"), ("junk.npz", "not a readable"),
                      ("unfed.npz", "feed bank 'y'"), ("cycle.npz", "feed bank 'fc0'"),
                      ("huge.npz", "'soma/fc0' holds -1e+300 at index [0, 0]"), ("text.npz", "'x' has dtype <U1"),
                      ("fraction.npz", "'levels/fc0' must hold integer levels, got float64 with fractions")):
        assert main(["fit-chip", str(tmp_path / name), "-o", str(tmp_path / "f"), "-q"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and msg in err and name in err
    assert not (tmp_path / "f").exists()


def test_csv_directory_holds_the_same_record_and_fit(small, tmp_path, capsys):
    """The CSV layout a lab can write by hand: written and read back it is the .npz record exactly,
    unexposed somas (NaN) included, and fit-chip gives the same fit from either."""
    meas, _ = _synthetic(small, Plan(configs=3, probes_per_config=8))
    meas.save(tmp_path / "m.npz")
    meas.save(tmp_path / "m_csv")
    assert sorted(p.name for p in (tmp_path / "m_csv").iterdir()) == ["kelvin.json", "levels.csv", "probes.csv"]
    a, b = Measurements.load(tmp_path / "m.npz"), Measurements.load(tmp_path / "m_csv")
    for field in ("config", "x", "y"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    for name in a.banks:
        np.testing.assert_array_equal(a.levels[name], b.levels[name])
        np.testing.assert_array_equal(a.bias_levels[name], b.bias_levels[name])
        np.testing.assert_array_equal(a.soma[name], b.soma[name])
    assert (a.banks, a.inputs, a.w_unit, a.scale, a.meta) == (b.banks, b.inputs, b.w_unit, b.scale, b.meta)
    meas.soma["y"][:, 1] = np.nan  # a soma left unread: an empty cell, refused (every soma feeds a fit)
    meas.save(tmp_path / "nan_csv")
    assert ",," in (tmp_path / "nan_csv" / "probes.csv").read_text()
    with pytest.raises(InputError, match=r"probes.csv, line 2, column 'soma:y:1': '' is not a number"):
        Measurements.load(tmp_path / "nan_csv")
    docs = []
    for data in ("m.npz", "m_csv"):
        assert main(["fit-chip", str(tmp_path / data), "-o", str(tmp_path / f"fits_{data}"), "-q"]) == 0
        docs.append(json.loads(capsys.readouterr().out)["banks"])
    assert docs[0] == docs[1]
    # hand-written: unprogrammed synapses left out, rows in any order, blank lines, a bias synapse
    levels = (tmp_path / "m_csv" / "levels.csv").read_text().splitlines()
    (tmp_path / "m_csv" / "levels.csv").write_text("\n".join([levels[0], ""] + levels[:0:-1]) + "\n")
    c = Measurements.load(tmp_path / "m_csv")
    np.testing.assert_array_equal(c.levels["fc0"], a.levels["fc0"])
    assert any(",bias," in line for line in levels)


def test_bad_csv_measurements_get_one_clear_error(small, tmp_path, capsys):
    meas, _ = _synthetic(small, Plan(configs=1, probes_per_config=4))
    good = meas.save(tmp_path / "good")
    files = {p.name: p.read_text() for p in good.iterdir()}

    def broken(name: str, file: str, text: str) -> str:
        d = tmp_path / name
        d.mkdir()
        for f, t in files.items():
            (d / f).write_text(text if f == file else t)
        return str(d)

    probes, levels = files["probes.csv"].splitlines(), files["levels.csv"].splitlines()
    cells = probes[1].split(",")
    cases = [
        (broken("nan_text", "probes.csv", "\n".join([probes[0], ",".join(cells[:1] + ["abc"] + cells[2:])] + probes[2:])),
         "probes.csv, line 2, column 'x:0': 'abc' is not a number"),
        (broken("short_row", "probes.csv", "\n".join(probes[:2] + [probes[2].rsplit(",", 1)[0]])),
         "probes.csv, line 3"),
        (broken("gap", "probes.csv", "\n".join([probes[0].replace("x:1,", "x:9,")] + probes[1:])), "x:0"),
        (broken("stray", "probes.csv", "\n".join([probes[0].replace("y:0", "z:0")] + probes[1:])), "'z:0'"),
        (broken("bank", "levels.csv", files["levels.csv"] + "fc9,0,0,0,1\n"), "bank 'fc9'"),
        (broken("outside", "levels.csv", files["levels.csv"] + "fc0,0,99,0,1\n"), "outside bank 'fc0'"),
        (broken("level", "levels.csv", "\n".join(levels[:1] + [",".join(levels[1].split(",")[:4] + ["9"])]
                                                   + levels[2:]) + "\n"), "levels beyond"),
        (broken("again", "levels.csv", files["levels.csv"] + levels[1] + "\n"), "listed again (first on line 2)"),
        (broken("minus", "levels.csv", files["levels.csv"] + "fc0,0,1,-1,1\n"), "column -1 is outside"),
        (broken("header", "levels.csv", "bank,row\n"), "header must be"),
        (broken("meta", "kelvin.json", "{}"), "'shapes'"),
        (broken("count", "kelvin.json", files["kelvin.json"].replace('"configurations": 1', '"configurations": "1"')),
         "'configurations' must be a positive integer"),
        (broken("scale", "kelvin.json", files["kelvin.json"].replace('"scale": 1e-08', '"scale": 0')),
         "must be positive numbers"),
        (broken("no_x", "probes.csv", "\n".join(",".join(c for c in row.split(",")[:1] + row.split(",")[7:])
                                                for row in probes)), "no x:<i> columns"),
        (broken("inf", "probes.csv", "\n".join(probes[:-1] + [probes[-1].rsplit(",", 1)[0] + ",inf"])),
         "has no finite reading"),
    ]
    (tmp_path / "empty").mkdir()
    cases.append((str(tmp_path / "empty"), "missing kelvin.json"))
    for path, msg in cases:
        assert main(["fit-chip", path, "-o", str(tmp_path / "f"), "-q"]) == 1, path
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and msg in err, (path, err)
    assert not (tmp_path / "f").exists()


def test_measure_refuses_an_unusable_output_before_simulating(tmp_path, capsys, monkeypatch):
    import sim.measure.lab as lab

    def never(*args, **kwargs):
        raise AssertionError("measured although the output could not be written")

    monkeypatch.setattr(lab, "measure_chip", never)
    model = tmp_path / "small.onnx"
    model.write_bytes(zoo.mlp((6, 5, 3), seed=0).SerializeToString())
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    (tmp_path / "dir.npz").mkdir()
    for out, extra, msg in (("mine", [], "not written by kelvin"), ("dir.npz", [], "is a directory"),
                            ("m.npz", ["--fits", str(tmp_path / "mine")], "not written by kelvin")):
        assert main(["measure", str(model), "--chip-seed", "0", "-o", str(tmp_path / out), *extra, "-q"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and msg in err, err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "a user's file"


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


def _per_synapse_chip(compiled, plan: Plan, seed: int = 4, spread: float = 0.06):
    """A chip where every synapse has its own per-sign, per-bit current V[R, j, s, b] (truth), and its
    single-bank readings: soma_R = u·Σ_j sgn·|k|·x_j·V[R, j, s, b] + u·sgn_b·|k_b|·V_b[R, s, b], rectified."""
    rng = np.random.default_rng(seed)
    levels, bias, config, x = design(compiled, plan)
    bank = banks_of(compiled)[0]
    rows, cols = bank.rows, x.shape[1]
    truth = (1 + 0.05 * rng.standard_normal((1, cols, 2, 1))) * (1 + 0.05 * rng.standard_normal((rows, 1, 2, 3))) * \
        (1 + spread * rng.standard_normal((rows, cols, 2, 3)))
    truth_b = 1 + 0.05 * rng.standard_normal((rows, 2, 3))
    soma = np.zeros((len(config), rows))
    for p in range(len(config)):
        lev, blev = levels[bank.name][config[p]], bias[bank.name][config[p]]
        for r in range(rows):
            acc = 0.0
            for j in range(cols):
                k = int(lev[r, j])
                if k:
                    acc += np.sign(k) * abs(k) * x[p, j] * truth[r, j, int(k < 0), BITS.index(abs(k))]
            kb = int(blev[r])
            if kb:
                acc += np.sign(kb) * abs(kb) * truth_b[r, int(kb < 0), BITS.index(abs(kb))]
            soma[p, r] = max(0.0, 0.25 * acc)
    return levels, bias, config, x, soma, truth, bank


def test_refinement_recovers_every_programmed_synapse(small):
    """A chip whose synapses each have their own per-sign, per-bit current (6 % spread on top of row
    and column gains): with more readings per row than values, the per-synapse refinement recovers
    the values the configurations programmed (median < 0.5 %), where the factor model is off by its spread."""
    from sim.measure.fit import fit_bank
    plan = Plan(configs=12, probes_per_config=8, negative_fraction=0.5)
    levels, bias, config, x, soma, truth, bank = _per_synapse_chip(small, plan)
    fit = fit_bank(bank.name, levels[bank.name], bias[bank.name], config, x, soma, 1, 0.25, None,
                   np.array([0.06, 0.06, 0.06]))
    seen = np.zeros(truth.shape, bool)
    for lev in levels[bank.name]:
        r, j = np.nonzero(lev)
        seen[r, j, (lev[r, j] < 0).astype(int), [BITS.index(abs(int(v))) for v in lev[r, j]]] = True
    factor = fit.c[None, :, :, None] * fit.a[:, None, :, :]
    syn_err = np.abs(fit.syn[seen] / truth[seen] - 1)
    factor_err = np.abs(factor[seen] / truth[seen] - 1)
    assert seen.mean() > 0.8 and np.median(syn_err) < 0.005 and np.median(factor_err) > 0.03, \
        (seen.mean(), np.median(syn_err), np.median(factor_err))
    assert np.sqrt(np.mean(syn_err ** 2)) < 0.5 * np.sqrt(np.mean(factor_err ** 2))
    assert fit.syn_identified > 0.8 * seen.mean() and fit.syn_rms_rel < 0.01
    with pytest.raises(Exception, match="density"):
        Plan(density=0.0)
    sparse = design(small, Plan(configs=40, probes_per_config=1, density=0.25))[0][bank.name]
    assert abs(np.mean(sparse != 0) - 0.25) < 0.05


def test_fit_removes_the_nominal_early_drift(small):
    """Readings of a chip with known factors *and* the mirrors' nominal Early drift (the engine's chip
    kernel, with a strong process drift, 5x the compact sizing's slopes): the fit told the slopes
    recovers the linear factors; the same fit blind to the drift is several times further off."""
    import dataclasses

    from sim.chip import EarlySlopes, InstanceSynapseArray
    from sim.engine.chip_map import realized_bias, realized_levels
    from sim.measure.fit import fit_bank, nominal_drift, slopes_of
    plan = Plan(configs=3, probes_per_config=30)
    levels, bias, config, x = design(small, plan)
    bank = banks_of(small)[0]
    rng = np.random.default_rng(2)
    a = 1 + 0.05 * rng.standard_normal((bank.rows, 2, 3))
    c = 1 + 0.05 * rng.standard_normal((x.shape[1], 2))
    cr = 1 + 0.05 * rng.standard_normal(2)
    compact = EarlySlopes.of("compact")
    slopes = EarlySlopes(5 * compact.kn, 5 * compact.kp)
    soma = np.zeros((len(config), bank.rows))
    for k in range(plan.configs):
        lev = realized_levels(levels[bank.name][k], 1, 1)
        blev = realized_bias(bias[bank.name][k], 1)
        rows = config == k
        sidx, bidx = (lev < 0).astype(int), np.where(np.abs(lev) >= 4, 2, np.where(np.abs(lev) >= 2, 1, 0))
        w = 0.25 * lev * a[np.arange(bank.rows)[:, None], sidx, bidx] * c[np.arange(x.shape[1])[None, :], sidx]
        bs, bb = (blev < 0).astype(int), np.where(np.abs(blev) >= 4, 2, np.where(np.abs(blev) >= 2, 1, 0))
        b = 0.25 * blev * a[np.arange(bank.rows), bs, bb] * cr[bs]
        pre, post = slopes.synapse_logs(w, True)
        chip = InstanceSynapseArray(w, b, rectify=True, pre_log=pre, post_log=post, bias_post_log=slopes.bias_logs(b),
                                    soma_log=slopes.soma_log)
        soma[rows] = chip.ideal(x[rows])
    want = c[None, :, :, None] * a[:, None, :, :]
    seen = np.zeros(want.shape, bool)
    for lev in levels[bank.name]:
        r, j = np.nonzero(lev)
        seen[r, j, (lev[r, j] < 0).astype(int), [BITS.index(abs(int(v))) for v in lev[r, j]]] = True
    drift = nominal_drift(levels[bank.name], bias[bank.name], config, x, 1, 0.25, slopes, True)
    errs = {}
    for label, removed in (("told", drift), ("blind", None)):
        fit = fit_bank(bank.name, levels[bank.name], bias[bank.name], config, x, soma, 1, 0.25, removed)
        got = fit.c[None, :, :, None] * fit.a[:, None, :, :]
        errs[label] = float(np.sqrt(np.mean((got[seen] / want[seen] - 1) ** 2)))
    assert errs["told"] < 0.01 and errs["blind"] > 2 * errs["told"], errs
    meas = Measurements(config, x, soma[:, :3], levels, bias, {bank.name: soma}, (bank.name,), {bank.name: "x"},
                        0.25, 1e-8, {"sizing": "compact"})
    assert slopes_of(meas) == compact
    assert slopes_of(dataclasses.replace(meas, meta={})) is None  # silicon of unknown design: no drift removed
    assert slopes_of(dataclasses.replace(meas, meta={"early_slopes": [0.002, 0.001]})) == EarlySlopes(0.002, 0.001)
    with pytest.raises(InputError, match="early_slopes"):
        slopes_of(dataclasses.replace(meas, meta={"early_slopes": [0.002]}))
    from sim.measure.fit import synapse_spread
    compact_sd = synapse_spread(meas)
    assert compact_sd[0] == pytest.approx(2 * compact_sd[2]) and 0.03 < compact_sd[0] < 0.1  # one unit copy: 3-10 %
    with pytest.raises(InputError, match="synapse_sd"):
        synapse_spread(dataclasses.replace(meas, meta={"synapse_sd": [0.05, -1.0, 0.02]}))


def test_unit_factors_with_drift_are_the_nominal_chip(small, tmp_path):
    """A measured chip whose every factor is 1, fitted with the compact sizing's drift, runs in the
    engine exactly as the nominal draw-free chip with its Early drift (`ChipInstance`, early=True)."""
    from sim.chip import ChipInstance, EarlySlopes
    from sim.engine.prepare import HardwareOptions, build_program
    from sim.engine.program import Program
    from sim.measure.fit import BankFit
    bank = banks_of(small)[0]
    ones = BankFit(bank.name, bank.out, bank.inputs, 1, 1, np.ones((bank.rows, 2, 3)), np.ones((bank.inputs, 2)),
                   np.ones(2), np.zeros((bank.rows, 2, 3)), np.zeros((bank.inputs, 2)), 1, 0.0)
    last = banks_of(small)[-1]
    last_fit = BankFit(last.name, last.out, last.inputs, 2, 1, np.ones((last.rows, 2, 3)), np.ones((last.inputs, 2)),
                       np.ones(2), np.zeros((last.rows, 2, 3)), np.zeros((last.inputs, 2)), 1, 0.0)
    slopes = EarlySlopes.of("compact")
    chip = MeasuredChip({bank.name: ones, last.name: last_fit}, {"y": np.hstack([np.eye(3), -np.eye(3)])},
                        {"y": np.zeros((3, 6))}, {"early_slopes": [slopes.kn, slopes.kp]})
    chip.save(tmp_path / "fits")
    x = np.random.default_rng(1).uniform(0, 1, (7, 6)).astype(np.float32)
    got = build_program(small, HardwareOptions.parse("fitted,early", fits=str(tmp_path / "fits"), sizing="compact"),
                        dtype=np.float64).run({"x": x})["y"]
    nominal = ChipInstance.draw(small, None, 1e-8, sizing="compact").engine_graph(early=True)
    want = Program(nominal, dtype=np.float64).run({"x": np.maximum(x, 0).astype(np.float64)})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    linear = build_program(small, HardwareOptions.parse("fitted", fits=str(tmp_path / "fits"), sizing="compact"),
                           dtype=np.float64, trainable=True).run({"x": x})["y"]
    assert np.max(np.abs(linear - want)) > 10 * np.max(np.abs(got - want))  # the drift is there, and it matters
    plain = build_program(small, HardwareOptions.parse("fitted", fits=str(tmp_path / "fits"), sizing="compact"),
                          dtype=np.float64).run({"x": x})["y"]
    np.testing.assert_allclose(plain, linear, rtol=1e-9, atol=1e-12)  # without early: the linear chip
    del chip.meta["early_slopes"]
    chip.save(tmp_path / "bare")
    with pytest.raises(InputError, match="states no Early slopes"):
        build_program(small, HardwareOptions.parse("fitted,early", fits=str(tmp_path / "bare")))



def test_pipelined_through_a_measured_chip_with_noise_is_refused_by_name(small, tmp_path):
    """A measured chip's map reshapes each signed row into two somas and noise redraws every step: the
    pipelined error path has no exact moved weights for that pair (it was a broadcast error)."""
    from circuits.errors import UnsupportedError
    from sim.engine.prepare import HardwareOptions, build_program
    meas, _ = _synthetic(small, Plan(configs=2, probes_per_config=12))
    fit_chip(meas).save(tmp_path / "fits")
    prog = build_program(small, HardwareOptions.parse("fitted,noise", fits=str(tmp_path / "fits"), sizing="compact"),
                         trainable=True)
    x = np.random.default_rng(0).uniform(0, 1, (4, 6)).astype(np.float32)
    out, tape = prog.forward({"x": x}, rng=np.random.default_rng(1), train=True)

    def update(key, g):
        prog.params[key] -= 1e-3 * g

    with pytest.raises(UnsupportedError, match="--pipelined cannot move weights"):
        prog.backward(tape, {"y": np.ones_like(out["y"])}, update=update)


def test_a_budget_too_small_to_identify_the_somas_is_refused_or_warned(small, tmp_path, capsys, caplog):
    """--density 1e-9 programmed nothing and --probes 1 identified almost nothing; both fitted the
    nominal chip with exit 0 and no word (the report's fractions were the only trace)."""
    from circuits.errors import ParameterError
    with pytest.raises(ParameterError, match=r"--density 1e-09 programs no synapse of bank 'fc0' \(5 × 6\)"):
        design(small, Plan(configs=2, probes_per_config=1, density=1e-9))
    meas, _ = _synthetic(small, Plan(configs=1, probes_per_config=1))
    meas.save(tmp_path / "m.npz")
    with caplog.at_level("WARNING", logger="kelvin"):
        assert main(["fit-chip", str(tmp_path / "m.npz"), "-o", str(tmp_path / "weak"), "-q"]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned and all("row factors (soma gains per sign and bit) identified" in w and "weak" in w
                          for w in warned), warned
    caplog.clear()
    meas, _ = _synthetic(small, default_plan(small))  # the default budget: enough, silent
    meas.save(tmp_path / "m2.npz")
    with caplog.at_level("WARNING", logger="kelvin"):
        assert main(["fit-chip", str(tmp_path / "m2.npz"), "-o", str(tmp_path / "ok"), "-q"]) == 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_the_default_plan_identifies_narrow_banks_too(small):
    """Narrow banks (≤ 10 inputs) got 2 dense configurations × 12 points: 47-63 % of the 6-5-3's row
    factors identified (5.5 % FS RMS from the draw-based model on 4-8-3 chips in ngspice)."""
    plan = default_plan(small)
    assert (plan.configs, plan.probes_per_config, plan.density) == (48, 6, 1.0)
    weak = fit_chip(_synthetic(small, Plan(configs=2, probes_per_config=12))[0]).report()["banks"]
    full = fit_chip(_synthetic(small, plan)[0]).report()["banks"]
    assert min(b["row_identified_fraction"] for b in weak.values()) < 0.7
    assert min(b["row_identified_fraction"] for b in full.values()) == 1.0
    deeper = compile_model(zoo.mlp((6, 5, 4, 3), seed=0), "current")  # three banks: the output compounds them
    assert (default_plan(deeper).configs, default_plan(deeper, quick=True).configs) == (96, 24)


def test_the_default_plan_meets_every_synapse_current_several_times():
    """Sparse banks: a synapse's six per-sign, per-bit currents each meet about three readings
    (APPEARANCES configurations program it), and a configuration has about as many operating points
    as a row has programmed synapses. 48 × 6 identified 34 % of the digits chip's first-bank synapse
    currents (compact, chip 2, ngspice), and its measured model was 1.57 % FS RMS from the draw-based
    one; 128 × 10: 91 % and 0.67 %."""
    from circuits.data import model_file
    from sim.measure.lab import APPEARANCES, MAX_PROBES
    digits = compile_model(model_file("examples", "digits_mlp.onnx"), "current")
    plan = default_plan(digits)
    assert (plan.configs, plan.probes_per_config, plan.density) == (128, 10, 10 / 64)
    assert plan.configs * plan.density >= APPEARANCES and plan.probes <= MAX_PROBES
    wide = compile_model(zoo.mlp((196, 50, 10), seed=0), "current")  # MNIST's shape: capped by operating points
    assert default_plan(wide).probes <= MAX_PROBES and default_plan(wide).probes_per_config == 10


def test_the_plan_deals_every_sign_and_bit_and_programs_every_bank_alike():
    """Each synapse is programmed in the same number of configurations, its single-bit levels dealt
    from a deck with each bit at each sign (one negative per two positives in a rectified bank, half
    and half in a signed one), so no sign or bit is left unprogrammed by chance; and a narrow bank
    programs as many synapses per row as the widest one (digits 64-16-10: about 10 in both)."""
    compiled = compile_model(zoo.mlp((64, 16, 10), seed=0), "current")
    plan = default_plan(compiled)
    levels = design(compiled, plan)[0]
    banks = {b.name: b for b in banks_of(compiled)}
    for name, lv in levels.items():
        per_row = (lv != 0).sum(axis=2).mean()
        assert abs(per_row - plan.density * 64) < 1.0, (name, per_row)
        counts = (lv != 0).sum(axis=0)
        assert counts.min() == counts.max()  # every synapse in the same number of configurations
        negative = 1 / 3 if banks[name].rectify else 1 / 2
        for bit in BITS:
            for sign, share in ((1, 1 - negative), (-1, negative)):
                dealt = (lv == sign * bit).sum(axis=0)
                expected = counts.max() * share / len(BITS)
                assert dealt.min() >= np.floor(expected) - 1 and dealt.max() <= np.ceil(expected) + 1, \
                    (name, sign * bit, dealt.min(), dealt.max(), expected)


def test_factor_jacobian_is_the_residuals_derivative(small):
    """The fit's analytic Jacobian (`_FactorJacobian`) against central differences of the residuals, at
    a random point off the optimum, for a rectified and a signed bank (with bias synapses)."""
    from sim.measure import fit as fitmod
    meas, _ = _synthetic(small, Plan(configs=3, probes_per_config=8, negative_fraction=0.5))
    rng = np.random.default_rng(1)
    x_in = meas.x
    for name in meas.banks:
        rows, cols = meas.soma[name].shape[1], x_in.shape[1]
        row_sides, col_sides = rows // meas.levels[name].shape[1], cols // meas.levels[name].shape[2]
        d = _Design.of(name, meas.levels[name], meas.bias_levels[name], meas.config, row_sides, col_sides)
        pi, ri = np.nonzero(meas.soma[name] > fitmod.ACTIVE_UNITS)
        sigma = 0.01 * meas.soma[name][pi, ri] + 0.002
        jac = fitmod._FactorJacobian(d, x_in, 0.25, pi, ri, sigma, rows, cols)
        n_a, n_c = rows * 6, cols * 2

        def unpack(t):
            return t[:n_a].reshape(rows, 2, 3), t[n_a:n_a + n_c].reshape(cols, 2), t[n_a + n_c:]

        def res(t):
            pred = d.preactivation(*unpack(t), x_in, 0.25)[pi, ri]
            return np.concatenate([(pred - meas.soma[name][pi, ri]) / sigma, (t - 1) / fitmod.PRIOR_SD])

        theta = 1 + 0.2 * rng.standard_normal(n_a + n_c + 2)
        got = jac(*unpack(theta)).toarray()
        h = 1e-6
        fd = np.stack([(res(theta + h * e) - res(theta - h * e)) / (2 * h) for e in np.eye(len(theta))], axis=1)
        assert np.abs(fd).max() > 1
        np.testing.assert_allclose(got, fd, atol=1e-6 * np.abs(fd).max())
        x_in = meas.soma[name]  # the next bank's input
