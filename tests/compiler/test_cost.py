"""`kelvin compile --report-cost`: the tile map and cost arithmetic against hand computation, the
CLI's files and its bad-input lines."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.cost import CostModel, cost_report, parse_tile, retile
from compiler.ir import PrimitiveNode
from compiler.pipeline import compile_model
from sim.cli import main

MLP = "models/examples/digits_mlp.onnx"


def gemm(w: np.ndarray, b: np.ndarray) -> onnx.ModelProto:
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", w.shape[1]])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", w.shape[0]])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def test_crossbar_layer_by_hand():
    w = np.array([[1.0, -0.5, 0.25, 0.0], [0.0, 2.0, -1.0, 1.0], [0.5, 0.5, 0.5, -0.5]], np.float32)
    b = np.array([0.5, 0.0, -1.0], np.float32)
    c = retile(compile_model(gemm(w, b), "crossbar"), "2x2")
    m = CostModel()
    rep = cost_report(c, m)
    (layer,) = rep["layers"]
    # rows = 4 inputs + bias row = 5 → 3 row tiles; 3 outputs → 2 column tiles
    assert layer["tiles"] == 6
    assert layer["utilization"] == pytest.approx(5 * 3 / (6 * 2 * 2))
    assert layer["devices"]["adc"] == 3 and layer["devices"]["dac"] == 5 * 2  # one ADC per output, after the summer
    assert layer["devices"]["opamp"] == 2 * 3 * 3 + 3  # two TIAs per column per row tile + a summer per output
    rows_w = np.concatenate([w, b[:, None]], 1).astype(np.float64)
    g_sum = sum(np.abs(r).sum() / np.abs(r).max() for r in rows_w) * 25e-6
    t = m.t_pwm_s.value
    assert layer["energy_j"]["array"] == pytest.approx(g_sum * 0.2 ** 2 * 0.5 * t)
    assert layer["energy_j"]["adc"] == pytest.approx(3 * m.e_adc_j.value)
    assert layer["energy_j"]["opamps"] == pytest.approx(21 * m.p_opamp_w.value * (t + m.t_adc_s.value))
    assert layer["latency_s"] == pytest.approx(t + m.t_adc_s.value)
    assert rep["total"]["macs"] == 12  # every cell of the layer computes, zeros included
    d = rep["digital_baseline"]
    assert d["energy_compute_j"] == pytest.approx(rep["total"]["macs"] * 0.3e-12)
    assert rep["total"]["tops_per_w"] == pytest.approx(2 * rep["total"]["macs"] / rep["total"]["energy_j"] / 1e12)


def test_opamp_blocks_settle_at_the_miller_design():
    c = compile_model(MLP, "opamp")
    m = CostModel()
    rep = cost_report(c, m)
    opamps = sum(lc["devices"].get("opamp", 0) for lc in rep["layers"])
    assert opamps > 0
    tau = 1 / (2 * math.pi * m.gbw_hz.value * 0.5)
    assert rep["total"]["energy_j"] == pytest.approx(opamps * m.p_opamp_w.value * math.log(1000) * tau, rel=1e-9)
    assert all(c["source"] for c in rep["constants"].values())


def test_time_multiplexed_targets_build_one_rectifier_per_channel():
    """On the crossbar target a ReLU after a convolution is used once per position, like the conv."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 4, 4])],
                          [numpy_helper.from_array(w, "w")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    relu = {t: next(n for n in compile_model(model, t).graph.nodes
                    if isinstance(n, PrimitiveNode) and n.kind == "opamp.rectifier") for t in ("crossbar", "opamp")}
    assert (relu["crossbar"].lanes, relu["crossbar"].reuse) == (4, 16)
    assert (relu["opamp"].lanes, relu["opamp"].reuse) == (64, 1)


def test_tile_presets_and_bad_tiles():
    assert parse_tile("ibm") == (512, 2048) and parse_tile("64x32") == (64, 32)
    for bad in ("0x4", "big", "4x"):
        with pytest.raises(Exception, match="--tile"):
            parse_tile(bad)


def test_cli_report_cost_writes_graph_and_chart(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["compile", MLP, "-o", str(out), "--target", "crossbar", "--report-cost", "--tile", "ibm", "-q"]) == 0
    text = capsys.readouterr().out
    assert "cost per inference" in text and "TOPS/W" in text
    doc = json.loads((out / "graph.json").read_text())
    assert doc["cost"]["plot"] == "cost.png" and (out / "cost.png").stat().st_size > 1000
    assert [lc["kind"] for lc in doc["cost"]["layers"]] == ["crossbar.tiles", "opamp.rectifier", "crossbar.tiles"]
    assert all(lc["placement"].startswith("analog") for lc in doc["cost"]["layers"])
    assert doc["cost"]["total"]["tiles"] == 2


def test_cost_model_override_and_bad_files(tmp_path, capsys):
    f = tmp_path / "m.json"
    f.write_text(json.dumps({"e_adc_j": {"value": 1e-12, "source": "my ADC"}, "duty": 0.25}))
    m = CostModel.from_json(f)
    assert m.e_adc_j.value == 1e-12 and m.e_adc_j.source == "my ADC" and m.duty.value == 0.25
    cases = [(json.dumps({"nope": 1}), "unknown constant 'nope'"), ("{", "not a readable JSON"),
             (json.dumps({"duty": -1}), "duty must be")]
    for text, needle in cases:
        f.write_text(text)
        assert main(["compile", MLP, "-o", str(tmp_path / "o"), "--target", "crossbar", "--report-cost",
                     "--cost-model", str(f), "-q"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    assert main(["compile", MLP, "-o", str(tmp_path / "o"), "--target", "opamp", "--tile", "ibm", "-q"]) == 1
    assert "--tile" in capsys.readouterr().err
