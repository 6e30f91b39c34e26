"""A graph compiled once into an executable, differentiable program.

`Program` walks the lowered graph's topological order once, gives every tensor a slot, casts
constants and parameters to the run's dtype once (float32 by default, float64 for gradient
checks), and binds the hardware model's maps to each node. ``forward`` then runs the steps;
with ``train=True`` it keeps a tape of what each kernel saved, and ``backward`` walks it in
reverse to give the gradient of every named parameter (``<node>.<field>``, e.g.
``fc1.weights``).

Parameters live in ``Program.params``, a plain dict an optimizer updates in place;
`Program.graph_with_params` writes them back into a copy of the graph's primitives (for the
netlist emitter or an ONNX exporter).

At inference (``train=False``) some steps run fused, with the same results within rounding: a
convolution's Im2Col and bank (`Program._direct_conv`: shifted GEMMs on the image, or im2col rows
gathered a chunk at a time), a max pool's Im2Col and WindowMax (`Program._max_pool`), and rectifiers
and sums that write over an input nobody else reads (`Program._mark_in_place`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from circuits.errors import InputError, KelvinError, ModelError, UnsupportedError
from compiler.ir import WIRING_OPS, Graph, Node, OpNode, PrimitiveNode
from compiler.ops import lookup
from sim.engine import fused
from sim.engine.feeds import check_feed, check_graph
from sim.engine.fused import TAPS_FIRST_MIN_CHANNELS
from sim.engine.kernels import Kernel, kernel_for
from sim.engine.maps import ContentMemo, NodeMaps, chain, chain_back
from sim.engine.ops import NO_SIGNAL, Router, op_backward

Array = np.ndarray


@dataclass(slots=True, eq=False)
class Step:
    """One node: where its inputs and outputs live, how it runs, what it may free afterwards."""

    index: int
    node: Node
    ins: tuple[int, ...]  # slot per input (-1: omitted optional input)
    outs: tuple[int, ...]
    kernel: Kernel | None = None
    spec: Any = None
    router: Router | None = None
    params: tuple[tuple[str, str], ...] = ()  # (field, parameter name)
    signal: tuple[bool, ...] = ()  # which inputs carry a gradient (not constants)
    maps: NodeMaps = field(default_factory=NodeMaps)
    free: tuple[int, ...] = ()
    const: dict[str, Array] = field(default_factory=dict)  # parameters held fixed (``frozen`` nodes)
    taps_first: Step | None = None  # Im2Col whose only reader is this dense step (inference fast path)
    taps_view: bool = False  # a grouped Im2Col that may return its taps-first gather as a transposed view
    pool_max: Step | None = None  # a max pool's Im2Col whose only reader is this WindowMax (inference fast path)
    in_place: int = -1  # the input this step may overwrite at inference (`fused.plan_in_place`), -1: none
    in_place_slots: tuple[int, ...] = ()  # the slots whose memory that overwrites


@dataclass(slots=True)
class Tape:
    """What a training forward pass kept for backward, one entry per step."""

    env: list[Any]
    entries: list[Any]
    input_saved: dict[str, list[Any]]


class Program:
    """An executable view of ``graph``; see the module docstring."""

    def __init__(self, graph: Graph, *, dtype: Any = np.float32, hardware: Any = None,
                 frozen: frozenset[str] = frozenset()) -> None:
        # Python callers skip the CLI: a wrong graph or an integer dtype (which would silently truncate
        # every activation) is one clear InputError, not an AttributeError or integer math.
        check_graph(graph)
        try:
            self.dtype = np.dtype(dtype)
        except (TypeError, ValueError) as exc:
            raise InputError(f"dtype: not a NumPy data type ({dtype!r}); use np.float32 or np.float64") from exc
        if self.dtype.kind != "f":
            raise InputError(f"dtype: must be a floating-point type (np.float32, np.float64), got {self.dtype}")
        graph.check()
        self.graph = graph
        self.inputs = list(graph.inputs)
        self.outputs = list(graph.outputs)
        slots: dict[str, int] = {}

        def slot(name: str) -> int:
            if name not in slots:
                slots[name] = len(slots)
            return slots[name]

        self.const_slots: list[tuple[int, Array]] = []
        for name, value in graph.constants.items():
            v = np.asarray(value)
            if v.dtype.kind == "f" and v.dtype != self.dtype:
                v = v.astype(self.dtype)
            self.const_slots.append((slot(name), v))
        self.input_slots = [slot(n) for n in self.inputs]
        constant_slots = {s for s, _ in self.const_slots}
        self.params: dict[str, Array] = {}
        self.steps: list[Step] = []
        for i, node in enumerate(graph.topo()):
            ins = tuple(slot(t) if t else -1 for t in node.inputs)
            outs = tuple(slot(t) if t else -1 for t in node.outputs)
            step = Step(i, node, ins, outs, signal=tuple(s >= 0 and s not in constant_slots for s in ins))
            if isinstance(node, PrimitiveNode):
                assert node.primitive is not None
                step.kernel = kernel_for(node.primitive)
                names = []
                for fld, value in node.primitive.parameters().items():
                    if node.name in frozen:  # a fixed part of the hardware (a chip's read-out): a constant
                        step.const[fld] = np.array(value, dtype=self.dtype)
                        continue
                    key = f"{node.name}.{fld}"
                    self.params[key] = np.array(value, dtype=self.dtype)
                    names.append((fld, key))
                step.params = tuple(names)
            else:
                assert isinstance(node, OpNode)
                step.spec = lookup(node.op, node.version, node.name)
                if node.op in WIRING_OPS and node.op not in NO_SIGNAL:
                    step.router = Router(node.op, node.version, node.attrs, node.name)
            self.steps.append(step)
        self.n_slots = len(slots)
        self.slots = slots
        self.output_slots = [slots[n] if n in slots else -1 for n in self.outputs]
        missing = [n for n, s in zip(self.outputs, self.output_slots) if s < 0]
        if missing:
            raise ModelError(f"graph output(s) {', '.join(missing)} are not produced")
        self.steps = fused.plan_windows(self.steps, self.output_slots)
        fused.plan_in_place(self.steps, self.output_slots)
        last: dict[int, int] = {}
        for step in self.steps:
            for s in step.ins:
                if s >= 0:
                    last[s] = step.index
        keep = set(self.output_slots) | constant_slots
        frees: dict[int, list[int]] = {}
        for s, i in last.items():
            if s not in keep:
                frees.setdefault(i, []).append(s)
        for step in self.steps:
            step.free = tuple(frees.get(step.index, ()))
        self._scratch = threading.local()  # per thread: one flat buffer the taps-first Im2Col reuses
        self._memo: dict[int, ContentMemo] = {}  # see _mapped_params
        self.input_maps: dict[str, NodeMaps] = {}
        self.hardware = None
        if hardware is not None:
            self.bind(hardware)

    def __getstate__(self) -> dict:  # a Program crosses process pools; its scratch stays behind
        state = dict(self.__dict__)
        del state["_scratch"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._scratch = threading.local()

    # --------------------------------------------------------------------------- binding
    def bind(self, hardware: Any) -> None:
        """Attach a hardware model: each node gets its maps (chips are drawn here, once)."""
        self.hardware = hardware
        self._memo = {}
        for step in self.steps:
            step.maps = hardware.node_maps(self, step) if hardware is not None else NodeMaps()
        self.input_maps = {n: hardware.input_maps(self, n) for n in self.inputs} if hardware is not None else {}

    def primitive_steps(self) -> list[Step]:
        return [s for s in self.steps if s.kernel is not None]

    def layer_key(self, step: Step) -> int:
        """``step``'s position among the graph's primitive nodes in topological order: what a hardware
        model keys its random draws by (as the netlist emitters key a chip's cells), so that routing
        steps and their execution order cannot re-roll a chip."""
        return [s.node.name for s in self.primitive_steps()].index(step.node.name)

    # --------------------------------------------------------------------------- running
    def run(self, feeds: Mapping[str, Array], *, rng: np.random.Generator | None = None,
            outputs: list[str] | None = None) -> dict[str, Array]:
        """Inference: the graph outputs (or ``outputs``) for ``feeds``."""
        outs, _ = self.forward(feeds, rng=rng, train=False, wanted=outputs)
        return outs

    def forward(self, feeds: Mapping[str, Array], *, rng: np.random.Generator | None = None,
                train: bool = False, wanted: list[str] | None = None) -> tuple[dict[str, Array], Tape | None]:
        env: list[Any] = [None] * self.n_slots
        for s, v in self.const_slots:
            env[s] = v
        input_saved: dict[str, list[Any]] = {}
        for name, s in zip(self.inputs, self.input_slots):
            if name not in feeds:
                raise InputError(f"missing value for graph input {name!r}")
            x = check_feed(self.graph, name, feeds[name], self.dtype)
            m = self.input_maps.get(name)
            if m is not None and m.pre:
                x, input_saved[name] = chain(m.pre, x, rng, train)
            env[s] = x
        extra_keep = set()
        if wanted is not None:
            extra_keep = {self._slot_of(n) for n in wanted}
        entries: list[Any] = []
        permuted: dict[int, tuple[int, int, int]] = {}  # slot -> (C, kh, kw) of a taps-first Im2Col output
        convolved: dict[int, tuple[Step, str]] = {}  # slot -> the Im2Col that passed its input on, and how
        # its bank is to convolve it directly (_direct_conv)
        pooled: dict[int, Step] = {}  # slot -> the Im2Col that passed its input on to be max-pooled directly
        for step in self.steps:
            args = [env[s] if s >= 0 else None for s in step.ins]
            try:
                how = None
                if not train and step.taps_first is not None and step.outs[0] not in extra_keep:
                    how = self._direct_conv(step, args[0])
                if how is not None:
                    results, saved = [args[0]], None  # no gather here: its bank convolves the image itself
                    convolved[step.outs[0]] = (step, how)
                elif not train and step.taps_first is not None and args[0].shape[1] >= TAPS_FIRST_MIN_CHANNELS:
                    # its one reader runs next (`fused.plan_windows`): the scratch buffer may hold it
                    results, saved = self._im2col_taps_first(step, args[0], step.outs[0] not in extra_keep), None
                    permuted[step.outs[0]] = (args[0].shape[1], *step.node.attrs["kernel"])
                elif (not train and step.pool_max is not None and not step.pool_max.maps.pre
                      and step.outs[0] not in extra_keep and args[0].dtype in (np.float32, np.float64)
                      and int(step.node.attrs["groups"]) == args[0].shape[1]):
                    results, saved = [args[0]], None  # no gather: its reader pools the image itself
                    pooled[step.outs[0]] = step
                elif (not train and step.taps_view and args[0].shape[1] >= TAPS_FIRST_MIN_CHANNELS
                      and int(step.node.attrs["groups"]) == args[0].shape[1]):
                    cols = self._im2col_taps_first(step, args[0])[0]
                    n, p_, _, k = cols.shape
                    c = args[0].shape[1]
                    results, saved = [cols.reshape(n, p_, k // c, c).transpose(0, 1, 3, 2)], None
                elif step.ins and step.ins[0] in convolved:
                    results, saved = self._conv_direct(step, args[0], *convolved[step.ins[0]], rng), None
                elif step.ins and step.ins[0] in pooled:
                    results, saved = self._max_pool(step, args[0], pooled[step.ins[0]], rng), None
                elif (not train and step.in_place >= 0 and not step.maps
                      and not extra_keep.intersection(step.in_place_slots)
                      and (y := step.kernel.forward_in_place(step.node.primitive, args, step.in_place)) is not None):
                    results, saved = [y], None
                elif step.ins and step.ins[0] in permuted and step.kernel is not None:
                    results, saved = self._forward_step(step, args, rng, train, permuted[step.ins[0]])
                else:
                    results, saved = self._forward_step(step, args, rng, train)
            except KelvinError as exc:
                msg = str(exc)
                raise type(exc)(msg if step.node.name in msg else
                                f"node {step.node.name!r} ({step.node.kind}): {msg}") from exc
            except (ValueError, TypeError, IndexError) as exc:
                raise ModelError(f"node {step.node.name!r} ({step.node.kind}): {exc}") from exc
            for s, v in zip(step.outs, results):
                if s >= 0:
                    env[s] = v
            if train:
                entries.append((args, results, saved))
            else:
                for s in step.free:
                    if s not in extra_keep:
                        env[s] = None
        names = self.outputs if wanted is None else wanted
        outs = {n: env[self._slot_of(n)] for n in names}
        return outs, (Tape(env, entries, input_saved) if train else None)

    def _slot_of(self, name: str) -> int:
        s = self.slots.get(name)
        if s is None:
            raise InputError(f"no tensor named {name!r} in graph {self.graph.name!r}")
        return s

    # fused inference paths (`sim.engine.fused`), as methods so a test can watch them
    def _im2col_taps_first(self, step: Step, x: Array, reuse: bool = False) -> list[Array]:
        """The taps-first gather; with ``reuse`` into this thread's scratch buffer (`_scratch_array`)."""
        return fused.im2col_taps_first(step, x, self._scratch_array if reuse else np.empty)

    def _direct_conv(self, gather: Step, x: Array) -> str | None:
        bank = gather.taps_first
        assert bank is not None
        key = dict(bank.params).get("weights")
        return fused.direct_conv_kind(gather, x, self.params[key] if key is not None else bank.const.get("weights"))

    def _conv_direct(self, bank: Step, x: Array, gather: Step, how: str, rng) -> list[Array]:
        return fused.conv_direct(bank, self._bank_params(bank, rng, False)[0], x, gather, how, self._scratch_array, rng)

    def _max_pool(self, reduce: Step, x: Array, gather: Step, rng) -> list[Array]:
        return fused.max_pool(reduce, x, gather, rng)

    def _scratch_array(self, shape: tuple[int, ...], dtype: np.dtype) -> Array:
        """A view of this thread's scratch buffer, grown as needed; the next call overwrites it."""
        n = int(np.prod(shape))
        buf = getattr(self._scratch, "buf", None)
        if buf is None or buf.dtype != dtype or buf.size < n:
            buf = self._scratch.buf = np.empty(n, dtype=dtype)
        return buf[:n].reshape(shape)

    def _mapped_params(self, step: Step, p: dict[str, Array]) -> dict[str, Array]:
        """Inference through deterministic weight maps (levels, a chip's fixed gains): the last result,
        while the stored parameters still equal the ones it was computed from (an optimizer updates
        them in place, so equality of content, not identity, is the test)."""
        memo = self._memo.setdefault(step.index, ContentMemo())
        return memo.get(p, lambda: chain(step.maps.wmap, p, None, False)[0])

    def _bank_params(self, step: Step, rng, train: bool) -> tuple[dict[str, Array], Any]:
        """A primitive's parameters as its kernel sees them (through the weight maps), and what the
        maps saved for backward."""
        p = {fld: self.params[key] for fld, key in step.params}
        if step.const:
            p.update(step.const)
        maps = step.maps
        if maps.wmap and not train and all(m.deterministic for m in maps.wmap):
            return self._mapped_params(step, p), None
        if maps.wmap:
            return chain(maps.wmap, p, rng, train)
        return p, None

    def _forward_step(self, step: Step, args: list, rng, train: bool,
                      taps_first: tuple[int, int, int] | None = None) -> tuple[list[Array], Any]:
        maps = step.maps
        if step.kernel is not None:
            node = step.node
            assert isinstance(node, PrimitiveNode)
            xs = list(args)
            pre_saved = None
            if maps.pre:
                xs[0], pre_saved = chain(maps.pre, xs[0], rng, train)
            p, w_saved = self._bank_params(step, rng, train)
            if taps_first is not None:  # the input's taps are (kh, kw, C): permute the columns alike
                c, kh, kw = taps_first
                w = p["weights"]
                p = {**p, "weights": w.reshape(w.shape[0], c, kh, kw).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)}
            y, saved = step.kernel.forward(node.primitive, p, xs, train)
            post_saved = None
            if maps.post:
                y, post_saved = chain(maps.post, y, rng, train)
            return [y], (p, pre_saved, w_saved, saved, post_saved)
        node = step.node
        assert isinstance(node, OpNode)
        out = [np.asarray(v) for v in step.spec.kernel(args, node.attrs, node.version)]
        if maps.post:
            out[0], post_saved = chain(maps.post, out[0], rng, train)
            return out, post_saved
        return out, None

    # --------------------------------------------------------------------------- gradients
    def backward(self, tape: Tape, grad_outputs: Mapping[str, Array], input_grads: bool = False,
                 update: Callable[[str, Array], None] | None = None) -> dict[str, Array]:
        """Gradients of every parameter (and, with ``input_grads``, of every graph input) given the
        gradients of the outputs (absent outputs count as zero).

        ``update(name, grad)``, when given, is called for each block's parameters as soon as their
        gradient is ready (pipelined updates): the block's weights change in place, and the gradient it
        passes on to earlier blocks is computed with the updated weights, as on hardware where the
        error travels back through the just-programmed array (the effective weights move by the same
        step as the stored ones). Its own weight gradient uses the forward pass's activations.
        """
        if not isinstance(tape, Tape):
            raise InputError(f"backward: the tape of forward(..., train=True), got {type(tape).__name__}")
        if not isinstance(grad_outputs, Mapping):
            raise InputError(f"backward: output gradients by name, got {type(grad_outputs).__name__}")
        grads: dict[int, Array] = {}
        for name, g in grad_outputs.items():
            s = self._slot_of(name)
            kept = tape.env[s]
            try:
                grads[s] = np.asarray(g, self.dtype)
            except (TypeError, ValueError):
                raise InputError(f"backward: the gradient of {name!r} is not an array of numbers") from None
            if kept is not None and np.shape(kept) != grads[s].shape:
                raise InputError(f"backward: the gradient of {name!r} has shape {grads[s].shape}, "
                                 f"its output {np.shape(kept)}")
        pgrads: dict[str, Array] = {}
        for step, (args, results, saved) in zip(reversed(self.steps), reversed(tape.entries)):
            gy = grads.pop(step.outs[0], None) if step.outs and step.outs[0] >= 0 else None
            more = self._other_output_grads(step, results, grads)
            if gy is None and more:
                gy = np.zeros_like(results[0])
            if gy is None:
                continue
            try:
                gxs = self._backward_step(step, args, results, saved, gy, pgrads, update, more)
            except KelvinError as exc:
                raise type(exc)(f"node {step.node.name!r} ({step.node.kind}): {exc}") from exc
            for s, sig, g in zip(step.ins, step.signal, gxs):
                if g is None or s < 0 or not sig:
                    continue
                grads[s] = grads[s] + g if s in grads else g
        if input_grads:
            for name, s in zip(self.inputs, self.input_slots):
                g = grads.get(s)
                if g is not None and name in tape.input_saved:
                    g = chain_back(self.input_maps[name].pre, tape.input_saved[name], g)
                pgrads[f"input:{name}"] = g if g is not None else np.zeros_like(tape.env[s])
        return pgrads

    def _other_output_grads(self, step: Step, results, grads: dict[int, Array]) -> list[Array]:
        """A Split's gradients of outputs 1.. (zeros where none arrived); [] when none did, or for other ops."""
        if step.router is None or step.router.op != "Split" or len(step.outs) < 2:
            return []
        got = [grads.pop(s, None) if s >= 0 else None for s in step.outs[1:]]
        if all(g is None for g in got):
            return []
        return [np.zeros_like(r) if g is None else g for g, r in zip(got, results[1:])]

    def _backward_step(self, step: Step, args, results, saved, gy, pgrads, update=None,
                       more: Sequence[Array] = ()) -> list[Array | None]:
        maps = step.maps
        if step.kernel is not None:
            p, pre_saved, w_saved, ksaved, post_saved = saved
            if maps.post:
                gy = chain_back(maps.post, post_saved, gy)
            gxs, gp = step.kernel.backward(step.node.primitive, p, ksaved, gy)
            if maps.wmap:
                gp = chain_back(maps.wmap, w_saved, gp)
            for fld, key in step.params:
                if fld in gp:
                    pgrads[key] = pgrads[key] + gp[fld] if key in pgrads else gp[fld]
            if update is not None and any(fld in gp for fld, _ in step.params):
                before = {}
                for fld, key in step.params:
                    if fld in gp:
                        before[fld] = self.params[key].copy()
                        update(key, gp[fld])
                if maps.wmap and all(m.deterministic for m in maps.wmap):
                    # a fixed map (levels, one chip, a measured chip) of the moved parameters, exactly;
                    # a chip's map may also reshape them (a signed row into its two somas)
                    raw = {fld: self.params[key] for fld, key in step.params}
                    moved = chain(maps.wmap, {**raw, **(step.const or {})}, None, False)[0]
                else:  # a fresh draw (noise, population) keeps this step's draw, moved by the update
                    moved = dict(p)
                    for fld, key in step.params:
                        if fld in before and p[fld].shape != before[fld].shape:
                            raise UnsupportedError(
                                f"--pipelined cannot move weights that a chip map reshapes "
                                f"and a random map redraws ({', '.join(type(m).__name__ for m in maps.wmap)}); "
                                "train without --pipelined, or without the random mode")
                        if fld in before:
                            # with no weight map p[fld] is the stored array itself, which update moved in place
                            base = before[fld] if np.shares_memory(p[fld], self.params[key]) else p[fld]
                            moved[fld] = base + (self.params[key] - before[fld])
                gxs, _ = step.kernel.backward(step.node.primitive, moved, ksaved, gy)
            if maps.pre and gxs and gxs[0] is not None:
                gxs = [chain_back(maps.pre, pre_saved, gxs[0]), *gxs[1:]]
            return gxs
        node = step.node
        assert isinstance(node, OpNode)
        if maps.post:
            gy = chain_back(maps.post, saved, gy)
        if step.router is not None:
            return step.router.backward(args, step.signal, gy, more)
        if not any(step.signal):
            return []
        return op_backward(node.op)(args, results, node.attrs, node.version, gy)

    # --------------------------------------------------------------------------- map state
    def map_state(self) -> dict[str, float]:
        """Calibrated converter full scales (maps with a ``full_scale``), for checkpoints."""
        out = {}
        for where, maps in self._stateful_maps():
            if getattr(maps, "full_scale", None) is not None:
                out[where] = float(maps.full_scale)
        return out

    def load_map_state(self, state: Mapping[str, float]) -> None:
        for where, m in self._stateful_maps():
            if where in state:
                m.full_scale = float(state[where])

    def reset_map_state(self) -> bool:
        """Forget every calibrated converter full scale (the next forward pass sets them again);
        whether the program has any."""
        found = False
        for _, m in self._stateful_maps():
            m.full_scale, found = None, True
        return found

    def _stateful_maps(self):
        for step in self.steps:
            for side in ("pre", "post"):
                for i, m in enumerate(getattr(step.maps, side)):
                    if hasattr(m, "full_scale"):
                        yield f"{step.node.name}.{side}{i}", m
        for name, nm in self.input_maps.items():
            for i, m in enumerate(nm.pre):
                if hasattr(m, "full_scale"):
                    yield f"input:{name}.pre{i}", m

    # --------------------------------------------------------------------------- parameters
    def graph_with_params(self, params: Mapping[str, Array] | None = None) -> Graph:
        """A copy of the graph whose primitives hold ``params`` (default: the program's)."""
        params = self.params if params is None else params
        g = self.graph.copy()
        for step in self.primitive_steps():
            node = g.node(step.node.name)
            assert isinstance(node, PrimitiveNode) and node.primitive is not None
            new = {fld: np.asarray(params[key]) for fld, key in step.params if key in params}
            if new:
                node.primitive = node.primitive.with_parameters(**new)
        return g


def check_unsupported_grad(program: Program) -> list[str]:
    """Nodes whose backward the engine lacks (their ops), for a clear error before training."""
    from sim.engine.ops import has_grad
    bad = []
    for step in program.steps:
        if step.kernel is None and any(step.signal) and not has_grad(step.node.kind):
            bad.append(f"{step.node.name} ({step.node.kind})")
    if bad:
        raise UnsupportedError(f"no gradient for: {', '.join(bad)}")
    return bad
