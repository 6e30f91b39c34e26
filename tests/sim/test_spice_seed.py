"""Seeded whole-network ngspice runs (`sim.spice.seed`): same outputs as unseeded, fallback on failure.

Oracle: the unseeded ``.op`` of the same netlist. The seeded deck's last ``.dc`` point has every
clamp at V(knob) = 0, i.e. the unmodified circuit, so outputs agree to ngspice's tolerance
(reltol 1e-6), not just approximately.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from circuits.errors import ParameterError
from circuits.spice.netlist import clamp_source, spice_name
from compiler.netlist import emit_netlist
from compiler.pipeline import compile_model
from sim import zoo
from sim.spice import SimJob, run_inline
from sim.spice import seed as seeding
from sim.spice_commands import (
    netlist_options,
    run_network_spice,
    run_network_spice_saving,
)

SCALE = 10e-9


@pytest.fixture(scope="module")
def mlp():
    return compile_model(zoo.mlp((6, 5, 3), seed=0), "current")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("KELVIN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


X = np.random.default_rng(0).uniform(0.0, 1.0, (3, 6))


def test_clamp_source_reaches_into_instances_and_rejects_other_text():
    card = clamp_source("cl0", "xdut.xsyn_3.c1", "knob", 0.25).render()
    assert card == "Bcl0 xdut.xsyn_3.c1 0 I = V(knob)*(V(xdut.xsyn_3.c1)-(0.25))"
    for bad in ("xdut..c1", "x\n.control", "a b", ".c1"):
        with pytest.raises(ParameterError):
            clamp_source("cl0", bad, "knob", 0.0).render()


def test_only_current_mode_networks_of_somas_and_synapses_are_seeded(mlp):
    assert seeding.bench_for(emit_netlist(mlp.graph, mlp.target, netlist_options("current", SCALE))) is not None
    opamp = compile_model(zoo.mlp((6, 5, 3), seed=0), "opamp")
    assert seeding.bench_for(emit_netlist(opamp.graph, opamp.target, netlist_options("opamp", 0.25))) is None


@pytest.mark.ngspice
def test_prediction_is_within_millivolts_of_the_operating_point(mlp):
    nl = emit_netlist(mlp.graph, mlp.target, netlist_options("current", SCALE, chip_seed=0, sizing="compact"))
    tables = seeding.tables_for(nl)
    assert tables is not None
    sample = {"x": X[0]}
    op = run_inline(SimJob("plain", nl.deck(sample).render())).raise_for_error().vectors
    pred = seeding.predict(nl, tables, sample)
    err = np.array([v - float(op[k][0]) for k, v in pred.held.items()])
    assert len(pred.held) > 50 and np.abs(err).max() < 0.02  # held nodes: a few mV
    assert set(pred.held).isdisjoint(pred.loose)


@pytest.mark.ngspice
@pytest.mark.parametrize("chip_seed, sizing", [(0, "compact"), (None, "default"), (2, "minimum")])
def test_seeded_outputs_equal_unseeded(mlp, chip_seed, sizing, caplog):
    """Batched and released in one step, the minimum-size chip too (its disabled bits' drains are
    left free), with no fallback to the gradual release or to unseeded runs."""
    kw = {"workers": 2, "progress": False, "chip_seed": chip_seed, "sizing": sizing}
    caplog.set_level(logging.INFO)
    seeded = run_network_spice(mlp, {"x": X}, SCALE, seeded=True, **kw)["y"]
    assert "unseeded" not in caplog.text and "rerunning" not in caplog.text  # the seeded runs converged themselves
    plain = run_network_spice(mlp, {"x": X}, SCALE, seeded=False, **kw)["y"]
    assert np.abs(plain).max() > 0.1
    np.testing.assert_allclose(seeded, plain, rtol=1e-5, atol=1e-6 * np.abs(plain).max())


def _pulls_by_ngspice(release: seeding.Release) -> tuple[np.ndarray, np.ndarray]:
    """The held and loose pulls (S) at each sweep point, as ngspice evaluates them: each clamp pulls a
    node that a 0 V source holds towards 1 V, so the source carries g·1 V."""
    from circuits.spice.netlist import Deck, vsource
    deck = Deck("pulls")
    deck.elements += [vsource(seeding.KNOB, seeding.KNOB, "0", 0.0), vsource("h", "h", "0", 0.0),
                      vsource("l", "l", "0", 0.0),
                      clamp_source("h", "h", seeding.KNOB, 1.0, pull=release.pull(True)),
                      clamp_source("l", "l", seeding.KNOB, 1.0, pull=release.pull(False))]
    deck.dc(seeding.KNOB, *release.sweep())
    v = run_inline(SimJob("pulls", deck.render())).raise_for_error().vectors
    g_h, g_l = (np.abs(np.asarray(v[f"v{n}#branch"], float).reshape(-1)) for n in ("h", "l"))
    assert len(g_h) == release.points
    return g_h, g_l


@pytest.mark.ngspice
def test_the_gradual_release_lets_go_of_loose_nodes_then_held_ones_a_decade_at_a_time():
    """Oracle: ngspice's own evaluation of the pull expressions (`_pulls_by_ngspice`)."""
    rel = seeding.GRADUAL
    g_h, g_l = _pulls_by_ngspice(rel)
    s, g0 = rel.steps, rel.start_s
    assert rel.points == 2 * s + 2  # the last point: no pull, the unmodified circuit (to ngspice's abstol, 1 pA)
    assert g_h[-1] <= 1e-12 and g_l[-1] <= 1e-12
    np.testing.assert_allclose(g_h[: s + 1], g0, rtol=1e-6)  # held pinned through the loose phase
    np.testing.assert_allclose(g_l[:s], g0 * 10.0 ** (-rel.decades * np.arange(s)), rtol=1e-6)
    assert np.all(g_l[s:] <= 1e-12)  # loose free from the point before the held ones start to let go
    np.testing.assert_allclose(g_h[s + 1: -1], g0 * 10.0 ** (-rel.decades * np.arange(1, s + 1)), rtol=1e-6,
                               atol=1e-12)
    assert g_h[-2] < 1e-12 and g_l[s - 1] < 1e-11  # both let go from about ngspice's gmin (1 pS)
    snap_h, snap_l = _pulls_by_ngspice(seeding.SNAP)
    np.testing.assert_allclose(snap_h, [g0, 0.0], atol=1e-12)
    np.testing.assert_allclose(snap_l, [g0, 0.0], atol=1e-12)


