"""Primitive library: validation at construction, ideal functions vs formulas, device bills."""

from __future__ import annotations

import numpy as np
import pytest

from circuits import PRIMITIVES, TARGETS, get_target
from circuits.crossbar import CrossbarArray
from circuits.current import SynapseArray
from circuits.errors import ParameterError
from circuits.opamp import (
    AveragingSummer, Clipper, DiffPairActivation, ElementwiseSummer, InvertingSummerArray,
    LogExpMultiplier, MaxSelector, PrecisionRectifier, SoftmaxUnit,
)

RNG = np.random.default_rng(0)


def test_registry_keys_match_kinds():
    assert all(cls.kind == kind for kind, cls in PRIMITIVES.items())
    assert set(TARGETS) == {"opamp", "current", "crossbar"}
    with pytest.raises(ParameterError, match="unknown target"):
        get_target("quantum")


def test_gemm_example_summer():
    s = InvertingSummerArray(np.array([[-0.35, 5.24]]), np.array([2.6]))
    v = RNG.uniform(-1, 1, (50, 2))
    np.testing.assert_allclose(s.ideal(v)[:, 0], -0.35 * v[:, 0] + 5.24 * v[:, 1] + 2.6)
    # one summer, one inverter for the positively weighted V2
    assert s.devices(1) == {"opamp": 2, "resistor": 2 + 1 + 1 + 2}


def test_grouped_weights():
    w = RNG.standard_normal((3, 2, 4))
    b = RNG.standard_normal((3, 2))
    x = RNG.standard_normal((5, 3, 4))
    y = InvertingSummerArray(w, b).ideal(x)
    np.testing.assert_allclose(y, np.einsum("ngi,goi->ngo", x, w) + b)


@pytest.mark.parametrize("bad", [
    lambda: InvertingSummerArray(np.array([[np.nan]])),
    lambda: InvertingSummerArray(np.ones((2, 3)), np.ones(3)),
    lambda: InvertingSummerArray(np.ones(3)),
    lambda: ElementwiseSummer(()),
    lambda: DiffPairActivation("relu"),
    lambda: SoftmaxUnit(axes=(1,)),
    lambda: MaxSelector(axes=(-1,), window=0),
    lambda: CrossbarArray(np.ones((2, 2)), tile_rows=0),
    lambda: CrossbarArray(np.ones((2, 2)), devices_per_weight=3),
    lambda: Clipper(low=float("nan")),
])
def test_invalid_parameters_rejected(bad):
    with pytest.raises(ParameterError):
        bad()


def test_nonlinear_ideals():
    x = np.linspace(-3, 3, 13, dtype=np.float32)
    np.testing.assert_allclose(PrecisionRectifier().ideal(x), np.maximum(x, 0))
    np.testing.assert_allclose(PrecisionRectifier(0.1).ideal(x), np.where(x > 0, x, 0.1 * x), rtol=1e-6)
    np.testing.assert_allclose(Clipper(-1.0, 2.0).ideal(x), np.clip(x, -1, 2))
    np.testing.assert_allclose(DiffPairActivation("sigmoid").ideal(x), 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(LogExpMultiplier().ideal(x, x[::-1]), x * x[::-1])
    sm = SoftmaxUnit((-1,)).ideal(x[None])
    np.testing.assert_allclose(sm.sum(), 1.0, rtol=1e-6)
    assert x.dtype == PrecisionRectifier().ideal(x).dtype


def test_window_reductions():
    x = RNG.standard_normal((2, 5, 3, 4))
    np.testing.assert_allclose(MaxSelector((-1,), 4).ideal(x), x.max(-1))
    np.testing.assert_allclose(AveragingSummer((-2, -1), 0.25, 12, True).ideal(x),
                               x.sum((-2, -1), keepdims=True) * 0.25)


def test_binas_transistor_count():
    """Count = 5·Σ neurons + 11·Σ weights (Binas et al. 2016) for a rectifying layer."""
    w = RNG.standard_normal((16, 64))
    syn = SynapseArray(w, None, rectify=True)
    assert syn.devices(1)["mosfet"] == 11 * w.size + 5 * 16
    np.testing.assert_allclose(syn.ideal(np.ones((1, 64))), np.maximum(np.ones((1, 64)) @ w.T, 0))


def test_crossbar_tiling():
    w = RNG.standard_normal((600, 1000))
    xb = CrossbarArray(w, np.zeros(600))
    assert xb.tile_grid() == (1, 2, 2)  # 1001 rows over 512-row tiles, 600 columns over 512
    d = xb.devices(1)
    assert d["pcm"] == 2 * 1001 * 600 and d["tile"] == 4


def test_describe_is_json_ready():
    import json

    s = InvertingSummerArray(RNG.standard_normal((20, 30)), RNG.standard_normal(20))
    doc = s.describe()
    json.dumps(doc)
    assert doc["weights"]["shape"] == [20, 30]


@pytest.mark.parametrize("into, gains, bias", [(0, (1.0, 1.0), None), (1, (1.0, -0.5), 0.25),
                                               (0, (2.0, 1.0, -1.0), np.array([0.5, -1.0, 2.0]))])
def test_weighted_sum_written_into_an_input_gives_the_same_values(into, gains, bias):
    """`ideal.weighted_sum(..., into=i)` (the engine's in-place residual add) against the plain sum."""
    from circuits import ideal
    rng = np.random.default_rng(0)
    xs = tuple(rng.standard_normal((4, 3)).astype(np.float32) for _ in gains)
    want = ideal.weighted_sum(xs, gains, bias)
    target = xs[into]
    got = ideal.weighted_sum(tuple(x.copy() if i != into else x for i, x in enumerate(xs)), gains, bias, into=into)
    assert got is target and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
