"""Pictures without a display: matplotlib's Agg backend, and PNGs written atomically.

Every plot Kelvin draws (training curves, the demo's report, the cost chart, the noise study)
goes through `pyplot` and `save_png`, so a killed run never leaves half a picture.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (imported only when a picture is drawn)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Lay ``fig`` out, write it to ``path`` through a temporary file and a rename, and close it."""
    plt = pyplot()
    path = Path(path)
    fd, tmp = tempfile.mkstemp(suffix=".png", prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        fig.tight_layout()
        fig.savefig(tmp, dpi=dpi)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
