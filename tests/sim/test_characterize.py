"""Characterization and fitted behavioural models: families vs ideal math, fits vs ngspice, resume, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from circuits.errors import KelvinError
from circuits.spice.blocks_linear import SummerBlock
from sim.characterize import bench_registry, benches, families
from sim.characterize.cli_hooks import characterize, fit, format_characterize, format_fit
from sim.characterize.families import FAMILIES, family_class
from sim.characterize.fit import FitError, FitFormatError, fit_instance, load_fit, shipped_model
from sim.characterize.mismatch import OpampMismatch, perturb_deck
from sim.characterize.store import CharacterizationDataError, kind_dir, load_data
from sim.characterize.sweeps import instance_seed, plan

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / "fits"
INSTANCES, POINTS, SEED = 3, 32, 7
ALL_KINDS = list(bench_registry.BENCHES)
RNG = np.random.default_rng(0)


# --- families against the ideal functions (no ngspice) ---------------------------------------

def _ideal_cases() -> list[tuple[families.Family, np.ndarray, np.ndarray]]:
    x1 = np.linspace(-1, 1, 9)[:, None]
    pos = np.linspace(0.05, 5, 9)[:, None]
    xs = RNG.uniform(-1, 1, (9, 4))
    ab = RNG.uniform(-1, 1, (9, 2))
    xk = np.stack([RNG.uniform(-0.1, 1, 15), np.arange(-7, 8)], axis=1)
    xt = np.stack([np.repeat([-1.0, 0.5], 3), np.tile([0.25, 0.5, 1.0], 2)], axis=1)
    w = (0.5, -1.0, 2.0, -0.25)
    return [
        (family_class("opamp.summer").from_design({"weights": w, "bias": 0.3, "rail_pos": 44.0, "rail_neg": -44.0,
                                                   "knee": 0.04}), xs, xs @ np.array(w) + 0.3),
        (family_class("opamp.rectifier")(), x1, np.maximum(x1[:, 0], 0)),
        (family_class("opamp.log")(), pos, np.log(pos[:, 0])),
        (family_class("opamp.exp")(), x1, np.exp(x1[:, 0])),
        (family_class("opamp.multiplier")(), ab, ab[:, 0] * ab[:, 1]),
        (family_class("opamp.clipper").from_design({"low": -0.5, "high": 0.8}), 2 * x1, np.clip(2 * x1[:, 0], -0.5, 0.8)),
        (family_class("opamp.diffpair")(), 3 * x1, np.tanh(3 * x1[:, 0])),
        (family_class("opamp.diffpair").from_design({"function": "sigmoid"}), 3 * x1, 1 / (1 + np.exp(-3 * x1[:, 0]))),
        (family_class("opamp.divider")(), np.abs(ab) + 0.1, (np.abs(ab[:, 0]) + 0.1) / (np.abs(ab[:, 1]) + 0.1)),
        (family_class("opamp.integrator").from_design({"y0": 0.5, "window_over_tau": 2.0}), xt,
         0.5 - xt[:, 0] * 2.0 * xt[:, 1]),
        (family_class("crossbar.tiles").from_design({"weights": w, "bias": -0.1}), xs, xs @ np.array(w) - 0.1),
        (family_class("current.neuron")(), x1, np.maximum(x1[:, 0], 0)),
        (family_class("current.synapse_array")(), xk, 0.25 * xk[:, 1] * np.maximum(xk[:, 0], 0)),
    ]


@pytest.mark.parametrize("case", _ideal_cases(), ids=lambda c: f"{c[0].name}-{c[0].design()}"[:40])
def test_family_initial_guess_is_the_ideal_block(case):
    fam, x, want = case
    np.testing.assert_allclose(fam.predict(fam.initial(), x), want, rtol=1e-12, atol=1e-12)
    assert type(fam).from_design(json.loads(json.dumps(fam.design()))) == fam
    lo, hi = fam.bounds()
    assert np.all(lo <= fam.initial()) and np.all(fam.initial() <= hi) and len(lo) == len(fam.parameters())


def test_every_characterized_kind_has_a_family_and_the_compiler_scales():
    from sim.spice_commands import DEFAULT_SCALE

    assert set(bench_registry.BENCHES) == set(FAMILIES)
    assert benches.SCALES == DEFAULT_SCALE
    with pytest.raises(KelvinError, match="families exist for"):
        family_class("opamp.nonexistent")


def test_fit_recovers_known_parameters():
    fam = family_class("current.synapse_array")()
    x = np.stack([RNG.uniform(-0.05, 1, 90), np.arange(90) % 15 - 7], axis=1)
    truth = np.array([0.03, -0.02, 0.05, -0.04, 0.01, -0.06, 0.004])
    held = np.arange(90) % 2 == 1
    got = fit_instance(fam, x, fam.predict(truth, x), held, 1.75, "synthetic")
    np.testing.assert_allclose(got.params, truth, atol=1e-9)
    assert got.rms_pct_fs < 1e-6


def test_fit_error_on_nan_data_and_on_the_wrong_family():
    x = np.linspace(0.01, 10, 20)[:, None]
    held = np.arange(20) % 2 == 1
    y = np.log(x[:, 0])
    with pytest.raises(FitError, match=r"family log .*instance 4.*not finite"):
        fit_instance(family_class("opamp.log")(), x, np.where(held, y, np.nan), held, 4.6, "instance 4")
    with pytest.raises(FitError, match=r"family exp .*held-out"):
        fit_instance(family_class("opamp.exp")(), x, y, held, 4.6, "instance 0")


def test_instance_seeds_are_reproducible_and_distinct():
    seeds = [instance_seed(3, i) for i in range(100)]
    assert seeds == [instance_seed(3, i) for i in range(100)]
    assert len(set(seeds)) == 100 and instance_seed(4, 0) != seeds[0]


def test_mismatch_draw_is_per_device_and_reproducible():
    block = SummerBlock((0.5, -1.0), 0.2, 0.25)
    deck = block.dc_bench(np.zeros((2, 2)))
    a = perturb_deck(deck, block.opamp, np.random.default_rng(1)).render()
    assert a == perturb_deck(deck, block.opamp, np.random.default_rng(1)).render()
    assert a != perturb_deck(deck, block.opamp, np.random.default_rng(2)).render()
    own = next(s for s in perturb_deck(deck, block.opamp, np.random.default_rng(1)).subckts if s.name == block.name)
    amps = {e.value for e in own.elements if e.letter == "X"}
    assert len(amps) == 2  # the inverter and the summer carry different offsets
    ratios = []
    for seed in range(300):  # σ_R/R of the drawn resistors: 0.5 % within sampling error
        d = perturb_deck(deck, block.opamp, np.random.default_rng(seed), OpampMismatch())
        sub = next(s for s in d.subckts if s.name == block.name)
        nominal = next(s for s in deck.subckts if s.name == block.name)
        ratios += [float(p.value) / float(q.value) - 1 for p, q in zip(sub.elements, nominal.elements)
                   if p.letter == "R"]
    assert abs(np.std(ratios) - 5e-3) < 5e-4 and abs(np.mean(ratios)) < 5e-4
    spread = OpampMismatch()  # Joshi et al. 2020 programming noise at g_T = 0, 0.5, 1 (µS, g_max 25 µS)
    got = [spread.pcm_sigma_s(g) * 1e6 for g in (0.0, 12.5e-6, 25e-6)]
    np.testing.assert_allclose(got, [0.2635, 0.2635 + 0.9825 - 1.1731 / 4, 0.2635 + 1.9650 - 1.1731], rtol=1e-12)


def test_too_few_points_is_a_parameter_error():
    with pytest.raises(KelvinError, match=r"use at least \d+ points"):
        plan("current.synapse_array", instances=1, points=8, seed=0)


# --- against ngspice -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Every kind characterized once (3 chips, 32 points) and fitted."""
    root = tmp_path_factory.mktemp("char")
    summary = characterize(ALL_KINDS, root / "data", instances=INSTANCES, points=POINTS, seed=SEED,
                           workers=2, progress=False)
    fitted = fit(root / "data", root / "fits")
    return root, summary, fitted


