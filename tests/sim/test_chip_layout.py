"""Chip draws keyed by position and the emitters' layout (no ngspice needed).

Oracles: byte equality of two emissions with the same seed; a network that only adds a layer after
the first must leave the first layer's cells, and its engine parameters, exactly as they were; the
layout must name every cell instance of the netlist once, with the device count of its kind.
"""

from __future__ import annotations

import numpy as np
import pytest

from circuits.spice.emit_current import CellRecord
from compiler.ir import PrimitiveNode
from compiler.netlist import NetlistOptions, emit_netlist
from compiler.pipeline import compile_model
from sim import zoo
from sim.chip import ChipInstance

SCALE = 10e-9
DEVICES = {"soma": 5, "synapse": 11, "readout": 2}


@pytest.fixture(scope="module")
def small():
    return compile_model(zoo.mlp((6, 5, 3), seed=0), "current")


def _netlist(compiled, seed, sizing="default"):
    return emit_netlist(compiled.graph, compiled.target,
                        NetlistOptions.for_target(compiled.target, SCALE, chip_seed=seed, sizing=sizing))


def test_same_seed_gives_the_same_bytes_and_parameters(small):
    a, b = _netlist(small, 7), _netlist(small, 7)
    assert a.deck(title="t").render().encode() == b.deck(title="t").render().encode()
    assert _netlist(small, 8).deck(title="t").render() != a.deck(title="t").render()
    pa, pb = ChipInstance.draw(small, 7, SCALE).arrays(), ChipInstance.draw(small, 7, SCALE).arrays()
    assert pa.keys() == pb.keys()
    for k in pa:
        assert pa[k].tobytes() == pb[k].tobytes(), k


def test_layout_names_every_cell_once_with_unique_keys(small):
    nl = _netlist(small, 3)
    cells = [c for c in nl.layout if isinstance(c, CellRecord)]
    instances = {e.name for e in nl.top.elements if e.letter.upper() == "X"}
    assert sorted(c.element for c in cells) == sorted(instances)
    assert len({c.key for c in cells}) == len(cells)
    assert all(len(c.dvt_v) == len(c.bf) == DEVICES[c.kind] for c in cells)
    assert sum(DEVICES[c.kind] for c in cells) == nl.devices
    by_name = {c.element: c for c in cells}
    assert all(by_name[c.pre].kind == "soma" for c in cells if c.kind != "soma")
    nominal = [c for c in _netlist(small, None).layout if isinstance(c, CellRecord)]
    assert [c.key for c in nominal] == [c.key for c in cells] and not any(c.dvt_v for c in nominal)


def test_adding_a_layer_after_leaves_the_first_layer_alone():
    base = compile_model(zoo.mlp((6, 5, 3), seed=0), "current")
    longer = compile_model(zoo.mlp((6, 5, 3, 4), seed=0), "current")
    first = next(n for n in base.graph.topo() if isinstance(n, PrimitiveNode))
    assert first.name == next(n for n in longer.graph.topo() if isinstance(n, PrimitiveNode)).name

    def cells(compiled):
        nl = _netlist(compiled, 5)
        return {c.key: (c.dvt_v, c.bf) for c in nl.layout
                if isinstance(c, CellRecord) and (c.node == first.name or c.role == "input")}

    a, b = cells(base), cells(longer)
    assert a and a == b
    la, lb = ChipInstance.draw(base, 5, SCALE).layers[first.name], ChipInstance.draw(longer, 5, SCALE).layers[first.name]
    for f in ("weights", "bias", "row_gain", "pre_log"):
        assert np.array_equal(getattr(la, f), getattr(lb, f)), f


def test_compact_sizing_threads_to_the_cells_and_the_chip(small):
    nl = _netlist(small, None, "compact")
    text = nl.deck(title="t").render()
    assert "w=1e-06 l=2e-06" in text and "w=2e-06 l=4e-06" not in text
    d, c = ChipInstance.draw(small, None, SCALE), ChipInstance.draw(small, None, SCALE, sizing="compact")
    assert c.sizing == "compact"
    for name, lay in d.layers.items():  # nominal devices: the same quantized weights, more Early drift
        assert np.allclose(lay.weights, c.layers[name].weights)
        assert np.all(np.abs(c.layers[name].pre_log) >= np.abs(lay.pre_log))
        assert np.abs(c.layers[name].soma_log) > np.abs(lay.soma_log)
