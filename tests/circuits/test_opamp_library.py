"""The op-amp circuit registry: every kind builds a block from its primitive and validates like `kelvin validate`."""

from __future__ import annotations

import numpy as np
import pytest

from circuits.base import Primitive
from circuits.errors import UnsupportedError
from circuits.opamp import (
    AntilogAmp, AveragingSummer, Clipper, DiffPairActivation, ElementwiseSummer, InvertingSummerArray, LogAmp,
    LogExpDivider, LogExpMultiplier, PrecisionRectifier,
)
from circuits.spice.library import CIRCUITS, block_for, register

RNG = np.random.default_rng(3)
PRIMITIVES = [
    InvertingSummerArray(RNG.normal(size=(4, 5)), RNG.normal(size=4)),
    ElementwiseSummer((1.0, -2.0, np.array([0.5, 3.0])), 0.3),
    AveragingSummer((-1,), 0.25, 4),
    PrecisionRectifier(0.1),
    Clipper(0.0, 6.0),
    DiffPairActivation("tanh"),
    LogAmp(),
    AntilogAmp(),
    LogExpMultiplier(),
    LogExpDivider(),
]


class _Uncircuited(Primitive):
    """A primitive kind with no circuit (every real op-amp kind has one since issue 11)."""

    kind = "opamp.uncircuited"


def test_every_opamp_kind_is_registered() -> None:
    assert {p.kind for p in PRIMITIVES} <= set(CIRCUITS)
    with pytest.raises(UnsupportedError, match="opamp.summer"):
        block_for(_Uncircuited(), 0, 1.0)
    with pytest.raises(Exception, match="already registered"):
        register("opamp.summer")(lambda p, i, s: None)


def test_summer_factory_takes_the_indexed_row() -> None:
    prim = PRIMITIVES[0]
    block = block_for(prim, 2, 0.5)
    assert block.weights == tuple(prim.weights[2]) and block.bias == prim.bias[2]
    assert block.name == "opamp_summer_2" and block.volts_per_unit == 0.5


@pytest.mark.ngspice
@pytest.mark.parametrize("prim", PRIMITIVES, ids=lambda p: p.kind)
def test_block_validates_within_its_tolerance(prim) -> None:
    """Random test points of the block's range, one .dc sweep, error in % of full scale."""
    from sim.spice import SimJob, run_inline

    block = block_for(prim, 1, 1.0)
    points = block.test_points(25, np.random.default_rng(0))
    vectors = run_inline(SimJob(block.name, block.dc_bench(points).render())).raise_for_error().vectors
    err = np.max(np.abs(block.read(vectors) - block.ideal(points))) / block.full_scale() * 100
    assert err < block.tolerance_pct_fs


def test_integrator_and_differentiator_primitives_match_their_circuits():
    """The time-domain primitives' ideal functions, and their blocks validated in ngspice."""
    import numpy as np

    from circuits.opamp import Differentiator, Integrator
    from circuits.spice.library import block_for
    from sim.spice import SimJob, run_inline

    t = np.arange(101) * 1e-5
    integ = Integrator(tau_s=1e-3, y0=0.5, dt_s=1e-5)
    np.testing.assert_allclose(integ.ideal(np.ones_like(t)), 0.5 - t / 1e-3, atol=1e-12)
    diff = Differentiator(tau_s=1e-3, dt_s=1e-5)
    np.testing.assert_allclose(diff.ideal(200.0 * t), -0.2 * np.ones_like(t), atol=1e-9)
    for prim in (integ, diff):
        block = block_for(prim, 0, 1.0)
        points = block.test_points(5, np.random.default_rng(0))
        result = run_inline(SimJob(prim.kind, block.dc_bench(points).render(), 120))
        assert result.ok, result.error
        err = np.max(np.abs(block.read(result.vectors).ravel() - block.ideal(points).ravel()))
        assert err / block.full_scale() * 100 < block.tolerance_pct_fs
