"""From a compiled model and the user's hardware choice to a ready `Program`.

`HardwareOptions` is what ``kelvin run/train --hardware …`` and `sim.backend.prepare` accept;
`build_program` checks it against the target (one clear error per bad option), draws the chip
when asked and stacks the hardware models in the order given.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from circuits.errors import InputError, ParameterError, UnsupportedError
from compiler.ir import PrimitiveNode
from compiler.samples import samples_verdict
from compiler.pipeline import Compiled
from sim.engine.hardware import (
    CONVERTER_MIN_BITS, HardwareModel, IrDrop, Noise, Pcm, Population, Quantized, Stack, check_bits,
    check_target_modes, mode_list,
)
from sim.engine.maps import NodeMaps, Rectify, chain
from sim.engine.program import Program

SPICE_MODES = frozenset({"ideal", "quantized", "chip", "early"})
TRAINING_ONLY_WITH_CHIP = ("noise", "population")
"""Parameter maps that act on a chip's nominal weights in training (`_trainable_chip_program`) but
have nothing to act on in its inference model, which holds the netlist's realized weights."""


@dataclass(frozen=True)
class HardwareOptions:
    """The hardware a model runs on in the engine (see `sim.engine.hardware`)."""

    modes: tuple[str, ...] = ("ideal",)
    noise: float = 1e-3
    chip_seed: int | None = None
    fits: str | None = None
    pcm_time_s: float = 1.0
    drift_compensation: bool = True
    wire_ohm: float | None = None
    weight_bits: int | None = None
    dac_bits: int | None = 8
    adc_bits: int | None = 8
    sizing: str = "default"
    scale: float | None = None
    seed: int = 0

    @classmethod
    def parse(cls, hardware: str | None = None, **kw: Any) -> HardwareOptions:
        """From CLI-style values: ``hardware`` "quantized,chip"; a ``chip_seed`` alone means chip."""
        modes = mode_list(hardware) if hardware else (["chip"] if kw.get("chip_seed") is not None else ["ideal"])
        clean = {k: v for k, v in kw.items() if v is not None or k in ("weight_bits",)}
        opts = cls(modes=tuple(modes), **clean)
        opts.check()
        return opts

    def check(self) -> None:
        if isinstance(self.modes, str) or not all(isinstance(m, str) for m in self.modes):
            raise ParameterError(f"hardware modes: a tuple of names such as ('quantized',), got {self.modes!r}")
        for name in ("noise", "pcm_time_s"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), (int, float)):
                raise ParameterError(f"{name}: a number, got {getattr(self, name)!r}")
        if "chip" in self.modes and self.chip_seed is None:
            raise ParameterError("--hardware chip needs --chip-seed N (which chip instance)")
        for name in ("chip_seed", "seed"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0):
                raise ParameterError(f"--{name.replace('_', '-')}: a non-negative integer, got {value!r}")
        if self.fits is not None and not isinstance(self.fits, (str, os.PathLike)):
            raise ParameterError(f"--fits: a directory path, got {self.fits!r}")
        if self.scale is not None and (isinstance(self.scale, bool) or not isinstance(self.scale, numbers.Real)
                                       or not (math.isfinite(self.scale) and self.scale > 0)):
            raise ParameterError(f"--scale: amperes per model unit, a positive number, got {self.scale!r}")
        if not (math.isfinite(self.pcm_time_s) and self.pcm_time_s >= 0):
            raise ParameterError(f"--pcm-time: seconds after programming, ≥ 0, got {self.pcm_time_s}")
        if not (math.isfinite(self.noise) and 0 <= self.noise <= 1):
            raise ParameterError(f"--noise: a relative standard deviation in [0, 1] (0.001 is 0.1 %), got {self.noise}")
        for n in ("weight_bits", "dac_bits", "adc_bits"):
            check_bits(f"--{n.replace('_', '-')}", getattr(self, n), 1 if n == "weight_bits" else CONVERTER_MIN_BITS)
        if "irdrop" in self.modes and self.wire_ohm is None:
            raise ParameterError("--hardware irdrop needs --wire-ohm R (row and column wire resistance per cell, ohms)")
        if self.wire_ohm is not None and not (math.isfinite(self.wire_ohm) and self.wire_ohm >= 0):
            raise ParameterError(f"--wire-ohm: wire resistance per cell, ≥ 0 Ω, got {self.wire_ohm}")
        if "fitted" in self.modes and not self.fits:
            raise ParameterError("--hardware fitted needs --fits DIR (a directory written by `kelvin fit`)")
        if "early" in self.modes:
            if not {"quantized", "chip", "fitted"} & set(self.modes):
                raise ParameterError("--hardware early drifts the programmed synapse levels: stack it on quantized, chip "
                                     "or a measured chip (fitted, --fits from `kelvin fit-chip`), e.g. chip,early")
            if extra := [m for m in self.modes if m in TRAINING_ONLY_WITH_CHIP]:
                raise ParameterError(f"--hardware {','.join(self.modes)}: early runs the programmed banks as they are, "
                                     f"which {' and '.join(extra)} would not change; drop {' and '.join(extra)}")


