"""The transistor-level two-stage Miller op-amp against its design equations, in ngspice."""

from __future__ import annotations

import numpy as np
import pytest

from circuits.errors import ParameterError
from circuits.spice.miller_opamp import PORTS, MillerOpAmp

pytestmark = pytest.mark.ngspice
AMP = MillerOpAmp()


def _run(deck_text: str, name: str) -> dict[str, np.ndarray]:
    from sim.spice import SimJob, run_inline

    return run_inline(SimJob(name, deck_text)).raise_for_error().vectors


@pytest.fixture(scope="module")
def open_loop() -> tuple[np.ndarray, np.ndarray]:
    vec = _run(AMP.open_loop_bench().render(), "miller_open_loop")
    return np.real(vec["frequency"]), vec["out"]


def test_subckt_ports_and_devices() -> None:
    sub = AMP.subckt()
    assert sub.ports == PORTS == ("inp", "inn", "out", "vdd", "vss")
    assert sum(e.letter == "M" for e in sub.elements) == 8
    with pytest.raises(ParameterError, match="c_c_f"):
        MillerOpAmp(c_c_f=0.0)


def test_dc_open_loop_gain_at_least_60_db(open_loop: tuple[np.ndarray, np.ndarray]) -> None:
    _, h = open_loop
    assert 20 * np.log10(abs(h[0])) >= 60.0


def test_gbw_within_factor_two_of_gm1_over_2pi_cc(open_loop: tuple[np.ndarray, np.ndarray]) -> None:
    f, h = open_loop
    mag = np.abs(h)
    k = int(np.argmax(mag < 1.0))
    ugf = 10 ** np.interp(0.0, -np.log10(mag[k - 1:k + 1]), np.log10(f[k - 1:k + 1]))
    assert 0.5 * AMP.gbw_hz <= ugf <= 2.0 * AMP.gbw_hz
    phase_margin = 180.0 + np.degrees(np.unwrap(np.angle(h))[k])
    assert phase_margin > 45.0


def test_unity_gain_buffer_tracks_input_over_mid_range() -> None:
    """Follower error (systematic offset + V/A) below 2 mV for inputs 0.7–1.3 V."""
    vec = _run(AMP.buffer_bench(0.7, 1.3, 0.05).render(), "miller_buffer")
    assert np.max(np.abs(vec["out"] - vec["v-sweep"])) < 2e-3
