"""Whole crossbar networks in ngspice: G+/G− columns with two-TIA readouts chained at V = scale·x.

Errors are % of the output full scale FS = max |y| over the test inputs. Measured (ngspice 39,
scale 0.1 V/unit): MLP 8-6-3 max 0.03 % FS; digits 64-16-10 max 0.05 % FS, < 1 s per sample.
The residual is the op-amp macro's finite gain (A_0 = 1e5) and the rectifiers between layers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from circuits.crossbar import CrossbarArray
from circuits.data import model_file
from circuits.errors import ParameterError
from circuits.spice.emit_crossbar import column_blocks
from compiler.netlist import emit_netlist
from compiler.pipeline import compile_model
from sim import zoo
from sim.cli import main
from sim.engine import execute
from sim.spice_commands import netlist_options, run_network_spice

SCALE = 0.1  # V per model unit (sim.spice_commands.DEFAULT_SCALE["crossbar"])
DIGITS = str(model_file("examples", "digits_mlp.onnx"))


def test_columns_keep_the_network_scale_and_refuse_a_read_above_0_2_v():
    prim = CrossbarArray(np.array([[0.5, -2.0, 1.0], [0.1, 0.2, -0.3]]), np.array([0.4, -0.1]))
    for block in column_blocks(prim, SCALE):
        assert block.volts_per_unit == SCALE and block.out_volts_per_unit == pytest.approx(SCALE)
    with pytest.raises(ParameterError, match="0.2"):
        column_blocks(prim, 0.25)


def test_scale_above_read_range_is_a_clear_error():
    compiled = compile_model(zoo.mlp((8, 6, 3), seed=0), "crossbar")
    with pytest.raises(ParameterError, match="--scale"):
        emit_netlist(compiled.graph, compiled.target, netlist_options("crossbar", 0.5))


@pytest.mark.ngspice
def test_small_mlp_matches_engine_within_0_2pct_fs():
    compiled = compile_model(zoo.mlp((8, 6, 3), seed=0), "crossbar")
    x = np.random.default_rng(1).uniform(-1.0, 1.0, (8, 8)).astype(np.float32)
    want = execute(compiled.graph, {"x": x})["y"]
    got = run_network_spice(compiled, {"x": x}, SCALE, workers=2, progress=False)["y"]
    err = float(np.max(np.abs(got - want))) / float(np.max(np.abs(want))) * 100
    print(f"crossbar MLP 8-6-3: max {err:.3f} % FS")
    assert err < 0.2  # measured 0.03


@pytest.mark.ngspice
def test_digits_mlp_argmax_agrees_with_engine():
    x = np.load(model_file("examples", "digits_test.npz"))["X"][:5]
    compiled = compile_model(DIGITS, "crossbar")
    want = execute(compiled.graph, {"x": x})["logits"]
    got = run_network_spice(compiled, {"x": x}, SCALE, workers=2, progress=False)["logits"]
    err = float(np.max(np.abs(got - want))) / float(np.max(np.abs(want))) * 100
    print(f"crossbar digits 64-16-10: max {err:.3f} % FS")
    assert np.array_equal(got.argmax(1), want.argmax(1))
    assert err < 0.5  # measured 0.05


def test_compile_writes_the_crossbar_netlist(tmp_path):
    assert main(["compile", DIGITS, "-o", str(tmp_path / "c"), "--target", "crossbar", "-q"]) == 0
    doc = json.loads((tmp_path / "c" / "graph.json").read_text())
    assert doc["netlist"]["written"] is True and doc["netlist"]["scale"] == SCALE
    assert ".subckt crossbar_tiles_" in (tmp_path / "c" / "netlist.cir").read_text()


@pytest.mark.ngspice
def test_quantized_crossbar_network_matches_the_engine():
    """`--hardware quantized` on the crossbar target in ngspice: every column quantizes its rows and its
    output (8-bit DAC/ADC) at the full scales the engine calibrated, so engine and netlist agree to the
    converters' resolution (a code can flip where the analog path's ~1e-4 error meets a threshold).
    Measured on 100 inputs: digits RMS 0.26 % FS, argmax 100 %; the 4-8-3 MLP identical."""
    from sim.engine.prepare import HardwareOptions, build_program, crossbar_converters

    compiled = compile_model(zoo.mlp((4, 8, 3), seed=3), "crossbar")
    hw = HardwareOptions(modes=("quantized",))
    x = np.random.default_rng(0).uniform(-1, 1, (64, 4)).astype(np.float32)
    conv = crossbar_converters(compiled, hw, {"x": x})
    assert set(conv) == {"fc0", "y"} and all(c[0] == 8 and c[2] == 8 for c in conv.values())
    engine = build_program(compiled, hw).run({"x": x}, rng=np.random.default_rng(0))["y"][:4].astype(np.float64)
    spice = run_network_spice(compiled, {"x": x[:4]}, SCALE, workers=2, progress=False, converters=conv)["y"]
    fs = np.abs(engine).max()
    assert np.abs(spice - engine).max() <= 1.5 * conv["y"][3] / 127 + 1e-3 * fs  # within about one ADC step
    analog = run_network_spice(compiled, {"x": x[:4]}, SCALE, workers=2, progress=False)["y"]
    assert np.abs(analog - spice).max() > 1e-4 * fs  # the converters are in the netlist


@pytest.mark.ngspice
def test_row_tiled_layers_add_partial_sums_in_an_op_amp_summer(tmp_path, capsys):
    """`kelvin compile --tile 24x8`: fc1's 65 rows (64 inputs + bias) become three row tiles per column, each a column block giving its partial sum, added by a unit-gain summer; ngspice matches the
    engine (measured 0.04 % FS max on 6 inputs), and validate rebuilds the same tiled graph."""
    out = tmp_path / "t"
    assert main(["compile", DIGITS, "-o", str(out), "--target", "crossbar", "--tile", "24x8", "-q"]) == 0
    assert json.loads((out / "kelvin.json").read_text())["tile"] == "24x8"
    text = (out / "netlist.cir").read_text()
    assert text.count("\nXpsum") == 16  # one summer per fc1 column; logits (17 rows) fits one tile
    from sim.spice_commands import compile_outdir, load_outdir

    compiled = compile_outdir(*load_outdir(out))
    assert {n.primitive.tile_rows for n in compiled.graph.nodes if isinstance(getattr(n, "primitive", None),
                                                                              CrossbarArray)} == {24}
    x = np.random.default_rng(2).uniform(0, 1, (3, 64)).astype(np.float32)
    ideal = execute(compiled.graph, {"x": x})[compiled.graph.outputs[0]]
    spice = run_network_spice(compiled, {"x": x}, SCALE, workers=2, progress=False)[compiled.graph.outputs[0]]
    assert np.abs(spice - ideal).max() < 0.002 * np.abs(ideal).max()
