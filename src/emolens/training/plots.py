"""PNG plots of training curves and confusion matrices.

Figures are made with ``matplotlib.figure.Figure`` and saved directly: no pyplot, so no
backend is chosen for the caller's process and nothing is kept in pyplot's figure registry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emolens.labels import EMOTIONS


def plot_curves(history: list[dict], path: Path) -> None:
    """Loss and accuracy per epoch, train vs validation."""
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_acc.plot(epochs, [h["train_acc"] for h in history], label="train (augmented)")
    ax_acc.plot(epochs, [h["val_acc"] for h in history], label="validation")
    if all(h.get("val_acc_mirror") is not None for h in history):
        ax_acc.plot(epochs, [h["val_acc_mirror"] for h in history], label="validation, with mirror")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_confusion(cm: np.ndarray, path: Path, *, title: str = "", labels: tuple[str, ...] = EMOTIONS) -> None:
    """Row-normalised confusion matrix (recall on the diagonal) with counts."""
    from matplotlib.figure import Figure

    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.subplots()
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}\n({cm[i, j]})",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
