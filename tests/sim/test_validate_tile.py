"""``kelvin validate OUTDIR --tile K``: tile numbering, slices of a tile against the layer, the CLI.

Oracles: the layer's own weights (`circuits.ideal.dense`) for what the tiles partition and sum to;
ngspice for one tile of a small CNN compiled with ``--tile 16x8`` (7 tiles over three layers,
grouped and split over row and column tiles).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from circuits import ideal as ideal_fn
from circuits.crossbar import CrossbarArray
from compiler.ir import PrimitiveNode
from sim.cli import main
from sim.validate_tile import crossbar_tiles, tile_columns
from sim.zoo import cnn


@pytest.fixture(scope="module")
def compiled_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiles")
    onnx.save(cnn(), d / "cnn.onnx")
    assert main(["compile", str(d / "cnn.onnx"), "-o", str(d / "out"), "--target", "crossbar",
                 "--tile", "16x8", "-q"]) == 0
    return d / "out"


def _graph(outdir):
    from sim.spice_commands import compile_outdir, load_outdir

    return compile_outdir(*load_outdir(outdir)).graph


def _layers(graph):
    return [n for n in graph.topo() if isinstance(n, PrimitiveNode) and isinstance(n.primitive, CrossbarArray)]


def test_tiles_are_numbered_in_the_documented_order(compiled_dir) -> None:
    graph = _graph(compiled_dir)
    tiles = list(crossbar_tiles(graph))
    doc = json.loads((compiled_dir / "graph.json").read_text())
    assert len(tiles) == doc["summary"]["devices"]["tile"] == 7
    assert [t.index for t in tiles] == list(range(7))
    order = [n.name for n in _layers(graph)]
    keys = [(order.index(t.layer), t.group, t.row_tile, t.col_tile) for t in tiles]
    assert keys == sorted(keys)
    assert all(t.tile_rows == 16 and t.tile_cols == 8 for t in tiles)
    assert [(t.layer, t.rows, t.columns, t.bias_row) for t in tiles if t.layer == "conv2"][:2] == [
        ("conv2", (0, 16), (0, 4), False), ("conv2", (16, 19), (0, 4), True)]


def test_tile_partial_sums_add_up_to_the_layer(compiled_dir) -> None:
    """Per layer and group, the tiles' partial sums (over their rows, bias in the tile holding the
    bias row) over every column tile are W·Q_dac(x) + b of the whole layer."""
    graph = _graph(compiled_dir)
    rng = np.random.default_rng(0)
    tiles = list(crossbar_tiles(graph))
    for node in _layers(graph):
        prim = node.primitive
        w = np.asarray(prim.weights, np.float64).reshape(-1, *prim.weights.shape[-2:])
        b = np.asarray(prim.bias, np.float64).reshape(len(w), -1)
        x = rng.uniform(-1, 1, (3, w.shape[-1]))
        for g in range(len(w)):
            got = np.zeros((3, w.shape[1]))
            for t in (t for t in tiles if t.layer == node.name and t.group == g):
                outs = list(range(*t.columns))
                xs = x[:, t.rows[0]:t.rows[0] + t.n_inputs]
                got[:, outs] += np.concatenate([c.ideal_sum(xs) for c in tile_columns(prim, t, outs, None)], axis=1)
            dac = tile_columns(prim, tiles[0], [0], None)[0].dac()
            xq = dac.step_v * np.clip(np.floor(x / dac.step_v + 0.5), -dac.levels, dac.levels)
            np.testing.assert_allclose(got, ideal_fn.dense(xq, w[g], b[g]), rtol=1e-12, atol=1e-12)


@pytest.mark.ngspice
def test_validate_tile_in_ngspice(compiled_dir, tmp_path, capsys) -> None:
    report = tmp_path / "report.json"
    code = main(["validate", str(compiled_dir), "--tile", "2", "--columns", "3", "--points", "4",
                 "--workers", "1", "--report", str(report), "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "tile 2: layer conv2, group 0, row tile 1" in out
    doc = json.loads(report.read_text())
    rep = doc["tile"]
    assert doc["passed"] and rep["passed"]
    assert rep["location"]["layer"] == "conv2" and rep["location"]["bias_row"]
    assert len(rep["sampled_columns"]) == 3 and rep["inputs"] == 4
    e = rep["errors"]
    assert e["analog_max_pct_fs"] <= e["analog_budget_pct_fs"]
    assert e["bound_max_lsb"] <= e["bound_tolerance_lsb"]


def test_bad_tile_requests_are_one_line(compiled_dir, tmp_path, capsys) -> None:
    for argv, words in ((["--tile", "7"], "out of range; the compile has 7 crossbar tiles"),
                        (["--tile", "-1"], "out of range"),
                        (["--tile", "0", "--input", "x.npy"], "drop --input")):
        assert main(["validate", str(compiled_dir), *argv, "-q"]) != 0
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(err) == 1 and words in err[0], err
    onnx.save(cnn(), tmp_path / "cnn.onnx")
    assert main(["compile", str(tmp_path / "cnn.onnx"), "-o", str(tmp_path / "op"), "--target", "opamp", "-q"]) == 0
    capsys.readouterr()
    assert main(["validate", str(tmp_path / "op"), "--tile", "0", "-q"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compile with --target crossbar" in err[0], err
