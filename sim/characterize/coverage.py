"""What each primitive kind has, read from the registries: the README's coverage table.

Columns, each a registry lookup (nothing here is a hand-kept list):

- ideal math: the primitive class (`circuits.PRIMITIVES`) defines ``ideal``;
- kernel and gradient: `sim.engine.kernels.KERNELS` has a kernel whose ``backward`` is its own;
- circuit: a network emitter places it in whole-network netlists (`circuits.spice.emit.EMITTERS`);
- validation bench: the circuit library designs a block with a DC bench (`circuits.spice.library.CIRCUITS`),
  which ``kelvin validate`` simulates;
- fitted family: a characterization bench (`bench_registry.BENCHES`), a family (`families.FAMILIES`) and a
  shipped fit (``models/fits/<family>.json``); the cell names the family.
"""

from __future__ import annotations

from circuits import PRIMITIVES
from circuits.base import Primitive
from circuits.data import model_file

COLUMNS = ("kind", "ideal math", "kernel and gradient", "circuit", "validation bench", "fitted family")
YES, NO = "✓", "—"


def _has_gradient(kind: str) -> bool:
    try:
        from sim.engine.kernels import KERNELS, Kernel
    except ImportError:  # no kernel registry in this build
        return False
    k = KERNELS.get(kind)
    return k is not None and type(k).backward is not Kernel.backward


def _fitted(kind: str) -> str:
    from sim.characterize.bench_registry import BENCHES
    from sim.characterize.families import FAMILIES

    fam = FAMILIES.get(kind)
    if fam is None or kind not in BENCHES:
        return NO
    try:
        shipped = model_file("fits", f"{fam.name}.json").is_file()
    except Exception:  # noqa: BLE001  (a missing models folder: no shipped fit)
        shipped = False
    return fam.name if shipped else NO


def coverage_rows() -> list[tuple[str, ...]]:
    """One row per primitive kind, in the order of `circuits.PRIMITIVES`."""
    from circuits.spice import emit
    from circuits.spice.library import CIRCUITS

    emit._load()
    rows = []
    for kind, cls in PRIMITIVES.items():
        rows.append((f"`{kind}`", YES if cls.ideal is not Primitive.ideal else NO,
                     YES if _has_gradient(kind) else NO, YES if kind in emit.EMITTERS else NO,
                     YES if kind in CIRCUITS else NO, _fitted(kind)))
    return rows


def coverage_table() -> str:
    """The Markdown table (header, rule, one line per kind)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in coverage_rows()]
    return "\n".join(lines)