def test_disabled_bit_drains_are_left_free(mlp):
    """Only the idle sign node is a loose clamp; a disabled bit's drain is not predicted at all (left to
    Newton from the first iteration), an enabled bit's drain is held."""
    import re
    nl = emit_netlist(mlp.graph, mlp.target, netlist_options("current", SCALE, chip_seed=0, sizing="minimum"))
    pred = seeding.predict(nl, seeding.tables_for(nl), {"x": X[0]})
    assert pred.loose and all(re.search(r"\.(ps|ns)$", k) for k in pred.loose)
    drains = [k for k in pred.held if re.search(r"\.c[124]$", k)]
    assert drains
    levels = {spice_name(r.element): abs(r.level) for r in nl.layout if r.kind == "synapse"}
    for k in drains:  # every predicted drain belongs to an enabled bit of its synapse's level
        cell, bit = k.split(".")[-2][1:], int(k[-1])
        assert levels[cell] & bit, k
    n_enabled = sum(bin(v).count("1") for v in levels.values())
    assert len(drains) == n_enabled
    # a measurement's probe decks and the gradual fallback clamp them, as loose nodes
    assert not seeding.PROBE.free_drains and not seeding.GRADUAL.free_drains and seeding.SNAP.free_drains
    probe = seeding.predict(nl, seeding.tables_for(nl), {"x": X[0]}, free_drains=False)
    assert probe.held == pred.held
    loose_drains = {k for k in probe.loose if re.search(r"\.c[124]$", k)}
    assert len(loose_drains) == 3 * len(levels) - n_enabled and set(probe.loose) - loose_drains == set(pred.loose)


