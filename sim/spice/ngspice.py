"""The process's one ngspice (shared library): load a deck, run it, return its vectors, clean up.

ngspice keeps its state in C globals, so a process holds one instance and calls it from one
thread at a time; parallel runs use one process per instance (see `sim.spice.pool`). After every
run the circuit is removed (`remcirc`) and all plots destroyed so memory does not grow.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass

import numpy as np
from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi
from PySpice.Spice.NgSpice.SimulationType import SIMULATION_TYPE

from sim.spice import diagnose, locate
from sim.spice.diagnose import Line
from sim.spice.errors import NetlistError, SimulationError

_log = logging.getLogger(__name__)

_END_CARD = re.compile(r"^\s*\.end\s*$", re.IGNORECASE | re.MULTILINE)
_CONSTANTS_PLOT = "const"


class _Shared(NgSpiceShared):
    """PySpice's binding with console lines collected, not judged: ngspice's notes on stderr are no errors."""

    def __init__(self, library: str) -> None:
        self._kelvin_library = library
        self.transcript: list[Line] = []
        self.exit_status: int | None = None
        super().__init__(ngspice_id=0, send_data=False, verbose=False)

    @property
    def library_path(self) -> str:
        """The located library, instead of PySpice's guess of 'libngspice.so' (absent without -dev)."""
        return self._kelvin_library

    @staticmethod
    def _send_char(message_c, ngspice_id, user_data) -> int:  # noqa: ANN001 - cffi callback
        """Record one console line; PySpice would flag every stderr 'Note:' as an error."""
        self = ffi.from_handle(user_data)
        stream, _, text = ffi.string(message_c).decode("utf-8", "replace").partition(" ")
        if stream == "stdout":
            self._stdout.append(text)
        elif stream == "stderr":
            self._stderr.append(text)
        else:  # progress such as " Reference value : 1e-09\r"
            return 0
        self.transcript.append((stream, text))
        _log.debug("ngspice %s: %s", stream, text)
        return 0

    @staticmethod
    def _exit(exit_status, immediate_unloading, quit_exit, ngspice_id, user_data) -> int:  # noqa: ANN001
        """Remember that ngspice asked to exit: its state is then unusable for further runs."""
        self = ffi.from_handle(user_data)
        self.exit_status = int(exit_status)
        _log.warning("ngspice requested exit with status %s", exit_status)
        return exit_status

    def _get_version(self) -> None:
        """Register the running version with PySpice's vector-type table (it stops at ngspice 34)."""
        super()._get_version()
        SIMULATION_TYPE.setdefault(self._ngspice_version, SIMULATION_TYPE["last"])


@dataclass(frozen=True, slots=True)
class RunOutput:
    """Vectors of one run (name -> float64 or complex128 array) and ngspice's console text."""

    vectors: dict[str, np.ndarray]
    log: str


class Ngspice:
    """Thin wrapper over the one ngspice instance of this process; calls are serialized by a lock."""

    def __init__(self, library: str | None = None) -> None:
        path = library or locate.library_path()
        locate.check_loadable(path)
        self._shared = _Shared(path)
        self._lib = self._shared._ngspice_shared
        self._lock = threading.Lock()
        self.last_log = ""
        self.version = str(self._shared.ngspice_version)
        self._command("set num_threads=1")  # BSIM3/4 OpenMP threads; parallelism comes from processes
        _log.debug("ngspice %s loaded from %s", self.version, path)

    @property
    def usable(self) -> bool:
        """False once ngspice asked to exit; the owning process should then be replaced."""
        return self._shared.exit_status is None

    def run(self, job: str, netlist: str) -> RunOutput:
        """Load `netlist` (a full deck ending in .end), run its analyses, return every vector."""
        self.last_log = ""
        if not _END_CARD.search(netlist):
            raise NetlistError(f"job {job!r}: the netlist has no .end card")
        with self._lock:
            if not self.usable:
                raise SimulationError(f"job {job!r}: ngspice exited earlier in this process; start a new one")
            self._shared.transcript = []
            try:
                return RunOutput(self._load_and_run(job, netlist), self._log_text())
            finally:
                self.last_log = self._log_text()
                self._command("remcirc")
                self._command("destroy all")
                self._lib.ngSpice_Command(ffi.NULL)  # frees ngspice's command history

    def plot_names(self) -> list[str]:
        """Names of the plots ngspice holds (only 'const' between runs)."""
        return _strings(self._lib.ngSpice_AllPlots())

    def _load_and_run(self, job: str, netlist: str) -> dict[str, np.ndarray]:
        """Load, check, run, check, fetch."""
        try:
            self._shared.load_circuit(netlist)
        except NameError as exc:  # PySpice's report of a non-zero ngSpice_Circ code
            raise NetlistError(f"job {job!r}: ngspice refused the netlist ({exc})") from exc
        diagnose.raise_for_load(job, self._shared.transcript)
        loaded = len(self._shared.transcript)
        code = self._command("run")
        diagnose.raise_for_run(job, self._shared.transcript[loaded:])
        if code:
            raise SimulationError(f"job {job!r}: ngspice 'run' returned {code}")
        return self._vectors(job)

    def _command(self, command: str) -> int:
        """Send one console command; the return code is ngspice's."""
        return int(self._lib.ngSpice_Command(command.encode("ascii")))

    def _log_text(self) -> str:
        """The console lines of the current job, in order."""
        return "\n".join(text for _, text in self._shared.transcript)

    def _vectors(self, job: str) -> dict[str, np.ndarray]:
        """Last analysis's vectors by bare name; earlier analyses' ones as 'op1.out' and so on."""
        plots = [name for name in self.plot_names() if name != _CONSTANTS_PLOT]
        if not plots:
            raise SimulationError(f"job {job!r}: ngspice produced no results")
        current = ffi.string(self._lib.ngSpice_CurPlot()).decode()
        vectors: dict[str, np.ndarray] = {}
        for plot in plots:
            for name in _strings(self._lib.ngSpice_AllVecs(plot.encode())):
                key = name if plot == current else f"{plot}.{name}"
                vectors[key] = self._vector(f"{plot}.{name}")
        return vectors

    def _vector(self, qualified: str) -> np.ndarray:
        """Copy one vector out of ngspice's memory (it is freed by 'destroy')."""
        info = self._lib.ngGet_Vec_Info(qualified.encode())
        if info == ffi.NULL:
            raise SimulationError(f"ngspice lost vector {qualified}")
        length = int(info.v_length)
        if length == 0:
            return np.empty(0)
        if info.v_compdata == ffi.NULL:
            return np.frombuffer(ffi.buffer(info.v_realdata, length * 8), dtype=np.float64).copy()
        pairs = np.frombuffer(ffi.buffer(info.v_compdata, length * 16), dtype=np.float64)
        return pairs[0::2] + 1j * pairs[1::2]


def _strings(array) -> list[str]:  # noqa: ANN001 - cffi char**
    """A NULL-terminated C array of strings as Python strings."""
    out: list[str] = []
    if array == ffi.NULL:
        return out
    while array[len(out)] != ffi.NULL:
        out.append(ffi.string(array[len(out)]).decode())
    return out