class _RectifyInputs(HardwareModel):
    """Current-mode input somas: inputs are currents, max(0, x)."""

    name = "inputs"

    def input_maps(self, program, name):
        return NodeMaps(pre=(Rectify(),))


def hardware_models(compiled: Compiled, opts: HardwareOptions) -> list[HardwareModel]:
    """The stack for ``opts`` on ``compiled``'s target (chip handled by `build_program`)."""
    from circuits.spice.current_cells import CellSizing
    target = compiled.target.name
    check_target_modes(opts.modes, target)
    out: list[HardwareModel] = []
    sizing = CellSizing.preset(opts.sizing) if target == "current" else None
    for m in opts.modes:
        if m == "quantized":
            if target == "opamp" and opts.weight_bits is None:
                raise ParameterError("--hardware quantized on the op-amp target rounds its resistor ratios to "
                                     "--weight-bits B; without it they are exact, the same as ideal: give "
                                     "--weight-bits or use --hardware ideal")
            if "chip" in opts.modes:
                continue  # a chip's synapses are already programmed with the levels
            out.append(Quantized(target, w_unit=sizing.w_unit if sizing else 0.25, weight_bits=opts.weight_bits,
                                 dac_bits=opts.dac_bits, adc_bits=opts.adc_bits))
        elif m == "noise":
            out.append(Noise(opts.noise))
        elif m == "population":
            assert sizing is not None
            out.append(Population(sizing.report()["sigma_branch_rel"]))
        elif m == "pcm":
            out.append(Pcm(opts.pcm_time_s, opts.drift_compensation, opts.seed))
        elif m == "irdrop":
            assert opts.wire_ohm is not None
            out.append(IrDrop(opts.wire_ohm))
        elif m == "fitted":
            if _measured(opts):
                if "chip" in opts.modes:
                    raise ParameterError("--hardware fitted with a measured chip (--fits DIR from `kelvin "
                                         "fit-chip`) is that chip: drop 'chip'")
                out.append(_RectifyInputs())
            else:
                out.append(_fitted(compiled, opts, sizing))
        elif m == "chip":
            out.append(_RectifyInputs())
    return out


def _measured(opts: HardwareOptions) -> bool:
    """--fits names a measured chip (`kelvin fit-chip`) rather than characterization fits (`kelvin fit`)."""
    from sim.measure.fit import is_measured_chip
    return bool(opts.fits) and is_measured_chip(opts.fits)


def _fitted(compiled: Compiled, opts: HardwareOptions, sizing) -> HardwareModel:
    """The fits in ``opts.fits`` for this model's primitives (sampled as a chip with --chip-seed)."""
    from sim.engine.fitted import ADAPTED, Fitted, load_fits
    fits = load_fits(opts.fits)
    kinds = {n.primitive.kind for n in compiled.graph.nodes if isinstance(n, PrimitiveNode)}
    wanted = {ADAPTED[k] for k in kinds if k in ADAPTED}
    if not wanted & set(fits):
        raise InputError(f"--fits {opts.fits}: no fit for this model's primitives ({', '.join(sorted(kinds))}); "
                         f"it needs one of the families {', '.join(sorted(wanted)) or '(none adapted)'}")
    seed = opts.chip_seed if "chip" not in opts.modes else None
    return Fitted(fits, w_unit=sizing.w_unit if sizing else 0.25, chip_seed=seed)


