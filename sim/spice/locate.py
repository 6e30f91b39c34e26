"""Find the ngspice shared library, so a missing install fails with advice instead of a dlopen trace."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from pathlib import Path

from sim.spice.errors import NgspiceMissingError

_log = logging.getLogger(__name__)

ENV_VAR = "NGSPICE_LIBRARY_PATH"
"""Environment variable naming the library file; PySpice reads the same one."""

_KNOWN_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libngspice.so.0",
    "/usr/lib/aarch64-linux-gnu/libngspice.so.0",
    "/usr/lib/libngspice.so.0",
    "/usr/local/lib/libngspice.so.0",
    "/usr/local/lib/libngspice.so",
    "/opt/homebrew/lib/libngspice.dylib",
    "/usr/local/lib/libngspice.dylib",
)

INSTALL_HINT = (
    "install the Debian packages ngspice libngspice0 libngspice0-dev "
    "(apt-get install ngspice libngspice0 libngspice0-dev, or run `make demo` / `make test`, "
    f"which install them), or set {ENV_VAR} to the libngspice file"
)


def library_path() -> str:
    """Return a path or soname of libngspice that the dynamic loader can open."""
    override = os.environ.get(ENV_VAR)
    if override:
        # PySpice's convention puts "{}" where a parallel instance id would go.
        path = override.replace("{}", "")  # not str.format: any other brace in a path is literal
        if not Path(path).is_file():
            raise NgspiceMissingError(f"{ENV_VAR}={override} is not a file: {INSTALL_HINT}")
        return path
    found = ctypes.util.find_library("ngspice")
    if found:
        return found
    for path in _KNOWN_PATHS:
        if Path(path).is_file():
            return path
    raise NgspiceMissingError(f"libngspice not found by the loader nor in {', '.join(_KNOWN_PATHS)}: {INSTALL_HINT}")


def check_loadable(path: str) -> None:
    """Open the library once with ctypes so a broken file fails before PySpice registers its C API."""
    try:
        ctypes.CDLL(path)
    except OSError as exc:
        raise NgspiceMissingError(f"cannot load libngspice from {path} ({exc}): {INSTALL_HINT}") from exc
    _log.debug("libngspice loadable from %s", path)
