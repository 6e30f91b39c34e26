"""Where Kelvin's data folder ``models/`` is: a source checkout, an installed wheel, or $KELVIN_MODELS."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from circuits.errors import InputError


def _candidates() -> list[Path]:
    here = Path(__file__).resolve().parent
    found = []
    if os.environ.get("KELVIN_MODELS"):
        found.append(Path(os.environ["KELVIN_MODELS"]))
    found.append(here.parent / "models")  # source checkout or editable install
    for prefix in (sys.prefix, sysconfig.get_path("data")):
        found.append(Path(prefix) / "share" / "kelvin" / "models")
    # wheel installed with --prefix/--target: <prefix>/lib/pythonX.Y/site-packages/circuits
    found.append(here.parents[3] / "share" / "kelvin" / "models" if len(here.parents) > 3 else here)
    return found


def models_dir() -> Path:
    """The models/ folder; InputError listing the places searched if there is none."""
    tried = _candidates()
    for path in tried:
        if (path / "README.md").is_file():
            return path
    raise InputError("Kelvin's models/ folder was not found; searched: " + ", ".join(map(str, tried))
                     + " (set KELVIN_MODELS to its path)")


def model_file(*parts: str) -> Path:
    """A file under models/, e.g. ``model_file("examples", "digits_mlp.onnx")``."""
    path = models_dir().joinpath(*parts)
    if not path.exists():
        raise InputError(f"{path}: not found in Kelvin's models folder")
    return path