class _ChipModel(HardwareModel):
    """Trainable chip: each synapse bank's nominal weights through its `ChipWeights` map."""

    name = "chip"

    def __init__(self, tables, w_unit: float) -> None:
        self.tables, self.w_unit = tables, w_unit

    def node_maps(self, program, step):
        from sim.engine.chip_map import ChipWeights
        from sim.engine.hardware import BinasLevels
        t = self.tables.get(step.node.name)
        if t is None or not step.params:
            return NodeMaps()
        return NodeMaps(wmap=(BinasLevels(self.w_unit), ChipWeights(t, self.w_unit)))


def _trainable_chip_program(compiled: Compiled, opts: HardwareOptions, models: list, dtype) -> Program:
    """The chip as `ChipInstance.engine_graph(early=False)` with the nominal weights as parameters."""
    from sim.chip import ChipInstance
    from sim.engine.chip_map import chip_tables
    from sim.spice_commands import default_scale
    scale = opts.scale or default_scale(compiled.target.name)
    inst = ChipInstance.draw(compiled, opts.chip_seed, scale, sizing=opts.sizing)
    tables = chip_tables(compiled, opts.chip_seed, scale, opts.sizing)
    return _table_program(compiled, inst.engine_graph(early=False), tables, opts, models, dtype)


def _measured_chip_program(compiled: Compiled, opts: HardwareOptions, models: list, dtype,
                           trainable: bool = True) -> Program:
    """A chip fitted from measurements (`sim.measure`): its tables and read-outs on the nominal layout.
    With ``early`` (inference only) the mirrors' Early drift, which the fit removed from the readings,
    is added back on the programmed levels, as ``chip,early`` does for a draw (`_with_drift`)."""
    from circuits.current import SynapseArray
    from compiler.ir import PrimitiveNode as Node
    from sim.chip import ChipInstance
    from sim.measure.fit import MeasuredChip
    from sim.spice_commands import default_scale
    chip = MeasuredChip.load(opts.fits)
    scale, w_unit = _measured_setting(chip, opts)
    graph = ChipInstance.draw(compiled, None, scale or default_scale(compiled.target.name),
                              sizing=opts.sizing).engine_graph(early=False)
    banks = {n.name: n.primitive.weights.shape for n in compiled.graph.nodes
             if isinstance(n, Node) and isinstance(n.primitive, SynapseArray)}
    for name, fit in chip.banks.items():
        if banks.get(name) != (fit.out, fit.inputs):
            raise InputError(f"--fits {opts.fits}: bank {name!r} ({fit.out}x{fit.inputs}) does not match the model "
                             f"({'no such bank' if name not in banks else 'x'.join(map(str, banks[name]))})")
    missing = sorted(set(banks) - set(chip.banks))
    if missing:
        raise InputError(f"--fits {opts.fits}: no measurement of bank(s) {', '.join(missing)} of this model")
    if other := sorted(set(chip.readouts) - set(compiled.graph.outputs)):
        raise InputError(f"--fits {opts.fits}: a read-out of {other[0]!r}, which is not an output of this model "
                         f"({', '.join(compiled.graph.outputs)})")
    for node in graph.nodes:
        if isinstance(node, Node) and node.outputs[0] in chip.readouts and node.name not in banks:
            m = chip.readouts[node.outputs[0]]
            if m.shape != node.primitive.weights.shape:
                raise InputError(f"--fits {opts.fits}: read-out of {node.outputs[0]!r} is {m.shape}, the model's "
                                 f"{node.primitive.weights.shape}")
            node.primitive = node.primitive.with_parameters(weights=m.astype(np.float32))
    _check_sides(chip, graph, opts.fits)
    program = _table_program(compiled, graph, chip.tables(), opts, models, dtype, w_unit)
    if trainable or "early" not in opts.modes:
        return program
    slopes = chip.meta.get("early_slopes")
    if slopes is None:
        raise InputError(f"--fits {opts.fits}: this measured chip states no Early slopes (it was fitted without "
                         "early_slopes or a Kelvin sizing), so --hardware early has nothing to add; drop early")
    from sim.chip import EarlySlopes
    return _with_drift(program, set(chip.banks), set(chip.readouts), EarlySlopes(*map(float, slopes)), dtype)


