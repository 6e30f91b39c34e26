"""Hardware models: derivatives against finite differences, quantization against the netlist's rule,
composition, PCM drift, and the CLI's one-line errors."""

from __future__ import annotations

from pathlib import Path as Path_

import numpy as np
import pytest

from circuits.current import SynapseArray
from circuits.errors import KelvinError
from circuits.spice.emit_current import quantized_synapse_array
from compiler.pipeline import compile_model
from sim.cli import main
from sim.engine.hardware import BinasLevels, ConductanceLevels, MirrorGains, PcmDevices
from sim.engine.chip_map import ChipWeights
from sim.engine.fitted import Affine, FittedLevels, ParamAffine
from sim.engine.maps import FixedGain, Quantize, Rectify, RelativeNoise
from sim.engine.prepare import HardwareOptions, build_program

MLP = "models/examples/digits_mlp.onnx"
rng = np.random.default_rng(1)


def _param_fd(m, p, fresh_rng_seed=5, eps=1e-6):
    """The map's backward against central differences of Σ r·map(p) with the same random draws."""
    def value(q):
        out, _ = m.forward(q, np.random.default_rng(fresh_rng_seed))
        return out

    out, saved = m.forward(p, np.random.default_rng(fresh_rng_seed))
    r = {k: rng.standard_normal(v.shape) for k, v in out.items()}
    g = m.backward(saved, r)
    for k, v in p.items():
        for i in rng.choice(v.size, min(5, v.size), replace=False):
            old = v.flat[i]
            v.flat[i] = old + eps
            up = sum(float(np.sum(value(p)[j] * r[j])) for j in r)
            v.flat[i] = old - eps
            dn = sum(float(np.sum(value(p)[j] * r[j])) for j in r)
            v.flat[i] = old
            assert (up - dn) / (2 * eps) == pytest.approx(g[k].flat[i], rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("make", [
    lambda: RelativeNoise(1e-2),
    lambda: MirrorGains(0.05),
    lambda: FixedGain({"weights": rng.uniform(0.9, 1.1, (4, 6))}),
    lambda: ParamAffine(gain={"weights": rng.uniform(0.9, 1.1, (4, 6))}, shift={"bias": 0.3}),
])
def test_exact_weight_maps_match_finite_differences(make):
    """Maps with a true derivative."""
    m = make()
    p = {"weights": rng.standard_normal((4, 6)), "bias": rng.standard_normal(4)}
    if isinstance(m, FixedGain):
        p = {"weights": p["weights"]}
    _param_fd(m, p)


STE_MAPS = (BinasLevels, ConductanceLevels, Quantize, PcmDevices, ChipWeights, FittedLevels)


def test_ste_maps_are_the_listed_ones():
    """Maps whose derivative is zero almost everywhere say so; the rest are exact."""
    assert all(cls.ste for cls in STE_MAPS)
    assert not any(cls.ste for cls in (RelativeNoise, MirrorGains, FixedGain, Rectify, Affine, ParamAffine))


def test_pcm_estimator_is_the_drift_gain():
    """PCM's stated estimator: ∂w_eff/∂w = drift·compensation gain (programming noise held fixed)."""
    m = PcmDevices(3600.0, True, np.random.SeedSequence(3))
    w = rng.standard_normal((4, 6))
    out, gain = m.forward({"weights": w}, None)
    ratio = out["weights"] / w
    assert np.all(gain > 0) and np.allclose(np.median(ratio / gain, axis=1), 1.0, atol=0.1)
    g = m.backward(gain, {"weights": np.ones_like(w)})["weights"]
    np.testing.assert_array_equal(g, gain)


def test_binas_levels_equal_the_netlist_emitters_rounding():
    for _ in range(20):
        w = rng.standard_normal((5, 7)) * rng.choice([0.1, 1.0, 5.0])
        b = rng.standard_normal(5)
        prim = SynapseArray(w, b, rectify=True)
        want = quantized_synapse_array(prim)
        got, _ = BinasLevels(0.25).forward({"weights": w, "bias": b}, None)
        np.testing.assert_allclose(got["weights"], want.weights, rtol=1e-12)
        np.testing.assert_allclose(got["bias"], want.bias, rtol=1e-12)


def test_quantized_export_holds_only_levels():
    c = compile_model(MLP, "current")
    prog = build_program(c, HardwareOptions(modes=("quantized",)), dtype=np.float64)
    for step in prog.primitive_steps():
        if not step.params or not step.maps.wmap:
            continue
        p = {f: prog.params[k] for f, k in step.params}
        q, _ = step.maps.wmap[0].forward(p, None)
        w = q["weights"]
        unit = np.maximum(0.25, np.maximum(np.abs(p["weights"]).max(1), np.abs(p.get("bias", 0))) / 7)
        k = w / unit[:, None]
        assert np.allclose(k, np.rint(k)) and np.abs(k).max() <= 7


def test_quantize_converter_rule_and_calibration():
    q = Quantize(3)  # L = 3 levels per side, full scale calibrated to the first signal
    x = np.array([-2.0, -0.4, 0.0, 0.2, 0.5, 1.0, 2.0])
    y, saved = q.forward(x, None)
    assert q.full_scale == 2.0
    step = 2.0 / 3
    np.testing.assert_allclose(y, step * np.clip(np.floor(x / step + 0.5), -3, 3))
    assert np.all(q.backward(saved, np.ones_like(x)) == 1)  # STE: the whole range passes the gradient
    y2, saved2 = q.forward(np.array([3.0]), None)
    assert y2[0] == pytest.approx(2.0) and q.backward(saved2, np.ones(1))[0] == 0  # saturated: none


def test_stacked_models_compose_and_noise_is_seeded():
    c = compile_model(MLP, "current")
    x = {c.graph.inputs[0]: rng.uniform(0, 1, (16, 64)).astype(np.float32)}
    q = build_program(c, HardwareOptions(modes=("quantized",))).run(x)
    qn = build_program(c, HardwareOptions(modes=("quantized", "noise"), noise=0.05))
    a = qn.run(x, rng=np.random.default_rng(0))
    b = qn.run(x, rng=np.random.default_rng(0))
    name = c.graph.outputs[0]
    np.testing.assert_array_equal(a[name], b[name])
    assert not np.allclose(a[name], q[name])
    assert np.abs(a[name] - q[name]).max() < 0.5 * np.abs(q[name]).max()


@pytest.mark.parametrize("target, modes", [("current", ("quantized",)), ("crossbar", ("quantized",)),
                                           ("current", ("chip",))])
def test_reused_weight_levels_follow_in_place_updates(target, modes):  # crossbar: 4-bit conductances
    """Inference reuses deterministic weight maps' results; an optimizer's in-place step must still
    reach the next run, exactly as a program built afresh on the updated weights."""
    c = compile_model(MLP, target)
    opts = HardwareOptions(modes=modes, chip_seed=3 if "chip" in modes else None,
                           weight_bits=4 if target == "crossbar" else None)
    assert any(s.maps.wmap for s in build_program(c, opts, trainable="chip" in modes).steps)
    prog = build_program(c, opts, trainable="chip" in modes) if "chip" in modes else build_program(c, opts)
    x = {c.graph.inputs[0]: rng.uniform(0, 1, (8, 64)).astype(np.float32)}
    name = c.graph.outputs[0]
    before = prog.run(x)[name]
    np.testing.assert_array_equal(prog.run(x)[name], before)  # the reused result is the same
    key = next(k for k in prog.params if k.endswith(".weights"))
    prog.params[key] *= -1.5
    after = prog.run(x)[name]
    fresh = build_program(c, opts, trainable="chip" in modes) if "chip" in modes else build_program(c, opts)
    fresh.run(x)  # the crossbar's converters calibrate on the first signal they see, as prog's did
    fresh.params[key] *= -1.5
    np.testing.assert_array_equal(after, fresh.run(x)[name])
    assert not np.allclose(after, before)


def test_pcm_drift_shrinks_outputs_and_compensation_restores_them():
    c = compile_model(MLP, "crossbar")
    x = {c.graph.inputs[0]: rng.uniform(0, 1, (64, 64)).astype(np.float32)}
    name = c.graph.outputs[0]

    def mean_abs(t, comp):
        prog = build_program(c, HardwareOptions(modes=("pcm",), pcm_time_s=t, drift_compensation=comp))
        return float(np.abs(prog.run(x, rng=np.random.default_rng(0))[name]).mean())

    base = mean_abs(20.0, False)
    day, year = mean_abs(86400.0, False), mean_abs(3.15e7, False)
    assert year < day < base
    # ν ≈ 0.05-0.1: (t/t0)^−ν over two layers shrinks by about (86400/20)^−0.07·2 ≈ 0.3 in a day
    assert 0.2 < day / base < 0.8
    assert mean_abs(3.15e7, True) == pytest.approx(base, rel=0.15)


def test_irdrop_runs_the_tiles_effective_weights():
    """--hardware irdrop multiplies by `wired_weights` (checked against the nodal solve and ngspice in
    tests/circuits/test_ir_drop.py); with no wire resistance it is the ideal network."""
    from circuits.crossbar import CrossbarArray
    from circuits.ir_drop import Wires
    from circuits.spice.crossbar_tile import wired_weights

    c = compile_model(MLP, "crossbar")
    x = {c.graph.inputs[0]: rng.uniform(0, 1, (16, 64)).astype(np.float32)}
    name = c.graph.outputs[0]
    ideal = build_program(c, HardwareOptions()).run(x)[name]
    flat = build_program(c, HardwareOptions(modes=("irdrop",), wire_ohm=0.0)).run(x)[name]
    np.testing.assert_allclose(flat, ideal, rtol=1e-5, atol=1e-5)
    prog = build_program(c, HardwareOptions(modes=("irdrop",), wire_ohm=5.0), dtype=np.float64)
    wired = prog.run(x)[name]
    assert 1e-3 < np.abs(wired - ideal).max() < 0.2 * np.abs(ideal).max()
    banks = [n.primitive for n in c.graph.nodes if isinstance(getattr(n, "primitive", None), CrossbarArray)]
    w0, b0 = wired_weights(banks[0], Wires.uniform(5.0))
    h = np.maximum(x[c.graph.inputs[0]].astype(np.float64) @ w0.T + b0, 0)
    w1, b1 = wired_weights(banks[1], Wires.uniform(5.0))
    np.testing.assert_allclose(wired, h @ w1.T + b1, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("argv, needle", [
    (["--target", "current", "--hardware", "pcm"], "not available on target 'current'"),
    (["--target", "crossbar", "--hardware", "bogus"], "unknown mode 'bogus'"),
    (["--target", "crossbar", "--hardware", "pcm", "--pcm-time", "-1"], "--pcm-time"),
    (["--target", "crossbar", "--hardware", "irdrop"], "--wire-ohm"),
    (["--target", "crossbar", "--hardware", "irdrop", "--wire-ohm", "-2"], "--wire-ohm"),
    (["--target", "opamp", "--hardware", "irdrop", "--wire-ohm", "2"], "not available on target 'opamp'"),
    (["--target", "crossbar", "--hardware", "quantized", "--adc-bits", "0"], "--adc-bits"),
    (["--target", "crossbar", "--hardware", "quantized", "--dac-bits", "17"], "--dac-bits"),
    (["--target", "current", "--hardware", "chip"], "--chip-seed"),
    (["--target", "current", "--hardware", "noise", "--engine", "spice"], "cannot represent --hardware noise"),
    (["--target", "current", "--hardware", "fitted"], "--fits"),
    (["--target", "current", "--hardware", "fitted", "--fits", "no/such/dir"], "not a directory"),
    (["--target", "current", "--hardware", "early"], "stack it on quantized, chip"),
    (["--target", "crossbar", "--hardware", "quantized,early"], "not available on target 'crossbar'"),
    (["--target", "current", "--hardware", "chip,early,noise", "--chip-seed", "1"], "drop noise"),
    (["--target", "current", "--hardware", "fitted,early", "--fits", "models/fits"], "characterization fits"),
])
def test_bad_hardware_options_are_one_line(tmp_path, capsys, argv, needle):
    x = tmp_path / "x.npy"
    np.save(x, rng.uniform(0, 1, (2, 64)).astype(np.float32))
    assert main(["run", MLP, "-i", str(x), "-q", *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_run_hardware_quantized_writes_outputs(tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, rng.uniform(0, 1, (5, 64)).astype(np.float32))
    out = tmp_path / "y.npy"
    assert main(["run", MLP, "-i", str(x), "-o", str(out), "--target", "current", "--hardware", "quantized", "-q"]) == 0
    c = compile_model(MLP, "current")
    want = build_program(c, HardwareOptions(modes=("quantized",))).run({c.graph.inputs[0]: np.load(x)})
    np.testing.assert_allclose(np.load(out), want[c.graph.outputs[0]], rtol=1e-6)
    with pytest.raises(KelvinError):
        HardwareOptions.parse("quantized,quantized")


def test_pcm_devices_follow_joshi_2020():
    """The fused PCM map against the published equations written out in NumPy (`shared/SCIENCE.md`)."""
    t, g_max = 86400.0, 25.0
    m = PcmDevices(t, True, np.random.SeedSequence(9))
    w = rng.standard_normal((3, 8))
    eps, z = m._programmed(w)
    rn_seed = 4
    got, _ = m.forward({"weights": w}, np.random.default_rng(rn_seed))
    rn = np.random.default_rng(rn_seed).standard_normal(w.shape)
    w_max = np.abs(w).max(axis=1, keepdims=True)
    g_t = np.abs(w) / w_max * g_max
    g_prog = np.maximum(g_t + np.maximum(-1.1731 * g_t ** 2 + 1.9650 * g_t + 0.2635, 0) * eps, 0)
    ln = np.log(g_t / g_max)
    mu = np.clip(-0.0155 * ln + 0.0244, 0.049, 0.1)
    sd = np.clip(-0.0125 * ln - 0.0059, 0.008, 0.045)
    g_now = g_prog * (t / 20.0) ** -np.abs(mu + sd * z)
    q_s = np.minimum(0.0088 / g_t ** 0.65, 0.2)
    g_now = np.maximum(g_now + g_now * q_s * np.sqrt(np.log((t + 250e-9) / (2 * 250e-9))) * rn, 0)
    comp = g_prog.sum(axis=1, keepdims=True) / g_now.sum(axis=1, keepdims=True)
    want = np.sign(w) * g_now / g_max * w_max * comp
    np.testing.assert_allclose(got["weights"], want, rtol=1e-10)
    # the programmed state is kept between reads of the same weights: a second read is a fresh draw
    # of read noise only, as a map made anew gives; new weights (an in-place step) are re-programmed
    again, _ = m.forward({"weights": w}, np.random.default_rng(rn_seed))
    np.testing.assert_array_equal(again["weights"], got["weights"])
    other, _ = m.forward({"weights": w}, np.random.default_rng(rn_seed + 1))
    assert not np.allclose(other["weights"], got["weights"])
    w *= -0.5
    stepped, gain = m.forward({"weights": w}, np.random.default_rng(rn_seed))
    fresh, fresh_gain = PcmDevices(t, True, np.random.SeedSequence(9)).forward({"weights": w},
                                                                              np.random.default_rng(rn_seed))
    np.testing.assert_array_equal(stepped["weights"], fresh["weights"])
    np.testing.assert_array_equal(gain, fresh_gain)


def test_backend_prepare_takes_the_same_hardware_choices():
    import onnx
    import sim.backend as kb
    m = onnx.load(MLP)
    x = rng.uniform(0, 1, (4, 64)).astype(np.float32)
    ideal = kb.prepare(m, target="current").run([x])[0]
    quant = kb.prepare(m, target="current", hardware="quantized").run([x])[0]
    c = compile_model(MLP, "current")
    want = build_program(c, HardwareOptions(modes=("quantized",))).run({c.graph.inputs[0]: x})[c.graph.outputs[0]]
    np.testing.assert_array_equal(quant, want)
    assert not np.allclose(quant, ideal)
    with pytest.raises(KelvinError, match="not available on target"):
        kb.prepare(m, target="current", hardware="pcm")


def test_trainable_chip_map_reproduces_the_chip_draw():
    """The nominal weights through the chip map equal the drawn chip's folded banks (mismatch only)."""
    from sim.chip import ChipInstance
    from sim.engine.program import Program
    c = compile_model(MLP, "current")
    x = rng.uniform(0, 1, (20, 64))
    opts = HardwareOptions(modes=("chip",), chip_seed=3, sizing="compact")
    prog = build_program(c, opts, dtype=np.float64, trainable=True)
    assert sorted(prog.params) == ["fc1.bias", "fc1.weights", "logits.bias", "logits.weights"]
    got = prog.run({c.graph.inputs[0]: x})[c.graph.outputs[0]]
    g = ChipInstance.draw(c, 3, None, sizing="compact").engine_graph(early=False)
    want = Program(g, dtype=np.float64).run({c.graph.inputs[0]: x})[c.graph.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
    out, tape = prog.forward({c.graph.inputs[0]: x}, train=True)
    grads = prog.backward(tape, {c.graph.outputs[0]: np.ones_like(out[c.graph.outputs[0]])})
    assert {k: grads[k].shape for k in grads} == {k: v.shape for k, v in prog.params.items()}


def test_trainable_chip_with_a_bias_free_signed_layer():
    """A signed read-out layer without a bias: the chip realizes none, training keeps it at zero, and the
    trainable map still equals the drawn chip."""
    from onnx import TensorProto, helper, numpy_helper

    from sim.chip import ChipInstance
    from sim.engine.program import Program
    r = np.random.default_rng(0)
    w1, w2 = r.normal(0, 0.5, (8, 4)).astype(np.float32), r.normal(0, 0.5, (3, 8)).astype(np.float32)
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
                           helper.make_node("Relu", ["h"], ["a"]), helper.make_node("Gemm", ["a", "w2"], ["y"], transB=1)],
                          "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                          [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(np.full(8, 0.1, np.float32), "b1"),
                           numpy_helper.from_array(w2, "w2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    c = compile_model(m, "current")
    x = r.uniform(0, 1, (10, 4))
    prog = build_program(c, HardwareOptions(modes=("chip",), chip_seed=1), dtype=np.float64, trainable=True)
    got = prog.run({"x": x})["y"]
    want = Program(ChipInstance.draw(c, 1, None).engine_graph(early=False), dtype=np.float64).run({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
    out, tape = prog.forward({"x": x}, train=True)
    grads = prog.backward(tape, {"y": np.ones_like(out["y"])})
    bias = [k for k in prog.params if k.endswith(".bias") and prog.params[k].shape == (3,)]
    assert bias and not np.any(grads[bias[0]])


def _fit_program(kind_prim, fits="models/fits", chip_seed=None):
    from compiler.ir import Graph, PrimitiveNode, TensorInfo
    from sim.engine.fitted import Fitted, load_fits
    from sim.engine.program import Program
    g = Graph("one")
    g.inputs, g.outputs = ["x"], ["y"]
    g.values["x"] = TensorInfo("x", ("N", 1), np.dtype(np.float64))
    g.add(PrimitiveNode("n", ["x"], ["y"], primitive=kind_prim))
    return Program(g, dtype=np.float64, hardware=Fitted(load_fits(fits), chip_seed=chip_seed))


@pytest.mark.parametrize("prim, family", [
    ("rectifier", "rectifier"), ("diffpair", "diffpair"), ("neuron", "current_neuron")])
def test_fitted_maps_reproduce_the_family_prediction(prim, family):
    """The engine's fitted maps around the primitive's kernel equal the family's own predict."""
    import json
    from circuits import current, opamp
    from sim.characterize.families import family_class
    prims = {"rectifier": opamp.PrecisionRectifier(), "diffpair": opamp.DiffPairActivation("tanh"),
             "neuron": current.CurrentNeuron()}
    doc = json.loads(Path_("models/fits") .joinpath(f"{family}.json").read_text())
    fam = family_class(doc["kind"])(**doc["design"])
    params = np.array([doc["nominal"][n] for n in doc["parameters"]])
    x = np.linspace(-1.5, 1.5, 41)[:, None]
    got = _fit_program(prims[prim]).run({"x": x})["y"][:, 0]
    want = fam.predict(params, x)
    if family == "rectifier":  # the engine leaves out the fitted leak below threshold (|leak| ~ 1e-6)
        want = want - params[2] * np.minimum(x[:, 0] - params[1], 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_bad_fits_directories_are_one_clear_error(tmp_path):
    from sim.engine.fitted import load_fits
    with pytest.raises(KelvinError, match="not a directory"):
        load_fits(tmp_path / "nope")
    with pytest.raises(KelvinError, match="no fit files"):
        load_fits(tmp_path)
    import json
    doc = json.loads(Path_("models/fits/summer.json").read_text())
    (tmp_path / "summer.json").write_text(json.dumps({**doc, "version": 99}))
    with pytest.raises(KelvinError, match="version 99"):
        load_fits(tmp_path)
    (tmp_path / "summer.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(KelvinError, match="not a Kelvin fit"):
        load_fits(tmp_path)
    (tmp_path / "summer.json").write_text(json.dumps({k: v for k, v in doc.items() if k != "nominal"}))
    with pytest.raises(KelvinError, match="nominal"):
        load_fits(tmp_path)
    nan = {**doc, "nominal": {k: float("nan") for k in doc["nominal"]}}  # used to give NaN outputs, exit 0
    (tmp_path / "summer.json").write_text(json.dumps(nan))
    with pytest.raises(KelvinError, match="summer.json: field 'nominal' holds non-finite values"):
        load_fits(tmp_path)
    (tmp_path / "summer.json").write_bytes(b"\xa7\x00binary")  # used to be an internal UnicodeDecodeError
    with pytest.raises(KelvinError, match="summer.json: not a readable fit file"):
        load_fits(tmp_path)
    (tmp_path / "summer.json").write_text(json.dumps(doc))
    c = compile_model(MLP, "current")
    with pytest.raises(KelvinError, match="no fit for this model's primitives"):
        build_program(c, HardwareOptions(modes=("fitted",), fits=str(tmp_path)))


def test_fitted_population_samples_a_chip():
    c = compile_model(MLP, "current")
    x = {c.graph.inputs[0]: rng.uniform(0, 1, (32, 64)).astype(np.float32)}
    name = c.graph.outputs[0]
    nominal = build_program(c, HardwareOptions(modes=("fitted",), fits="models/fits")).run(x)[name]
    quant = build_program(c, HardwareOptions(modes=("quantized",))).run(x)[name]
    a = build_program(c, HardwareOptions(modes=("fitted",), fits="models/fits", chip_seed=1)).run(x)[name]
    b = build_program(c, HardwareOptions(modes=("fitted",), fits="models/fits", chip_seed=1)).run(x)[name]
    d = build_program(c, HardwareOptions(modes=("fitted",), fits="models/fits", chip_seed=2)).run(x)[name]
    fs = np.abs(quant).max()
    assert np.abs(nominal - quant).max() < 0.05 * fs     # the nominal circuit is close to its levels
    np.testing.assert_array_equal(a, b)
    assert 0.001 * fs < np.abs(a - d).max() < 0.5 * fs   # two sampled chips differ by mismatch-sized amounts


def test_compile_reports_the_sizing_area_and_spread(tmp_path, capsys):
    import json
    docs = {}
    for preset in ("default", "compact"):
        assert main(["compile", MLP, "-o", str(tmp_path / preset), "--target", "current", "--sizing", preset, "-q"]) == 0
        assert f"sizing: {preset}" in capsys.readouterr().out
        docs[preset] = json.loads((tmp_path / preset / "graph.json").read_text())["sizing"]
    assert docs["compact"]["synapse_area_m2"] < docs["default"]["synapse_area_m2"]
    assert docs["compact"]["sigma_dvt_unit_v"] > docs["default"]["sigma_dvt_unit_v"]


def test_pcm_draws_are_keyed_by_layer_not_by_step_order():
    """A CNN's gathers are scheduled next to their banks (a change of execution order): each PCM layer's
    draws stay keyed by (seed, its position among the primitive nodes), as a chip's cells are."""
    from sim import zoo
    c = compile_model(zoo.cnn(), "crossbar")
    prog = build_program(c, HardwareOptions(modes=("pcm",), seed=5))
    keyed = [(s, m) for s in prog.primitive_steps() for m in s.maps.wmap if isinstance(m, PcmDevices)]
    assert len(keyed) >= 2
    for s, m in keyed:
        assert list(m.key.entropy) == [5, prog.layer_key(s)]
    assert [prog.layer_key(s) for s in prog.primitive_steps()] == list(range(len(prog.primitive_steps())))


def test_population_fit_from_fewer_chips_than_parameters_still_draws():
    """Two characterized chips give a covariance of rank one: Cholesky refused it (an internal
    LinAlgError on `--chip-seed`); the draw now factors it by eigenvalues and stays in its span."""
    from sim.engine.fitted import Fit
    d = np.array([1.0, -2.0, 0.5])
    fit = Fit(Path_("x.json"), "k", "f", ("a", "b", "c"), np.zeros(3), np.ones(3), np.outer(d, d) * 1e-4)
    draws = fit.draw(np.random.default_rng(0), (500,))
    assert draws.shape == (500, 3) and np.isfinite(draws).all()
    resid = (draws - 1.0) - np.outer((draws - 1.0) @ d / (d @ d), d)
    assert np.abs(resid).max() < 1e-6 and np.std((draws - 1.0) @ d / np.linalg.norm(d)) > 1e-3
    np.testing.assert_array_equal(draws, fit.draw(np.random.default_rng(0), (500,)))  # seeded


def test_a_constructed_hardware_options_is_checked_like_a_parsed_one():
    """The README's API builds HardwareOptions directly: a chip without a seed ran as a chip of no seed,
    noise 50 ran; build_program now checks the object as `parse` does."""
    from sim.engine.prepare import HardwareOptions, build_program
    c = compile_model(MLP, "current")
    for opts, match in ((HardwareOptions(modes=("chip",)), "needs --chip-seed"),
                        (HardwareOptions(modes=("noise",), noise=50.0), r"in \[0, 1\]"),
                        (HardwareOptions(modes="quantized"), "a tuple of names"),
                        ("quantized", "a HardwareOptions")):
        with pytest.raises(KelvinError, match=match):
            build_program(c, opts)


def test_early_stacks_the_mirrors_drift_on_the_programmed_levels():
    """``chip`` is the drawn chip's folded banks (mismatch only), ``chip,early`` adds the mirrors' Early
    drift (`ChipInstance.engine_graph(early=True)`); ``quantized,early`` is the nominal chip with the
    drift, and ``quantized`` that chip without it. The drift moves outputs by a fraction of a percent
    of full scale, the size the slopes (n·U_T/V_A per e-fold) give."""
    from sim.chip import ChipInstance
    from sim.engine.program import Program
    c = compile_model(MLP, "current")
    x = {c.graph.inputs[0]: rng.uniform(0, 1, (40, 64))}
    out = c.graph.outputs[0]

    def run(modes, seed=None):
        return build_program(c, HardwareOptions(modes=modes, chip_seed=seed), dtype=np.float64).run(x)[out]

    def draw(seed, early):
        return Program(ChipInstance.draw(c, seed, None).engine_graph(early=early), dtype=np.float64).run(x)[out]

    for modes, seed, early in ((("chip",), 2, False), (("chip", "early"), 2, True), (("quantized", "early"), None, True),
                               (("quantized",), None, False)):
        want = draw(seed, early)
        np.testing.assert_allclose(run(modes, seed), want, rtol=1e-6, atol=1e-6 * np.abs(want).max(), err_msg=str(modes))
    fs = np.abs(draw(2, True)).max()
    shift = np.sqrt(np.mean((run(("chip", "early"), 2) - run(("chip",), 2)) ** 2)) / fs
    assert 1e-4 < shift < 0.02
    with pytest.raises(KelvinError, match="no gradient"):
        build_program(c, HardwareOptions(modes=("chip", "early"), chip_seed=2), trainable=True)