@pytest.mark.ngspice
def test_a_softmax_head_is_seeded_and_batched_with_unseeded_outputs(caplog):
    """The diff-pair softmax is left unclamped (`seed.FREE_CELLS`): the batch deck still solves, to
    the unseeded operating point."""
    from tests.sim.test_current_softmax_engine import softmax_mlp
    c = compile_model(softmax_mlp(), "current")
    nl = emit_netlist(c.graph, c.target, netlist_options("current", SCALE, chip_seed=1, sizing="compact"))
    assert seeding.bench_for(nl) is not None
    x = X[:3, :4]
    kw = {"workers": 1, "progress": False, "chip_seed": 1, "sizing": "compact"}
    caplog.set_level(logging.INFO)
    seeded = run_network_spice(c, {"x": x}, SCALE, seeded=True, **kw)["y"]
    assert "unseeded" not in caplog.text
    plain = run_network_spice(c, {"x": x}, SCALE, seeded=False, **kw)["y"]
    assert np.abs(plain).max() > 0.3
    np.testing.assert_allclose(seeded, plain, rtol=1e-5, atol=1e-6)


@pytest.mark.ngspice
def test_a_failing_seeded_run_is_rerun_unseeded(mlp, monkeypatch, caplog):
    def broken(deck, nl, tables, sample, release=seeding.SNAP):  # a deck ngspice refuses: the seeded job fails
        deck.analyses = [".dc Vnosuchsource 0 1 1"]
        return deck

    plain = run_network_spice(mlp, {"x": X[:2]}, SCALE, workers=2, progress=False, seeded=False)["y"]
    monkeypatch.setattr(seeding, "seed_deck", broken)
    caplog.set_level(logging.INFO)
    got = run_network_spice(mlp, {"x": X[:2]}, SCALE, workers=2, progress=False, seeded=True)["y"]
    np.testing.assert_array_equal(got, plain)
    assert caplog.text.index("with the gradual release") < caplog.text.index("rerunning them unseeded")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # recovered: nothing to warn of


@pytest.mark.ngspice
def test_extra_saves_come_back_per_sample(mlp):
    nl = emit_netlist(mlp.graph, mlp.target, netlist_options("current", SCALE))
    soma = next(r for r in nl.layout if r.kind == "soma" and r.role == "row")
    net = next(e for e in nl.top.elements if e.name == soma.element).nodes[0]
    saves = [f"xdut.{net}", f"@m.xdut.x{soma.element}.mm2[id]"]
    outs = {}
    for seeded in (True, False):
        y, extra = run_network_spice_saving(mlp, {"x": X[:2]}, SCALE, extra_saves=saves, workers=2, progress=False,
                                            seeded=seeded)
        assert set(extra) == set(saves) and all(v.shape == (2,) and np.isfinite(v).all() for v in extra.values())
        outs[seeded] = (y["y"], extra)
    np.testing.assert_allclose(outs[True][1][saves[0]], outs[False][1][saves[0]], atol=1e-5)
    np.testing.assert_allclose(outs[True][1][saves[1]], outs[False][1][saves[1]], rtol=1e-4, atol=1e-15)
    with pytest.raises(ParameterError):
        run_network_spice_saving(mlp, {"x": X[:1]}, SCALE, extra_saves=["v(x) ; .control"], progress=False)


@pytest.mark.ngspice
def test_a_network_the_predictor_cannot_read_runs_unseeded(mlp, monkeypatch, caplog):
    def unknown(nl, tables, sample, free_drains=True):
        raise KeyError("xdut.sum_0")

    plain = run_network_spice(mlp, {"x": X[:1]}, SCALE, workers=1, progress=False, seeded=False)["y"]
    monkeypatch.setattr(seeding, "predict", unknown)
    got = run_network_spice(mlp, {"x": X[:1]}, SCALE, workers=1, progress=False, seeded=True)["y"]
    np.testing.assert_array_equal(got, plain)
    assert "no seed" in caplog.text