def _measured_setting(chip, opts: HardwareOptions) -> tuple[float | None, float | None]:
    """The measured chip's own scale (A per model unit) and level step, which its fitted gains are
    relative to; a --sizing or --scale that contradicts the measurement is refused, not ignored."""
    rec = chip.meta
    sizing, scale = rec.get("sizing"), rec.get("scale")
    if sizing is not None and sizing != opts.sizing:
        raise InputError(f"--fits {opts.fits}: that chip was measured at --sizing {sizing}; give --sizing {sizing} "
                         f"(got {opts.sizing})")
    if opts.scale is not None and scale is not None and not math.isclose(opts.scale, float(scale), rel_tol=1e-9):
        raise InputError(f"--fits {opts.fits}: that chip was measured at --scale {float(scale):g} A per unit; drop "
                         f"--scale or give that value (got {opts.scale:g})")
    if opts.scale is not None:
        scale = opts.scale
    w_unit = rec.get("w_unit")
    return (None if scale is None else float(scale)), (None if w_unit is None else float(w_unit))


def _check_sides(chip, graph, fits: str | None) -> None:
    """Each measured bank's somas and input lines are the ones this model's chip has: one soma per
    output of a rectified bank, two of a signed one, and an input line per soma of what feeds it."""
    from circuits.current import SynapseArray
    from compiler.ir import PrimitiveNode as Node
    for node in graph.nodes:
        fit = chip.banks.get(node.name) if isinstance(node, Node) else None
        if fit is None or not isinstance(node.primitive, SynapseArray):
            continue
        have = (fit.out * fit.row_sides, fit.inputs * fit.col_sides)
        if have != node.primitive.weights.shape:
            raise InputError(f"--fits {fits}: bank {node.name!r} was measured with {have[0]} somas and {have[1]} "
                             f"input lines; this model's chip has {node.primitive.weights.shape[0]} and "
                             f"{node.primitive.weights.shape[1]} (one soma per output of a rectified bank, two of "
                             "a signed one)")


def _with_drift(program: Program, banks: set[str], readouts: set[str], slopes, dtype) -> Program:
    """Inference: ``program``'s banks as programmed (through their deterministic weight maps) in
    `InstanceSynapseArray`s that carry the mirrors' nominal Early drift, and its read-outs likewise."""
    from circuits.current import SynapseArray
    from compiler.ir import PrimitiveNode as Node
    graph = program.graph.copy()
    effective = {}
    for step in program.primitive_steps():
        if step.node.name in banks:
            p = {fld: np.asarray(program.params[key], np.float64) for fld, key in step.params}
            effective[step.node.name] = chain(step.maps.wmap, p, None, False)[0]
    for node in graph.nodes:
        if not (isinstance(node, Node) and isinstance(node.primitive, SynapseArray)):
            continue
        if node.name in effective:
            w = np.asarray(effective[node.name]["weights"], np.float64)
            b = effective[node.name].get("bias")
            b = None if b is None else np.asarray(b, np.float64)
            node.primitive = slopes.bank(w, b, node.inputs[0] in graph.inputs)
        elif node.outputs[0] in readouts:
            node.primitive = slopes.readout(np.asarray(node.primitive.weights, np.float64))
    return Program(graph, dtype=dtype, hardware=_RectifyInputs())


