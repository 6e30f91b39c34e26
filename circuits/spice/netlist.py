"""The one SPICE writer: typed elements, subcircuits and decks rendered to ngspice text.

Every name that may come from a model goes through `spice_name`, every number through
`fmt`; nothing else builds netlist text. A sanitized name is a bare identifier, so no model
string can start a card, a dot command or a `.control` block.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from circuits.errors import ParameterError

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
MAX_NAME = 48
_HASH = 10  # hex digits of the suffix that keeps truncated names apart


def spice_name(text: str, prefix: str = "n") -> str:
    """A SPICE-safe identifier for ``text``: letters, digits and '_' only, starting with a letter.

    Anything else (newlines, '.', '*', spaces, '=', quotes) becomes '_', so a hostile model
    name like ``"x\\n.control\\nshell rm -rf /"`` can only ever be an inert identifier.
    Names longer than ``MAX_NAME`` are cut and end in a hash of the whole name, so
    two long names that share a prefix (``serving_default_dense_input_...``) stay distinct.
    """
    cleaned = _UNSAFE.sub("_", str(text))
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"{prefix}_{cleaned}"
    cleaned = cleaned.lower()  # ngspice folds case: "A" and "a" are one name to it
    if len(cleaned) > MAX_NAME:  # keep distinct long names distinct: truncate + hash of the whole
        digest = hashlib.sha1(cleaned.encode()).hexdigest()[:_HASH]
        cleaned = f"{cleaned[: MAX_NAME - _HASH - 1]}_{digest}"
    return cleaned


class NameTable:
    """Gives distinct sanitized names to distinct source strings (collisions get a suffix)."""

    def __init__(self, prefix: str = "n") -> None:
        self.prefix = prefix
        self._by_source: dict[str, str] = {}
        self._used: set[str] = set()

    def __call__(self, source: str) -> str:
        if source in self._by_source:
            return self._by_source[source]
        base = spice_name(source, self.prefix)
        name, k = base, 1
        while name in self._used:
            name = f"{base[: MAX_NAME - 6]}_{k}"
            k += 1
        self._used.add(name)
        self._by_source[source] = name
        return name


def fmt(value: float | int) -> str:
    """A number as plain decimal text at full double precision (never ``np.float64(...)``)."""
    v = float(value)
    if not math.isfinite(v):
        raise ParameterError(f"cannot write non-finite number {value!r} into a netlist")
    text = repr(v)
    return text[:-2] if text.endswith(".0") else text


_NODE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _node(n: str | int) -> str:
    """A sanitized identifier, or a path of them into subcircuit instances (``xdut.xsyn_3.c1``)."""
    s = str(n)
    if s != "0" and not _NODE.fullmatch(s):
        raise ParameterError(f"node name {s!r} is not a sanitized identifier")
    return s


def _params(params: Mapping[str, float | int | str]) -> str:
    parts = []
    for k, v in params.items():
        if not _IDENT.fullmatch(k):
            raise ParameterError(f"parameter name {k!r} is not an identifier")
        parts.append(f"{k}={v if isinstance(v, str) and _is_expr(v) else fmt(v)}")  # type: ignore[arg-type]
    return " ".join(parts)


def _is_expr(v: str) -> bool:
    """Only brace expressions over identifiers and numbers are allowed as parameter text."""
    return bool(re.fullmatch(r"\{[A-Za-z0-9_+\-*/(). ]*\}", v))


@dataclass(frozen=True, slots=True)
class Element:
    """One device card: ``<letter><name> <nodes...> <value/model> <params>``.

    ``letter`` is the SPICE device letter (R, C, L, V, I, E, G, B, D, Q, M, X); ``value`` is a
    number, a model/subcircuit name, or (for sources) a source spec built by a helper here.
    """

    letter: str
    name: str
    nodes: tuple[str, ...]
    value: str
    params: Mapping[str, float | int | str] = field(default_factory=dict)

    def render(self) -> str:
        if self.letter.upper() not in "RCLVIEGBDQMXFH" or len(self.letter) != 1:
            raise ParameterError(f"unknown device letter {self.letter!r}")
        name = f"{self.letter.upper()}{spice_name(self.name)}"
        nodes = " ".join(_node(n) for n in self.nodes)
        tail = _params(self.params)
        return " ".join(p for p in (name, nodes, self.value, tail) if p)


def resistor(name: str, a: str, b: str, ohms: float) -> Element:
    if not ohms > 0:
        raise ParameterError(f"resistor {name}: resistance must be > 0, got {ohms}")
    return Element("R", name, (a, b), fmt(ohms))


def capacitor(name: str, a: str, b: str, farads: float, ic_v: float | None = None) -> Element:
    if not farads > 0:
        raise ParameterError(f"capacitor {name}: capacitance must be > 0, got {farads}")
    return Element("C", name, (a, b), fmt(farads), {} if ic_v is None else {"ic": ic_v})


def vsource(name: str, p: str, n: str, dc_v: float = 0.0, pulse: Sequence[float] | None = None,
            pwl: Sequence[tuple[float, float]] | None = None, ac_v: float | None = None) -> Element:
    """Independent voltage source: DC, optionally PULSE(...) or PWL(...) for transients, AC magnitude for .ac."""
    spec = f"DC {fmt(dc_v)}"
    if ac_v is not None:
        spec += f" AC {fmt(ac_v)}"
    if pulse is not None:
        spec += " PULSE(" + " ".join(fmt(v) for v in pulse) + ")"
    if pwl is not None:
        spec += " PWL(" + " ".join(f"{fmt(t)} {fmt(v)}" for t, v in pwl) + ")"
    return Element("V", name, (p, n), spec)


def isource(name: str, p: str, n: str, dc_a: float = 0.0) -> Element:
    """Independent current source: current flows from p through the source to n."""
    return Element("I", name, (p, n), f"DC {fmt(dc_a)}")


def vcvs(name: str, p: str, n: str, cp: str, cn: str, gain: float) -> Element:
    return Element("E", name, (p, n, cp, cn), fmt(gain))


def instance(name: str, subckt: str, nodes: Sequence[str], params: Mapping[str, float | int] | None = None) -> Element:
    return Element("X", name, tuple(nodes), spice_name(subckt), dict(params or {}))


def mosfet(name: str, d: str, g: str, s: str, b: str, model: str, w_m: float, l_m: float,
           m: int = 1, delvto_v: float | None = None) -> Element:
    """A MOSFET with area/perimeter of its diffusions (2.5·L long) so BSIM3 junctions are sized."""
    if not (w_m > 0 and l_m > 0):
        raise ParameterError(f"mosfet {name}: W and L must be > 0, got W={w_m}, L={l_m}")
    ld = 2.5 * l_m
    params: dict[str, float | int] = {"w": w_m, "l": l_m, "ad": w_m * ld, "as": w_m * ld,
                                      "pd": 2 * (w_m + ld), "ps": 2 * (w_m + ld)}
    if m != 1:
        params["m"] = m
    if delvto_v is not None:
        params["delvto"] = delvto_v
    return Element("M", name, (d, g, s, b), spice_name(model), params)


def diode(name: str, anode: str, cathode: str, model: str) -> Element:
    """A junction diode; current flows anode -> cathode when forward biased."""
    return Element("D", name, (anode, cathode), spice_name(model))


def bjt(name: str, c: str, b: str, e: str, model: str) -> Element:
    """A bipolar transistor (collector, base, emitter) of a ``.model ... npn|pnp`` card."""
    return Element("Q", name, (c, b, e), spice_name(model))


_B_EXPR = re.compile(r"[A-Za-z0-9_+\-*/(). ,]*")


def bsource(name: str, p: str, n: str, expr: str, current: bool = False) -> Element:
    """Behavioural source ``V = expr`` (or ``I = expr``, flowing p -> n through the source).

    ``expr`` must be built from `fmt` numbers and ``V(node)`` of sanitized nodes: only
    identifiers, numbers, operators, parentheses and commas are accepted (no newline, no '.').
    """
    if not _B_EXPR.fullmatch(expr) or re.search(r"(^|[^0-9])\.[A-Za-z]", expr):
        raise ParameterError(f"bsource {name}: expression {expr!r} has characters outside the allowed set")
    return Element("B", name, (p, n), f"{'I' if current else 'V'} = {expr}")


def indexed(index: str, values: Sequence[float]) -> str:
    """``pwl(V(index), 0, v₀, 1, v₁, …)``: ``values[i]`` when V(index) = i, the value of one sample of
    a batch swept by its index source (ngspice's B-source ``pwl`` function; at least two values)."""
    if len(values) < 2:
        raise ParameterError(f"indexed: a batch needs at least two values, got {len(values)}")
    return f"pwl(V({_node(index)})," + ",".join(f"{i},{fmt(float(v))}" for i, v in enumerate(values)) + ")"


def clamp_source(name: str, node: str, control: str, target_v: float | Sequence[float], index: str = "",
                 pull: str = "") -> Element:
    """A pull towards ``target_v``: I = V(control)·(V(node) − target_v) from ``node`` to ground, or
    I = pull·(V(node) − target_v) with ``pull`` an expression (siemens) of ``control``'s voltage.

    ``node`` may be a path into subcircuit instances (``xdut.xsyn_3.c1``); with a zero pull the
    element carries no current and adds nothing to the Jacobian but a zero. A sequence of
    targets with an ``index`` node pulls towards ``target_v[i]`` when V(index) = i (`indexed`).
    """
    node = _node(node)
    target = indexed(index, target_v) if index else fmt(float(target_v))  # type: ignore[arg-type]
    return Element("B", name, (node, "0"), f"I = {pull or f'V({_node(control)})'}*(V({node})-({target}))")


@dataclass(slots=True)
class Subckt:
    """A ``.subckt NAME ports... params`` block holding elements."""

    name: str
    ports: tuple[str, ...]
    elements: list[Element] = field(default_factory=list)
    params: dict[str, float] = field(default_factory=dict)
    comment: str = ""

    def render(self) -> str:
        head = f".subckt {spice_name(self.name)} " + " ".join(_node(p) for p in self.ports)
        if self.params:
            head += " " + _params(self.params)
        lines = [f"* {_comment(self.comment)}"] if self.comment else []
        lines += [head, *(e.render() for e in self.elements), f".ends {spice_name(self.name)}"]
        return "\n".join(lines)


def _comment(text: str) -> str:
    """Comment text on one line with only harmless characters (comments are code-free anyway)."""
    return re.sub(r"[^A-Za-z0-9_ .,:;=+\-()/'%]", "_", text.replace("\n", " "))[:200]


@dataclass(slots=True)
class Deck:
    """A complete ngspice input: title, models, subcircuits, top-level elements, analyses.

    Analyses are typed: ``op()``, ``dc(source, start, stop, step)``, ``tran(step, stop)``,
    ``ac(points_per_decade, f_start, f_stop)``.
    """

    title: str
    models: list[str] = field(default_factory=list)  # model-card text from models/ (trusted)
    subckts: list[Subckt] = field(default_factory=list)
    elements: list[Element] = field(default_factory=list)
    analyses: list[str] = field(default_factory=list)
    options: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # keyword options, e.g. "klu" (the KLU sparse solver)
    includes: list[str] = field(default_factory=list)  # file names Kelvin chose (never model text)
    prints: list[str] = field(default_factory=list)  # node names to print after the analysis

    def op(self) -> Deck:
        self.analyses.append(".op")
        return self

    def dc(self, source: str, start: float, stop: float, step: float) -> Deck:
        self.analyses.append(f".dc V{spice_name(source)} {fmt(start)} {fmt(stop)} {fmt(step)}")
        return self

    def dc_current(self, source: str, start: float, stop: float, step: float) -> Deck:
        self.analyses.append(f".dc I{spice_name(source)} {fmt(start)} {fmt(stop)} {fmt(step)}")
        return self

    def save(self, vectors: Sequence[str]) -> Deck:
        """``.save all`` plus extra vectors, e.g. device currents ``@m.xdut.xsoma_1.mm2[id]``."""
        for v in vectors:
            if not re.fullmatch(r"@?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\[[A-Za-z0-9_]+\])?", v):
                raise ParameterError(f"save: {v!r} is not a vector name like xdut.sum_1 or @m.xdut.xsoma_1.mm2[id]")
        self.analyses.append(".save all " + " ".join(vectors))
        return self

    def tran(self, step_s: float, stop_s: float, uic: bool = False) -> Deck:
        self.analyses.append(f".tran {fmt(step_s)} {fmt(stop_s)}" + (" uic" if uic else ""))
        return self

    def ac(self, points_per_decade: int, f_start_hz: float, f_stop_hz: float) -> Deck:
        """Small-signal sweep ``.ac dec`` (sources need ``ac_v``); vectors come back complex."""
        if not (points_per_decade >= 1 and 0 < f_start_hz < f_stop_hz):
            raise ParameterError(f"ac: need points_per_decade >= 1 and 0 < f_start < f_stop, got "
                                 f"{points_per_decade}, {f_start_hz}, {f_stop_hz}")
        self.analyses.append(f".ac dec {int(points_per_decade)} {fmt(f_start_hz)} {fmt(f_stop_hz)}")
        return self

    def render(self) -> str:
        lines = [f"* {_comment(self.title)}"]
        if self.options:
            lines.append(".options " + _params(self.options))
        for flag in self.flags:
            if not _IDENT.fullmatch(flag):
                raise ParameterError(f"option {flag!r} is not an identifier")
            lines.append(f".options {flag}")
        lines += self.models
        lines += [s.render() for s in self.subckts]
        lines += [e.render() for e in self.elements]
        for inc in self.includes:
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*", inc):
                raise ParameterError(f"include file name {inc!r} is not a plain file name")
            lines.append(f".include {inc}")
        lines += self.analyses
        if self.prints and self.analyses:
            kind = self.analyses[0].split()[0][1:]
            lines.append(f".print {kind} " + " ".join(f"v({_node(n)})" for n in self.prints))
        lines.append(".end")
        return "\n".join(lines) + "\n"


def unique(elements: Iterable[Element]) -> list[Element]:
    """Elements with duplicate card names removed (first kept), for merging generated blocks."""
    seen: set[tuple[str, str]] = set()
    out = []
    for e in elements:
        key = (e.letter.upper(), spice_name(e.name))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out
