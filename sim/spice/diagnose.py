"""Read ngspice's console text and decide whether a load or run failed, and why.

ngspice reports progress, notes and warnings on stderr even for good runs ("Note: Starting
dynamic gmin stepping", "Warning: singular matrix" followed by a successful gmin step), so
failure is decided from the few lines ngspice prints only when it gives up.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from sim.spice.errors import ConvergenceError, NetlistError, SimulationError

Line = tuple[Literal["stdout", "stderr"], str]
"""One console line and the stream ngspice wrote it to."""

_MAX_LINES = 8

_LOAD_FAILED = re.compile(
    r"^\s*error\b|circuit not parsed|unknown subckt|could not find a valid modelname", re.IGNORECASE
)
_NOT_STARTED = re.compile(r"simulation not started|no job \(tran, ac, op etc\.\) defined", re.IGNORECASE)
_GAVE_UP = re.compile(r"simulation\(s\) aborted|^\s*doanalyses:", re.IGNORECASE)
_ERROR = re.compile(r"^\s*error\b", re.IGNORECASE)
_CONVERGENCE_WORDS = re.compile(
    r"timestep too small|no convergence|singular matrix|aborted|doanalyses|stepping failed|"
    r"iteration limit|^\s*error\b",
    re.IGNORECASE,
)
_GMIN_PREFIX = re.compile(r"^\s*(trying gmin = \s*\S+|supplies reduced to \s*\S+)\s*", re.IGNORECASE)


def _summary(texts: Sequence[str]) -> str:
    """Join distinct lines, in order, capped so the message stays one readable line."""
    seen: list[str] = []
    for text in texts:
        text = _GMIN_PREFIX.sub("", text).strip()
        if text and text not in seen:
            seen.append(text)
    if len(seen) > _MAX_LINES:
        seen = seen[: _MAX_LINES // 2] + ["..."] + seen[-_MAX_LINES // 2 :]
    return " | ".join(seen)


def raise_for_load(job: str, lines: Sequence[Line]) -> None:
    """Raise NetlistError if ngspice could not parse the deck of `job`."""
    if not any(_LOAD_FAILED.search(text) for _, text in lines):
        return
    detail = [text for stream, text in lines if stream == "stderr" and not text.startswith("Note:")]
    raise NetlistError(f"job {job!r}: ngspice rejected the netlist: {_summary(detail)}")


def raise_for_run(job: str, lines: Sequence[Line]) -> None:
    """Raise ConvergenceError, NetlistError or SimulationError if the run of `job` failed."""
    texts = [text for _, text in lines]
    if any(_NOT_STARTED.search(text) for text in texts):
        raise NetlistError(f"job {job!r}: no analysis ran; add an analysis card such as .op, .dc or .tran")
    gave_up = any(_GAVE_UP.search(text) for text in texts)
    errors = [text for text in texts if _ERROR.search(text)]
    if gave_up or any(re.search(r"no convergence|timestep too small", t, re.IGNORECASE) for t in errors):
        detail = [text for text in texts if _CONVERGENCE_WORDS.search(text)]
        raise ConvergenceError(f"job {job!r}: ngspice did not converge: {_summary(detail)}")
    if errors:
        raise SimulationError(f"job {job!r}: ngspice reported an error: {_summary(errors)}")