def _table_program(compiled: Compiled, graph, tables, opts: HardwareOptions, models: list, dtype,
                   w_unit: float | None = None) -> Program:
    """``graph`` with every table bank's nominal weights as the parameters, mapped through its table
    (levels of ``w_unit``, default the sizing's)."""
    from circuits.spice.current_cells import CellSizing
    frozen = frozenset(n.name for n in graph.nodes if isinstance(n, PrimitiveNode) and n.name not in tables)
    stack = Stack(tuple(models) + (_ChipModel(tables, w_unit or CellSizing.preset(opts.sizing).w_unit),))
    program = Program(graph, dtype=dtype, frozen=frozen)
    for node in compiled.graph.nodes:  # the trainable parameters are the nominal ones
        if node.name in tables:
            nominal = dict(node.primitive.parameters())
            if f"{node.name}.bias" in program.params and "bias" not in nominal:
                # a bias-free layer: the chip realizes a zero bias, which `ChipWeights` keeps at zero
                nominal["bias"] = np.zeros(node.primitive.weights.shape[:-1])
            for fld, value in nominal.items():
                program.params[f"{node.name}.{fld}"] = np.array(value, dtype=program.dtype)
    program.bind(stack)
    return program


def build_program(compiled: Compiled, opts: HardwareOptions | None = None, *, dtype: Any = np.float32,
                  trainable: bool = False) -> Program:
    """A `Program` computing what ``opts``' hardware computes for ``compiled``. ``trainable`` asks for a
    differentiable chip model (the nominal weights through the chip's mismatch, `sim.engine.chip_map`)
    instead of the inference one (the realized weights folded into each bank). ``early`` adds the
    mirrors' Early-effect drift to the programmed levels of ``quantized`` (the nominal chip), ``chip``
    or a measured chip; it has no gradient, so it is inference only."""
    if not isinstance(compiled, Compiled):
        raise ParameterError(f"compiled: a compiled model (compiler.pipeline.compile_model), got {type(compiled).__name__}")
    opts = opts or HardwareOptions()
    if not isinstance(opts, HardwareOptions):
        raise ParameterError(f"hardware: a HardwareOptions (or HardwareOptions.parse('quantized', ...)), got "
                             f"{type(opts).__name__}")
    opts.check()  # a constructed object gets the checks the parsed one does (chip without a seed, noise > 1)
    models = hardware_models(compiled, opts)
    graph = compiled.graph
    early = "early" in opts.modes
    if early and trainable:
        raise ParameterError("--hardware early: the mirrors' Early drift has no gradient here; train with chip (or "
                             "quantized, or a measured chip) and score with --eval-hardware …,early")
    if "chip" in opts.modes and trainable:
        return _trainable_chip_program(compiled, opts, models, dtype)
    if "fitted" in opts.modes and _measured(opts):
        return _measured_chip_program(compiled, opts, models, dtype, trainable)
    if early and "fitted" in opts.modes:
        raise ParameterError(f"--hardware fitted,early: --fits {opts.fits} holds characterization fits, which already "
                             "state each block's errors; early stacks on a measured chip (`kelvin fit-chip`), chip "
                             "or quantized")
    if "chip" in opts.modes or early:
        from sim.chip import ChipInstance
        from sim.spice_commands import default_scale
        if extra := [m for m in opts.modes if m in TRAINING_ONLY_WITH_CHIP]:
            raise ParameterError(f"--hardware {','.join(opts.modes)}: at inference a chip is its netlist's model, "
                                 f"which {' and '.join(extra)} would not change (they act on its nominal weights "
                                 "while training for it); evaluate or run with --hardware chip")
        scale = opts.scale or default_scale(compiled.target.name)
        seed = opts.chip_seed if "chip" in opts.modes else None  # quantized,early: the nominal chip
        graph = ChipInstance.draw(compiled, seed, scale, sizing=opts.sizing).engine_graph(early=early)
        if "chip" not in opts.modes:  # its banks hold the programmed levels already
            models = [m for m in models if not isinstance(m, Quantized)] + [_RectifyInputs()]
    hw = None if not models else (models[0] if len(models) == 1 else Stack(tuple(models)))
    return Program(graph, dtype=dtype, hardware=hw)