def test_batches_keep_every_worker_busy_and_cap_their_size():
    assert seeding.batches(0, 2) == []
    assert seeding.batches(3, 2) == [[0, 1], [2]]
    assert seeding.batches(100, 2, 12) == [list(range(i, i + 10)) for i in range(0, 100, 10)]  # 10 jobs of 10
    groups = seeding.batches(30, 2, 12)
    assert len(groups) == 4 and sum(groups, []) == list(range(30)) and max(map(len, groups)) <= 12
    assert seeding.batches(5, 8) == [[i] for i in range(5)]


def test_indexed_values_need_a_batch_and_only_current_networks_take_one(mlp):
    from circuits.spice.netlist import indexed

    assert indexed("idx", [1.0, 2.5e-9]) == "pwl(V(idx),0,1,1,2.5e-09)"
    with pytest.raises(ParameterError):
        indexed("idx", [1.0])
    opamp = compile_model(zoo.mlp((6, 5, 3), seed=0), "opamp")
    nl = emit_netlist(opamp.graph, opamp.target, netlist_options("opamp", 0.25))
    with pytest.raises(ParameterError, match="current-signal"):
        nl.batch_stimulus([{"x": X[0]}, {"x": X[1]}], "idx")


@pytest.mark.ngspice
def test_a_batch_deck_gives_each_sample_its_own_seeded_answer(mlp):
    """Oracle: one seeded deck per sample (itself equal to the unseeded ``.op``, above)."""
    nl = emit_netlist(mlp.graph, mlp.target, netlist_options("current", SCALE, chip_seed=1, sizing="compact"))
    tables = seeding.tables_for(nl)
    samples = [{"x": x} for x in X]
    deck = seeding.batch_deck(nl, tables, samples)
    got = seeding.batch_points(run_inline(SimJob("batch", deck.render())).raise_for_error().vectors, len(X))
    for sample, points in zip(samples, got):
        one = seeding.seed_deck(nl.deck(sample), nl, tables, sample)
        want = seeding.last_point(run_inline(SimJob("one", one.render())).raise_for_error().vectors)
        np.testing.assert_allclose(nl.read_outputs(points)["y"], nl.read_outputs(want)["y"], rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="points"):
        seeding.batch_points({"v": np.zeros(5)}, 3)


@pytest.mark.ngspice
def test_a_failing_batch_is_rerun_in_halves_down_to_single_samples(mlp, monkeypatch, caplog):
    plain = run_network_spice(mlp, {"x": X}, SCALE, workers=1, progress=False, seeded=False)["y"]
    real = seeding.batch_deck

    def broken(*args, **kwargs):
        deck = real(*args, **kwargs)
        deck.analyses = [".dc Vnosuchsource 0 1 1"]
        return deck

    monkeypatch.setattr(seeding, "batch_deck", broken)
    caplog.set_level(logging.INFO)
    got = run_network_spice(mlp, {"x": X}, SCALE, workers=1, progress=False, seeded=True)["y"]
    np.testing.assert_allclose(got, plain, rtol=1e-5, atol=1e-6 * np.abs(plain).max())
    assert "with the gradual release" in caplog.text  # 3 (one-step release) -> 3 (gradual) -> 1+2 -> 1+1
    assert caplog.text.count("rerunning them in halves") == 2 and "unseeded" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # every sample recovered


@pytest.mark.ngspice
def test_a_batch_the_predictor_cannot_read_runs_one_deck_per_sample(mlp, monkeypatch, caplog):
    def unknown(nl, tables, sample, free_drains=True):
        raise KeyError("xdut.sum_0")

    plain = run_network_spice(mlp, {"x": X}, SCALE, workers=1, progress=False, seeded=False)["y"]
    monkeypatch.setattr(seeding, "predict", unknown)
    got = run_network_spice(mlp, {"x": X}, SCALE, workers=1, progress=False, seeded=True)["y"]
    np.testing.assert_array_equal(got, plain)
    assert "no batch seed" in caplog.text and "no seed" in caplog.text
