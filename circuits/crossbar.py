"""Resistive / PCM crossbar tiles after IBM's analog in-memory chip (ideal math and device bill).

Each weight is a differential pair of conductances (G+, G-), inputs arrive through DACs
(pulse-width modulated), column currents are integrated and digitised by ADCs. A layer
larger than one tile is split over a grid of tiles whose partial sums are added.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar


from circuits.base import LinearBank
from circuits.errors import ParameterError


@dataclass(frozen=True, slots=True, eq=False)
class CrossbarArray(LinearBank):
    """A layer mapped onto crossbar tiles: y = W·x + b (bias on an extra row driven at full scale)."""

    kind: ClassVar[str] = "crossbar.tiles"
    tile_rows: int = 512
    tile_cols: int = 512
    devices_per_weight: int = 2
    g_max_us: float = 25.0

    def __post_init__(self) -> None:
        LinearBank.__post_init__(self)
        if self.tile_rows < 1 or self.tile_cols < 1:
            raise ParameterError(f"tile size must be positive, got {self.tile_rows}x{self.tile_cols}")
        if self.devices_per_weight not in (2, 4):
            raise ParameterError(f"devices_per_weight: 2 or 4, got {self.devices_per_weight}")
        if not self.g_max_us > 0:
            raise ParameterError(f"g_max_us: must be > 0, got {self.g_max_us}")

    def tile_grid(self) -> tuple[int, int, int]:
        """(groups, row tiles, column tiles) this layer occupies."""
        groups = self.weights.shape[0] if self.weights.ndim == 3 else 1
        out_f, in_f = self.weights.shape[-2:]
        rows = in_f + (self.bias is not None)
        return groups, math.ceil(rows / self.tile_rows), math.ceil(out_f / self.tile_cols)

    def devices(self, lanes: int) -> Counter[str]:
        """As the netlist builds it (`circuits.spice.emit_crossbar`): the tiles' PCM devices, one row
        driver (DAC) per row per column tile, per output column and row tile a two-TIA readout (2
        op-amps, 3 resistors), a unit-gain op-amp summer per output when the rows span several tiles
        (1 op-amp, rt + 1 resistors), and one ADC per output after it."""
        groups, rt, ct = self.tile_grid()
        out_f, in_f = self.weights.shape[-2:]
        rows = in_f + (self.bias is not None)
        summers = groups * out_f if rt > 1 else 0
        return Counter(
            tile=groups * rt * ct,
            pcm=groups * self.devices_per_weight * rows * out_f,
            dac=groups * rows * ct,
            adc=groups * out_f,
            opamp=2 * groups * out_f * rt + summers,
            resistor=3 * groups * out_f * rt + (rt + 1) * summers,
        )
