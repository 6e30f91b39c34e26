"""Issue-11 families: each initial guess is its primitive's ideal math; each fits ngspice within 1 % FS."""

from __future__ import annotations

import json

import numpy as np
import pytest

from circuits.current import CurrentJunction, MirrorAverage, SoftmaxNormalizer, WinnerTakeAll
from circuits.opamp import ActivationMatMul, MaxSelector, SoftmaxUnit
from sim.characterize import bench_registry
from sim.characterize.benches_select import SELECT_BENCHES
from sim.characterize.cli_hooks import characterize, fit
from sim.characterize.families import family_class

RNG = np.random.default_rng(3)


def _cases():
    x4 = RNG.uniform(-1, 1, (9, 4))
    x3 = RNG.uniform(-3, 3, (9, 3))
    p2 = RNG.uniform(0, 1, (9, 2))
    p4 = RNG.uniform(0, 1, (9, 4))
    return [
        (family_class("opamp.max")(), x4, MaxSelector(window=4).ideal(x4)),
        (family_class("opamp.softmax")(), x3, SoftmaxUnit().ideal(x3)[:, 0]),
        (family_class("opamp.matmul")(), x4, ActivationMatMul(inner=2).ideal(x4[:, None, :2], x4[:, 2:, None])[:, 0, 0]),
        (family_class("current.junction")(), p2, CurrentJunction(gains=(1.0, -0.5), bias=0.2).ideal(*p2.T)),
        (family_class("current.average")(), p4, MirrorAverage(axes=(-1,), gain=0.25, window=4).ideal(p4)),
        (family_class("current.wta")(), p4, WinnerTakeAll(window=4).ideal(p4)),
        (family_class("current.softmax")(), x3, SoftmaxNormalizer().ideal(x3)[:, 0]),
    ]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0].name)
def test_initial_guess_is_the_primitive(case):
    fam, x, want = case
    np.testing.assert_allclose(fam.predict(fam.initial(), x), want, rtol=1e-12, atol=1e-12)
    assert type(fam).from_design(json.loads(json.dumps(fam.design()))) == fam
    lo, hi = fam.bounds()
    assert np.all(lo <= fam.initial()) and np.all(fam.initial() <= hi)


def test_benches_are_registered():
    assert set(SELECT_BENCHES) <= set(bench_registry.BENCHES)


@pytest.mark.ngspice
def test_new_families_fit_spice_within_1pct_fs(tmp_path):
    kinds = list(SELECT_BENCHES)
    summary = characterize(kinds, tmp_path / "data", instances=2, points=32, seed=5, workers=2, progress=False)
    assert summary["simulated"] == len(kinds) * 3
    fitted = fit(tmp_path / "data", tmp_path / "fits")
    assert {f["kind"] for f in fitted["families"]} == set(kinds)
    for f in fitted["families"]:
        assert f["rms_pct_fs"] < 1.0 and f["worst_instance_rms_pct_fs"] < 1.0, f