def _npz_contents(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for f in sorted(folder.rglob("*.npz")):
        with np.load(f) as z:
            out[str(f.relative_to(folder))] = {k: z[k] for k in z.files}
    return out


def _same_npz(a: Path, b: Path) -> None:
    ca, cb = _npz_contents(a), _npz_contents(b)
    assert ca.keys() == cb.keys() and len(ca) == len(ALL_KINDS) * (INSTANCES + 2)
    for name in ca:
        assert ca[name].keys() == cb[name].keys(), name
        for key in ca[name]:
            np.testing.assert_array_equal(ca[name][key], cb[name][key], err_msg=f"{name}:{key}")


def _fit_docs(folder: Path) -> dict[str, dict]:
    docs = {}
    for f in sorted(folder.glob("*.json")):
        doc = json.loads(f.read_text())
        if f.name == "kelvin.json":  # the directory's kind, {"kind": "fits"}
            docs[f.name] = doc
            continue
        doc["provenance"].pop("created")
        docs[f.name] = doc
    return docs


@pytest.mark.ngspice
def test_every_family_fits_its_spice_data_within_1pct_fs(clean):
    _, summary, fitted = clean
    assert summary["simulated"] == len(ALL_KINDS) * (INSTANCES + 1) and summary["reused"] == 0
    assert {f["kind"] for f in fitted["families"]} == set(ALL_KINDS)
    for f in fitted["families"]:
        assert f["rms_pct_fs"] < 1.0 and f["worst_instance_rms_pct_fs"] < 1.0, f
        assert f["held_out_points"] >= POINTS // 2 - 1
    assert "synapse" in format_fit(fitted) and "simulated" in format_characterize(summary)


@pytest.mark.ngspice
def test_fitted_population_reflects_mismatch(clean):
    root, _, _ = clean
    neuron = load_fit(root / "fits" / "current_neuron.json")
    assert neuron.instances.shape == (INSTANCES, 3)
    assert 0.005 < np.std(neuron.instances[:, 0]) < 0.2  # Pelgrom: a few % of gain per soma chain
    y = neuron.predict(np.array([[0.5]]))
    assert abs(y[0] - 0.5) < 0.05
    assert neuron.sample(np.random.default_rng(0), 5).shape == (5, 3)


@pytest.mark.ngspice
def test_same_seed_gives_identical_data_and_fits(clean, tmp_path):
    root, _, _ = clean
    characterize(ALL_KINDS, tmp_path / "data", instances=INSTANCES, points=POINTS, seed=SEED, workers=2,
                 progress=False)
    fit(tmp_path / "data", tmp_path / "fits")
    _same_npz(root / "data", tmp_path / "data")
    assert _fit_docs(root / "fits") == _fit_docs(tmp_path / "fits")


@pytest.mark.ngspice
def test_resume_simulates_only_the_missing_jobs(clean, tmp_path):
    root, _, _ = clean
    total = len(ALL_KINDS) * (INSTANCES + 1)
    first = characterize(ALL_KINDS, tmp_path, instances=INSTANCES, points=POINTS, seed=SEED, workers=2,
                         progress=False, max_jobs=total // 2, batch=7)
    assert first["simulated"] == total // 2 and first["remaining"] == total - total // 2
    with pytest.raises(CharacterizationDataError, match="not simulated yet"):
        fit(tmp_path, tmp_path / "fits")
    second = characterize(ALL_KINDS, tmp_path, instances=INSTANCES, points=POINTS, seed=SEED, workers=2,
                          progress=False)
    assert second["simulated"] == total - total // 2 and second["reused"] == total // 2
    assert second["remaining"] == 0
    gone = [kind_dir(tmp_path, "opamp.log") / "instance_0001.npz", kind_dir(tmp_path, "current.neuron") / "nominal.npz"]
    for f in gone:  # a run killed after writing some chunks looks like this
        f.unlink()
    third = characterize(ALL_KINDS, tmp_path, instances=INSTANCES, points=POINTS, seed=SEED, workers=2,
                         progress=False)
    assert third["simulated"] == 2 and third["reused"] == total - 2
    _same_npz(root / "data", tmp_path)


@pytest.mark.ngspice
def test_corrupt_chunk_is_a_clear_error_and_is_kept(clean, tmp_path):
    root, _, _ = clean
    data = tmp_path / "data"
    shutil.copytree(root / "data", data)
    bad = kind_dir(data, "opamp.exp") / "instance_0002.npz"
    bad.write_bytes(bad.read_bytes()[:100])
    before = bad.read_bytes()
    with pytest.raises(CharacterizationDataError, match=r"instance_0002\.npz.*corrupt.*kept"):
        characterize(["opamp.exp"], data, instances=INSTANCES, points=POINTS, seed=SEED, progress=False)
    with pytest.raises(CharacterizationDataError, match="instance_0002"):
        load_data(kind_dir(data, "opamp.exp"))
    assert bad.read_bytes() == before


@pytest.mark.ngspice
def test_mismatched_provenance_is_a_clear_error(clean, tmp_path):
    root, _, _ = clean
    data = tmp_path / "data"
    shutil.copytree(root / "data", data)
    with pytest.raises(CharacterizationDataError, match=r"manifest\.json.*seed 7 \(this run: 8\)"):
        characterize(["opamp.summer"], data, instances=INSTANCES, points=POINTS, seed=8, progress=False)
    chunk = kind_dir(data, "current.neuron") / "instance_0000.npz"
    with np.load(chunk) as z:
        fields = {k: z[k] for k in z.files}
    fields["device_card_sha256"] = np.array("0" * 64)
    np.savez(chunk, **fields)
    with pytest.raises(CharacterizationDataError, match=r"instance_0000\.npz.*device_card_sha256"):
        characterize(["current.neuron"], data, instances=INSTANCES, points=POINTS, seed=SEED, progress=False)
    assert chunk.exists()


@pytest.mark.ngspice
def test_failed_fit_names_family_and_keeps_what_was_written(clean, tmp_path):
    root, _, _ = clean
    data, out = tmp_path / "data", tmp_path / "fits"
    shutil.copytree(root / "data", data)
    shutil.copytree(root / "fits", out)
    kept = (out / "log.json").read_bytes()
    chunk = kind_dir(data, "opamp.log") / "instance_0001.npz"
    with np.load(chunk) as z:
        fields = {k: z[k] for k in z.files}
    fields["y"] = np.full_like(fields["y"], np.nan)
    np.savez(chunk, **fields)
    (out / "summer.json").unlink()
    with pytest.raises(FitError, match=r"family log \(opamp.log\), instance 1"):
        fit(data, out)
    assert (out / "log.json").read_bytes() == kept  # the failed family's earlier model is untouched
    assert not (out / "summer.json").exists()  # fits are written as a set: none when one family fails


@pytest.mark.ngspice
def test_model_json_of_another_version_is_a_clear_error(clean, tmp_path):
    root, _, _ = clean
    doc = json.loads((root / "fits" / "summer.json").read_text())
    assert load_fit(root / "fits" / "summer.json").parameters[-1] == "offset"
    for change, pattern in (({"version": 2}, "version 2.*reads version 1"), ({"format": "other"}, "not a Kelvin fit")):
        path = tmp_path / "model.json"
        path.write_text(json.dumps({**doc, **change}))
        with pytest.raises(FitFormatError, match=pattern):
            load_fit(path)


# --- the shipped models ---------------------------------------------------------------------

def test_shipped_fits_cover_every_family_and_are_current():
    """The shipped models fit, and were made from today's circuits (same netlists, same cards)."""
    from circuits.spice.devices import DeviceCard

    files = {p.stem for p in SHIPPED.glob("*.json") if p.name != "kelvin.json"}  # a regenerated one records its kind
    assert files == {cls.name for cls in FAMILIES.values()}
    card = DeviceCard.load()
    stale = "regenerate: kelvin characterize --all -o out/char && kelvin fit out/char -o models/fits"
    for kind, cls in FAMILIES.items():
        model = shipped_model(kind)
        assert model.path.name == f"{cls.name}.json" and model.kind == kind
        assert model.fidelity["rms_pct_fs"] < 1.0, cls.name
        assert model.instances.shape[0] >= 16 and model.cov.shape == (len(model.parameters),) * 2
        assert model.provenance["device_card_sha256"] == card.sha256, f"{cls.name}: {stale}"
        prov = model.provenance
        jobs = plan(kind, instances=1, points=prov["points"], seed=prov["seed"]).jobs
        assert jobs[0].netlist_sha256 == prov["netlist_sha256"]["nominal"], f"{cls.name}: circuit changed; {stale}"
        assert jobs[1].netlist_sha256 == prov["netlist_sha256"]["instances"][0], f"{cls.name}: {stale}"


def test_cli_fit_errors_are_one_line_and_keep_files(tmp_path, capsys):
    """kelvin fit on a corrupt characterization folder: one clear line, exit 1, the file untouched."""
    from sim.cli import main

    data = tmp_path / "char"
    assert main(["characterize", "opamp.rectifier", "-o", str(data), "--instances", "2", "--points", "16",
                 "-q"]) == 0
    victim = next((data).rglob("*.npz"))
    victim.write_bytes(b"not an npz")
    assert main(["fit", str(data), "-o", str(tmp_path / "fits"), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and victim.name in err
    assert victim.read_bytes() == b"not an npz"


# --- where characterize and fit write --------------------------------------------------------------

def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _one_line(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, (code, err)
    return err


SMALL = ["--instances", "1", "--points", "13", "-q"]


def test_cli_characterize_and_fit_refuse_foreign_and_other_kind_directories(tmp_path, capsys):
    """Both wrote into any directory: opamp_summer/ and summer.json beside a user's notes.txt, into a
    compile output, and fit into its own input (then warned that compile files were earlier fits).
    Each is now one line naming the directory, before any work, with nothing written."""
    from sim.cli import main

    user, compiled, data = tmp_path / "user", tmp_path / "compiled", tmp_path / "char"
    user.mkdir()
    (user / "notes.txt").write_text("my notes")
    assert main(["compile", str(REPO / "models/examples/digits_mlp.onnx"), "-o", str(compiled), "-q"]) == 0
    assert main(["characterize", "opamp.summer", "-o", str(data), *SMALL]) == 0
    assert json.loads((data / "kelvin.json").read_text()) == {"kind": "characterization"}
    capsys.readouterr()
    before = {d: _tree(d) for d in (user, compiled, data)}
    cases = [(["characterize", "opamp.summer", "-o", str(user), *SMALL], f"{user}: exists, is not empty and was not "
              "written by kelvin"),
             (["characterize", "opamp.summer", "-o", str(compiled), *SMALL], f"{compiled}: holds a Kelvin compile "
              "output, not a characterization one"),
             (["fit", str(data), "-o", str(user), "-q"], f"{user}: exists, is not empty and was not written by kelvin"),
             (["fit", str(data), "-o", str(compiled), "-q"], f"{compiled}: holds a Kelvin compile output, not a fits"),
             (["fit", str(data), "-o", str(data), "-q"], f"-o {data}: is the characterization data `kelvin fit` reads"),
             (["fit", str(data), "-o", str(data / "opamp_summer"), "-q"], "is the characterization data"),
             (["fit", str(data / "opamp_summer"), "-o", str(data / "opamp_summer" / "fits"), "-q"],
              "is inside the characterization data")]
    for argv, needle in cases:
        line = _one_line(capsys, main(argv))
        assert f"kelvin {argv[0]}: error: " in line and needle in line, (argv, line)
    fits = tmp_path / "fits"
    assert main(["fit", str(data), "-o", str(fits), "-q"]) == 0
    assert main(["characterize", "opamp.summer", "-o", str(fits), *SMALL]) == 1  # fits and data do not mix
    assert "holds a Kelvin fits output, not a characterization one" in capsys.readouterr().err
    assert main(["fit", str(data), "-o", str(data / "fits"), "-q"]) == 0  # beside the kind folders: allowed
    assert {d: _tree(d) for d in (user, compiled)} == {d: before[d] for d in (user, compiled)}
    assert {k: v for k, v in _tree(data).items() if not k.startswith("fits/")} == before[data]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no lock or staging left


def test_characterize_and_fit_still_add_to_their_own_directories(tmp_path, capsys, caplog):
    """Re-running into one's own kind of directory adds to it, as documented; directories written before
    kelvin.json was recorded (no kelvin.json) are known by their content and still accepted."""
    from sim.cli import main
    from sim.engine.fitted import load_fits

    data, fits = tmp_path / "char", tmp_path / "fits"
    assert main(["characterize", "opamp.summer", "-o", str(data), *SMALL]) == 0
    (data / "kelvin.json").unlink()  # as an older Kelvin left it
    assert main(["characterize", "opamp.rectifier", "-o", str(data), "--instances", "1", "--points", "16",
                 "-q"]) == 0
    assert sorted(p.name for p in data.iterdir()) == ["kelvin.json", "opamp_rectifier", "opamp_summer"]
    assert main(["fit", str(data / "opamp_summer"), "-o", str(fits), "-q"]) == 0
    assert json.loads((fits / "kelvin.json").read_text()) == {"kind": "fits"}
    (fits / "notes.txt").write_text("mine")
    summer = (fits / "summer.json").read_bytes()
    caplog.clear()
    assert main(["fit", str(data / "opamp_rectifier"), "-o", str(fits), "-q"]) == 0
    warned = [r.getMessage() for r in caplog.records if "from an earlier fit" in r.getMessage()]
    assert len(warned) == 1 and "holds summer.json from" in warned[0], warned  # not kelvin.json nor notes
    assert sorted(p.name for p in fits.iterdir()) == ["kelvin.json", "notes.txt", "rectifier.json", "summer.json"]
    assert (fits / "summer.json").read_bytes() == summer and (fits / "notes.txt").read_text() == "mine"
    assert sorted(load_fits(fits)) == ["rectifier", "summer"]  # kelvin.json is not read as a fit
    old = tmp_path / "shipped"
    shutil.copytree(SHIPPED, old)
    for extra in old.glob("kelvin.json"):
        extra.unlink()  # models/fits as shipped before kinds were recorded
    assert main(["fit", str(data / "opamp_summer"), "-o", str(old), "-q"]) == 0
    assert (old / "kelvin.json").is_file() and len(load_fits(old)) == len(load_fits(SHIPPED))


def test_older_characterization_and_fits_directories_are_known_by_their_content(tmp_path):
    """No kelvin.json: a directory of kind folders is a characterization, one of kelvin-fit files a fits
    output; a user's file among them, or folders without a manifest, make it a foreign directory."""
    from circuits.files import output_kind

    char = tmp_path / "char"
    (char / "opamp_summer").mkdir(parents=True)
    (char / "opamp_summer" / "manifest.json").write_text(json.dumps({"format": "kelvin-characterization"}))
    (char / "fits").mkdir()
    fits = tmp_path / "fits"
    fits.mkdir()
    shutil.copy(SHIPPED / "summer.json", fits)
    (fits / ".summer.json.1.x.tmp").write_text("")  # hidden temp files do not count
    assert output_kind(char) == "characterization" and output_kind(fits) == "fits"
    assert output_kind(SHIPPED) == "fits"
    (char / "notes.txt").write_text("mine")
    (fits / "notes.json").write_text("{}")
    plain = tmp_path / "plain"
    (plain / "sub").mkdir(parents=True)
    assert output_kind(char) is None and output_kind(fits) is None and output_kind(plain) is None
    assert output_kind(tmp_path / "nope") is None
