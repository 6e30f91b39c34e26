"""Training-curve pictures (matplotlib, no display needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sim.figures import pyplot, save_png


def training_curves(history: list[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> Path:
    """Loss and accuracy per epoch (train and test) as one PNG, written atomically."""
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax1.plot(epochs, [h["test_loss"] for h in history], label="test")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    if any(h.get("test_accuracy") is not None for h in history):
        ax2.plot(epochs, [h["train_accuracy"] for h in history], label="train")
        ax2.plot(epochs, [h["test_accuracy"] for h in history], label="test")
        ax2.set_ylabel("accuracy")
        ax2.legend()
    ax2.set_xlabel("epoch")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_png(fig, path, dpi=110)
