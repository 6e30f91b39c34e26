"""Pictures without a display: matplotlib's Agg backend, and PNGs written atomically.

Every plot Kelvin draws (training curves, the demo's report, the cost chart, the noise study)
goes through `pyplot` and `save_png`, so a killed run never leaves half a picture.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from circuits.files import write_bytes


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (imported only when a picture is drawn)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Lay ``fig`` out, write it to ``path`` atomically (`circuits.files.write_bytes`), and close it."""
    plt = pyplot()
    path = Path(path)
    try:
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    write_bytes(path, buf.getvalue())
    return path
