"""Issue 11 blocks against their primitives' ideal functions in ngspice (one .dc sweep each).

Each block states its tolerance (% of its output full scale); the test holds it to that and
prints nothing. Random points over the block's own input range, seeded.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from circuits.current import CurrentJunction, MirrorAverage, SoftmaxNormalizer, WinnerTakeAll
from circuits.errors import ParameterError
from circuits.opamp import ActivationMatMul, LogExpDivider, LogExpMultiplier, MaxSelector, SoftmaxUnit
from circuits.spice.blocks_products import MatMulBlock
from circuits.spice.blocks_select import MaxSelectorBlock, SoftmaxBlock
from circuits.spice.library import CIRCUITS


def _errors_pct_fs(block, points: np.ndarray, name: str) -> tuple[float, float]:
    from sim.spice import SimJob, run_inline

    vectors = run_inline(SimJob(name, block.dc_bench(points).render())).raise_for_error().vectors
    got = np.asarray(block.read(vectors), dtype=np.float64).reshape(len(points), -1)
    want = np.asarray(block.ideal(points), dtype=np.float64).reshape(len(points), -1)
    err = (got - want) / block.full_scale() * 100
    return float(np.max(np.abs(err))), float(np.sqrt(np.mean(err**2)))


def test_ideal_comes_from_the_primitive() -> None:
    pts = np.random.default_rng(0).uniform(-1, 1, (5, 3))
    np.testing.assert_array_equal(MaxSelectorBlock(3).ideal(pts), MaxSelector(window=3).ideal(pts))
    np.testing.assert_array_equal(SoftmaxBlock(3).ideal(pts), SoftmaxUnit().ideal(pts))
    ab = np.random.default_rng(1).uniform(-1, 1, (4, 6))
    np.testing.assert_allclose(MatMulBlock(3).ideal(ab), np.sum(ab[:, :3] * ab[:, 3:], axis=1))


def test_divider_takes_every_sign_combination() -> None:
    """The library's divider is four-quadrant: its test points cover all four sign quadrants."""
    block = CIRCUITS["opamp.divider"](LogExpDivider(), 0, 0.25)
    pts = block.test_points(200, np.random.default_rng(0))
    quadrants = {(bool(a > 0), bool(b > 0)) for a, b in pts}
    assert len(quadrants) == 4 and np.min(np.abs(pts[:, 1])) >= block.b_min
    np.testing.assert_allclose(block.ideal(pts), pts[:, 0] / pts[:, 1])


def test_parameter_errors_name_the_parameter() -> None:
    with pytest.raises(ParameterError, match="window"):
        MaxSelectorBlock(0)
    with pytest.raises(ParameterError, match="size"):
        SoftmaxBlock(0)
    with pytest.raises(ParameterError, match="input_limit"):
        SoftmaxBlock(3, volts_per_unit=1.0, input_limit=20.0)


BLOCKS = {
    "max4": lambda: CIRCUITS["opamp.max"](MaxSelector(axes=(-1,), window=4), 0, 0.25),
    "softmax4": lambda: CIRCUITS["opamp.softmax"](SoftmaxUnit(), 0, 0.25),
    "softmax10_wide": lambda: SoftmaxBlock(10, 0.25, input_limit=8.0),
    "matmul3": lambda: CIRCUITS["opamp.matmul"](ActivationMatMul(inner=3), 0, 0.25),
    "divider4q": lambda: CIRCUITS["opamp.divider"](LogExpDivider(), 0, 0.25),
    "multiplier4q": lambda: CIRCUITS["opamp.multiplier"](LogExpMultiplier(), 0, 0.25),
    "junction_signed": lambda: CIRCUITS["current.junction"](CurrentJunction(gains=(1.0, -0.5), bias=0.2), 0, 10e-9),
    "average4": lambda: CIRCUITS["current.average"](MirrorAverage(axes=(-1,), gain=0.25, window=4), 0, 10e-9),
    "wta4": lambda: CIRCUITS["current.wta"](WinnerTakeAll(axes=(-1,), window=4), 0, 10e-9),
    "softmax4_current": lambda: CIRCUITS["current.softmax"](SoftmaxNormalizer(), 0, 10e-9),
}


@pytest.mark.ngspice
@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_within_its_tolerance(name: str) -> None:
    block = BLOCKS[name]()
    pts = block.test_points(25, np.random.default_rng(11))
    worst, _ = _errors_pct_fs(block, pts, name)
    assert worst < block.tolerance_pct_fs, (name, worst)


def _built(block) -> Counter:
    """Devices of the block's own subcircuit (op-amp macro instances count as op-amps)."""
    letters = {"R": "resistor", "D": "diode", "Q": "bjt", "C": "capacitor", "M": "mosfet"}
    count: Counter = Counter()
    own = block.subckts()[-1]
    for e in own.elements:
        letter = e.letter.upper()
        if letter == "X" and e.value == "opamp_macro":
            count["opamp"] += 1
        elif letter in letters:
            count[letters[letter]] += 1
    return count


@pytest.mark.parametrize("name", [n for n in BLOCKS if n != "softmax10_wide"])
def test_declared_bill_matches_the_circuit(name: str) -> None:
    """The primitive's device bill (compile summaries) counts what the block builds."""
    prims = {"max4": MaxSelector(window=4), "softmax4": SoftmaxUnit(), "matmul3": ActivationMatMul(inner=3),
             "divider4q": LogExpDivider(), "multiplier4q": LogExpMultiplier(),
             "junction_signed": CurrentJunction(gains=(1.0, -0.5), bias=0.2),
             "average4": MirrorAverage(axes=(-1,), gain=0.25, window=4), "wta4": WinnerTakeAll(axes=(-1,), window=4),
             "softmax4_current": SoftmaxNormalizer()}
    block = BLOCKS[name]()
    lanes = block.n_outputs() if name.startswith("softmax") else 1
    assert _built(block) == +prims[name].devices(lanes)