def crossbar_converters(compiled: Compiled, opts: HardwareOptions, calibration: Mapping[str, np.ndarray],
                        batch_size: int = 512) -> dict:
    """The DAC/ADC of every crossbar bank under ``opts``' ``quantized`` mode, with the full scales the
    engine calibrates on the first ``batch_size`` samples of ``calibration`` (its first batch):
    {bank: (dac_bits, dac_fs, adc_bits, adc_fs)} in model units, for the netlist
    (`compiler.netlist.NetlistOptions.converters`). Empty unless the target is crossbar and the mode
    is quantized."""
    from circuits.crossbar import CrossbarArray
    from sim.engine.maps import Quantize
    if compiled.target.name != "crossbar" or "quantized" not in opts.modes:
        return {}
    program = build_program(compiled, opts)
    first = {k: (v[:batch_size] if np.ndim(v) else v) for k, v in calibration.items()}
    program.run(first, rng=np.random.default_rng(opts.seed))
    out = {}
    for step in program.steps:
        if isinstance(getattr(step.node, "primitive", None), CrossbarArray):
            dac = next((m for m in step.maps.pre if isinstance(m, Quantize)), None)
            adc = next((m for m in step.maps.post if isinstance(m, Quantize)), None)
            out[step.node.name] = (dac and dac.bits, dac and dac.full_scale, adc and adc.bits, adc and adc.full_scale)
    return out


def check_spice_modes(opts: HardwareOptions, target: str) -> None:
    """--engine spice simulates a netlist: only what a netlist holds (nominal, or one chip). An op-amp
    netlist holds exact resistor ratios, so it cannot show --weight-bits either."""
    bad = [m for m in opts.modes if m not in SPICE_MODES]
    if bad:
        raise UnsupportedError(f"--engine spice simulates the netlist, which cannot represent --hardware "
                               f"{','.join(bad)}; use --engine behavioral for it")
    if target == "opamp" and opts.weight_bits is not None:
        raise UnsupportedError("--weight-bits: an op-amp netlist holds the exact resistor ratios, not N-bit levels; "
                               "use --engine behavioral for it")


def run_program(program: Program, feeds: Mapping[str, np.ndarray], batch_size: int = 256,
                progress: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """Run in chunks of ``batch_size`` samples with a progress bar; noise seeded by ``seed``."""
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    rng = np.random.default_rng(seed)
    n = min((a.shape[0] for a in feeds.values() if np.ndim(a)), default=0)
    if (n <= batch_size or any(np.ndim(a) == 0 or a.shape[0] != n for a in feeds.values())
            or samples_verdict(program.graph)[0] is not True):  # unchecked or mixing: chunks may change the outputs
        return program.run(feeds, rng=rng)
    parts: dict[str, list[np.ndarray]] = {}
    with tqdm(total=n, desc="run", unit="sample", disable=not progress or None, leave=False) as bar:
        for start in range(0, n, batch_size):
            chunk = {k: v[start:start + batch_size] for k, v in feeds.items()}
            for k, v in program.run(chunk, rng=rng).items():
                parts.setdefault(k, []).append(v)
            bar.update(min(batch_size, n - start))
    sizes = [min(batch_size, n - start) for start in range(0, n, batch_size)]
    return {k: _join(program.graph, k, v, sizes) for k, v in parts.items()}


def _join(graph, name: str, chunks: list[np.ndarray], sizes: list[int]) -> np.ndarray:
    """The chunks of output ``name`` along the batch axis; an output without one (a constant, a
    Shape), as the graph declares it or as the chunks show, is the same for every chunk: once."""
    shape = graph.shape(name)
    batched = (isinstance(shape[0], str) if shape else
               shape is None and all(np.ndim(c) and c.shape[0] == m for c, m in zip(chunks, sizes)))
    return np.concatenate(chunks, axis=0) if batched else chunks[0]
