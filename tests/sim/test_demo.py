"""`kelvin demo` end to end on a small MLP with tiny budgets: every report key, file and plot is produced."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from circuits.errors import ParameterError
from sim import zoo
from sim.demo import DemoConfig, run_demo

KEYS = ("ideal_accuracy", "chip_naive_accuracy", "chip_aware_measured_accuracy", "chip_aware_oracle_accuracy",
        "spice_naive_accuracy", "spice_aware_accuracy", "spice_samples", "engine_spice_argmax_agreement",
        "measurement_simulations", "settling_time_s", "energy_per_inference_j", "macs_per_joule", "yield",
        "netlist", "seed")


def test_demo_small_model_writes_every_output(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 3))
    x = rng.uniform(0, 1, (120, 6)).astype(np.float32)
    y = (x @ w).argmax(1)
    np.savez(tmp_path / "d.npz", x_train=x[:90], y_train=y[:90], x_test=x[90:], y_test=y[90:])
    model = tmp_path / "mlp.onnx"
    model.write_bytes(zoo.mlp((6, 5, 3), seed=0).SerializeToString())
    cfg = DemoConfig(seed=1, quick=True, spice_samples=3, epochs=2, chips=3, dynamics_samples=1,
                     model=str(model), data=str(tmp_path / "d.npz"))
    out = tmp_path / "demo"
    report = run_demo(out, cfg, progress=False)
    doc = json.loads((out / "report.json").read_text())
    for k in KEYS:
        assert k in doc and k in report, k
    assert doc["spice_samples"] == 3 and doc["measurement_simulations"] == 16 * 6 and doc["seed"] == 1
    assert 0 <= doc["engine_spice_argmax_agreement"] <= 1
    assert doc["energy_per_inference_j"] > 0 and doc["macs_per_joule"] > 0 and doc["settling_time_s"] > 0
    assert doc["yield"]["naive"]["chips"] == 3
    assert doc["training"] == {"optimizer": "adam", "lr": 0.002, "schedule": "cosine", "batch_size": 32, "epochs": 2}
    for f in ("report.md", "report.html", "transfer.png", "gains.png", "accuracy.png", "spice_vs_engine.png",
              "training.png", "yield.png", "measurements.npz", "fits/measured_chip.npz", "aware.onnx",
              "naive.onnx", "chip_aware/netlist.cir", "chip_aware/inputs.inc"):
        assert (out / f).is_file(), f
    assert doc["netlist"] == str(out / "chip_aware" / "netlist.cir")
    md = (out / "report.md").read_text()
    assert "aware training 2 epochs (adam, lr 0.002, batch 32, cosine schedule)" in md
    ratio = doc["macs_per_joule"] / 7e12  # Binas et al.'s ~7 TOp/J, one op = one MAC
    assert f"{ratio:.2f}x their MACs per joule" in md and "not their 196-50-10" in md
    assert "int8: " in md and "0.2 pJ mult + 0.03 pJ add" in md  # the Horowitz constants, stated
    # the aware chip netlist runs on its own in ngspice -b (from its directory: it includes inputs.inc)
    run = subprocess.run(["ngspice", "-b", "netlist.cir"], cwd=out / "chip_aware", capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and "error" not in run.stdout.lower(), run.stdout[-2000:]


def test_demo_options_are_checked():
    for bad, msg in ((DemoConfig(dataset="cifar"), "--dataset"), (DemoConfig(seed=-1), "--seed"),
                     (DemoConfig(spice_samples=0), "--spice-samples")):
        with pytest.raises(ParameterError, match=msg):
            bad.check()


def test_demo_measurement_plan_is_sparse_where_it_can_identify_synapses():
    """Digits- and MNIST-wide banks get sparse configurations (about 10 synapses per row of the widest
    bank), narrow banks as many dense ones, networks above 20,000 synapses (the per-synapse fit's time)
    two dense ones; --quick takes a quarter of the configurations (at least 16)."""
    from compiler.pipeline import compile_model
    wide = compile_model(zoo.mlp((64, 16, 10), seed=0), "current")
    plan = DemoConfig().plan(wide)
    assert plan.density == pytest.approx(10 / 64) and plan.configs == 128 and plan.probes == 1280
    assert DemoConfig(quick=True).plan(wide).configs == 32
    mnist = DemoConfig().plan(compile_model(zoo.mlp((196, 50, 10), seed=0), "current"))
    assert mnist.density == pytest.approx(10 / 196) and mnist.configs == 128 and mnist.probes == 1280
    narrow = DemoConfig().plan(compile_model(zoo.mlp((6, 5, 3), seed=0), "current"))
    assert narrow.density == 1.0 and narrow.configs == 48  # dense, but as many configurations
    dense = DemoConfig().plan(compile_model(zoo.mlp((400, 50, 10), seed=0), "current"))
    assert dense.density == 1.0 and dense.configs == 2
