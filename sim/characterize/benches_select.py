"""Characterization benches of the issue-11 blocks (gathered with the others in `bench_registry.BENCHES`).

| kind | design | points |
|---|---|---|
| opamp.max | window 4 | uniform in the input box |
| opamp.softmax | 3 inputs, output 0 read | uniform in ±input_limit |
| opamp.matmul | inner 2 (a₀, a₁, b₀, b₁) | uniform in the input box |
| current.junction | gains (1, −0.5), bias 0.2 (a soma pair) | uniform in [0, 1] |
| current.average | window 4, gain 1/4 | uniform in [0, 1] |
| current.wta | window 4 | uniform in [0, 1] |
| current.softmax | 3 signed inputs (soma pairs), output 0 read | uniform in ±input_limit |

Op-amp blocks are mismatched by `mismatch.perturb_deck`; current-mode blocks by their own
Pelgrom draw (``mismatch_seed``), as the library's other blocks are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from circuits.current import CurrentJunction, MirrorAverage, WinnerTakeAll
from circuits.opamp import ActivationMatMul, MaxSelector, SoftmaxUnit
from circuits.spice.library import CIRCUITS
from sim.characterize.benches import SCALES, Bench, NeuronBench, OpampBench, _opamp, _uniform, alternate
from sim.characterize.families import Family, family_class

MAX_WINDOW = 4
SOFTMAX_SIZE = 3
MATMUL_INNER = 2
JUNCTION_GAINS = (1.0, -0.5)
JUNCTION_BIAS = 0.2
AVERAGE_WINDOW = 4
WTA_WINDOW = 4
CURRENT_SOFTMAX_SIZE = 3


@dataclass(frozen=True, eq=False)
class FirstOutputBench(OpampBench):
    """A multi-output op-amp block (softmax) characterized on its first output."""

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.block.read(vectors), dtype=np.float64).reshape(len(self.points), -1)[:, 0]


@dataclass(frozen=True, eq=False)
class CurrentBlockBench(NeuronBench):
    """A current-mode library block on input somas; mismatch from its own Pelgrom draw (the soma
    bench's deck and read-out, with the block's own family, primitive and input range)."""

    fam: Family
    primitive: dict[str, Any]

    def family(self) -> Family:
        return self.fam

    def design(self) -> dict[str, Any]:
        lo, hi = self.block.input_range()
        return {**super().design(), "primitive": self.primitive, "input_range": [float(lo), float(hi)]}


@dataclass(frozen=True, eq=False)
class FirstOutputCurrentBench(CurrentBlockBench):
    """A multi-output current-mode block (softmax) characterized on its first output."""

    def read(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.block.read(vectors), dtype=np.float64).reshape(len(self.points), -1)[:, 0]


def _max(n: int, rng: np.random.Generator) -> Bench:
    return _opamp("opamp.max", MaxSelector(axes=(-1,), window=MAX_WINDOW), {"window": MAX_WINDOW},
                  lambda b: family_class("opamp.max").from_design({"window": b.window}),
                  lambda b: _uniform(b, n, rng))


def _softmax(n: int, rng: np.random.Generator) -> Bench:
    from circuits.spice.blocks_select import SoftmaxBlock

    block = SoftmaxBlock(SOFTMAX_SIZE, SCALES["opamp"], name="opamp_softmax_0")
    pts = _uniform(block, n, rng)
    fam = family_class("opamp.softmax").from_design({"size": SOFTMAX_SIZE, "output": 0})
    return FirstOutputBench("opamp.softmax", block, pts, alternate(n), fam,
                            {"size": SOFTMAX_SIZE, "output": 0, "axes": list(SoftmaxUnit().axes)})


def _matmul(n: int, rng: np.random.Generator) -> Bench:
    return _opamp("opamp.matmul", ActivationMatMul(inner=MATMUL_INNER), {"inner": MATMUL_INNER},
                  lambda b: family_class("opamp.matmul").from_design({"inner": b.inner, "offset": b.offset}),
                  lambda b: _uniform(b, n, rng))


def _current(kind: str, prim: Any, described: dict[str, Any], design: dict[str, Any], n: int,
             rng: np.random.Generator) -> Bench:
    block = CIRCUITS[kind](prim, 0, SCALES["current"])
    pts = _uniform(block, n, rng)
    return CurrentBlockBench(kind, block, pts, alternate(n), family_class(kind).from_design(design), described)


def _junction(n: int, rng: np.random.Generator) -> Bench:
    d = {"gains": JUNCTION_GAINS, "bias": JUNCTION_BIAS}
    return _current("current.junction", CurrentJunction(gains=JUNCTION_GAINS, bias=JUNCTION_BIAS),
                    {"gains": list(JUNCTION_GAINS), "bias": JUNCTION_BIAS}, d, n, rng)


def _average(n: int, rng: np.random.Generator) -> Bench:
    gain = 1.0 / AVERAGE_WINDOW
    return _current("current.average", MirrorAverage(axes=(-1,), gain=gain, window=AVERAGE_WINDOW),
                    {"window": AVERAGE_WINDOW, "gain": gain}, {"window": AVERAGE_WINDOW, "gain": gain}, n, rng)


def _wta(n: int, rng: np.random.Generator) -> Bench:
    return _current("current.wta", WinnerTakeAll(axes=(-1,), window=WTA_WINDOW), {"window": WTA_WINDOW},
                    {"window": WTA_WINDOW}, n, rng)


def _current_softmax(n: int, rng: np.random.Generator) -> Bench:
    from circuits.spice.current_softmax import DiffPairSoftmaxBlock

    block = DiffPairSoftmaxBlock(CURRENT_SOFTMAX_SIZE, SCALES["current"], name="cm_softmax_0")
    design = {"size": CURRENT_SOFTMAX_SIZE, "output": 0}
    return FirstOutputCurrentBench("current.softmax", block, _uniform(block, n, rng), alternate(n),
                                   family_class("current.softmax").from_design(design),
                                   {**design, "axes": [-1]})


SELECT_BENCHES = {
    "opamp.max": _max,
    "opamp.softmax": _softmax,
    "opamp.matmul": _matmul,
    "current.junction": _junction,
    "current.average": _average,
    "current.wta": _wta,
    "current.softmax": _current_softmax,
}
