"""The cost report's picture: per-layer energy (stacked by component), latency and area (cost.png)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sim.figures import pyplot, save_png


def cost_chart(report: dict[str, Any], path: str | Path) -> Path:
    """Three bar charts over the layers of ``report`` (`compiler.cost.cost_report`), written atomically."""
    plt = pyplot()
    layers = [lc for lc in report["layers"] if lc["energy_total_j"] > 0 or lc["area_m2"] > 0]
    names = [lc["name"] for lc in layers]
    x = np.arange(len(layers))
    parts = sorted({k for lc in layers for k in lc["energy_j"]})
    fig, axes = plt.subplots(3, 1, figsize=(max(6.0, 0.22 * len(layers) + 2), 8.5), sharex=True)
    bottom = np.zeros(len(layers))
    for part in parts:
        e = np.array([lc["energy_j"].get(part, 0.0) for lc in layers])
        axes[0].bar(x, e, bottom=bottom, label=part)
        bottom += e
    total = report["total"]
    tops = total.get("tops_per_w")
    axes[0].set_ylabel("energy per sample (J)")
    axes[0].set_title(f"{report['target']}: {total['energy_j']:.3g} J, {total['latency_s']:.3g} s, "
                      f"{total['area_m2'] * 1e6:.3g} mm² per inference"
                      + (f"\n{tops:.3g} TOPS/W (IBM 2023: {report['references']['ibm_2023_tops_per_w']})" if tops else ""),
                      fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].bar(x, [lc["latency_s"] for lc in layers], color="tab:gray")
    axes[1].set_ylabel("latency (s)")
    axes[2].bar(x, [lc["area_m2"] * 1e6 for lc in layers], color="tab:green")
    axes[2].set_ylabel("area (mm²)")
    axes[2].set_xticks(x)
    axes[2].set_xticklabels(names, rotation=90, fontsize=6)
    return save_png(fig, path)
