"""The current-mode softmax block: its design against ngspice's device (the slope factor it assumes),
its ideal (the primitive's, which is `circuits.ideal.softmax`) and its parameter checks."""

from __future__ import annotations

import numpy as np
import pytest

from circuits import ideal
from circuits.current import SoftmaxNormalizer
from circuits.errors import ParameterError
from circuits.opamp import SoftmaxUnit
from circuits.spice.current_cells import CellSizing
from circuits.spice.current_softmax import PAIR_SLOPE_N, DiffPairSoftmaxBlock, pair_slope_n, slope_bench, slope_n


def test_ideal_is_the_one_softmax():
    x = np.random.default_rng(0).uniform(-4, 4, (7, 5))
    want = ideal.softmax(x, (-1,))
    np.testing.assert_array_equal(SoftmaxNormalizer().ideal(x), want)
    np.testing.assert_array_equal(SoftmaxUnit().ideal(x), want)
    np.testing.assert_array_equal(DiffPairSoftmaxBlock(5, 10e-9).ideal(x), want)


def test_gate_resistor_is_one_e_fold_per_unit():
    """R·I_unit = n·U_T: one model unit of input is one e-fold of drain current."""
    block = DiffPairSoftmaxBlock(3, 10e-9)
    assert block.slope_n == pytest.approx(PAIR_SLOPE_N[10e-9])
    assert block.r_ohm * 10e-9 == pytest.approx(PAIR_SLOPE_N[10e-9] * 0.025852)
    assert pair_slope_n(5.5e-9) == pytest.approx(np.interp(np.log(5.5e-9), np.log([3e-9, 10e-9]),
                                                           [PAIR_SLOPE_N[3e-9], PAIR_SLOPE_N[10e-9]]))


def test_parameter_errors_name_the_parameter():
    with pytest.raises(ParameterError, match="size"):
        DiffPairSoftmaxBlock(0)
    with pytest.raises(ParameterError, match="input_limit"):
        DiffPairSoftmaxBlock(3, input_limit=0.0)
    with pytest.raises(ParameterError, match="amps_per_unit"):
        DiffPairSoftmaxBlock(3, amps_per_unit=1e-3)


@pytest.mark.ngspice
@pytest.mark.parametrize("tail_a", [10e-9, 100e-9])
def test_slope_factor_table_is_what_ngspice_measures(tail_a):
    """`PAIR_SLOPE_N` re-measured: ln(I_a/I_b) of two pair devices against their gate difference."""
    from sim.spice import SimJob, run_inline

    vectors = run_inline(SimJob("slope", slope_bench(CellSizing(), tail_a).render())).raise_for_error().vectors
    assert slope_n(vectors) == pytest.approx(PAIR_SLOPE_N[tail_a], rel=2e-3)
