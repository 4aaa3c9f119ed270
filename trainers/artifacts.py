"""What a run leaves in ``$MLSEL_HOME/runs/<run_id>/``.

::

    model.pt            best weights (state dict of backbone + head) and how to rebuild
    classes.json        class names, in label-index order
    preprocessing.json  image size, resize, normalisation mean/std
    config.json         the Config of the run
    metrics.json        final validation metrics, confusion matrix, curve
    confusion.png       confusion matrix plot
    curve.png           train/val loss and validation score per epoch
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.records import Config, EpochRecord

if TYPE_CHECKING:
    import numpy as np

__all__ = ["plot_confusion", "plot_curve", "write_atomically", "write_json", "write_run_files"]

logger = logging.getLogger(__name__)


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(temporary path)``, then rename it to ``path``: a kill or a full disk
    never leaves half a file under the final name (the temporary one is removed)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON (atomically)."""
    text = json.dumps(data, indent=2, default=str)
    write_atomically(path, lambda tmp: tmp.write_text(text))


def plot_curve(path: Path, curve: Sequence[EpochRecord], score_name: str = "macro F1") -> None:
    """Loss and score per epoch as a PNG (matplotlib Agg, no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    epochs = [r.epoch for r in curve]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for name in ("train_loss", "val_loss"):
        values = [getattr(r, name) for r in curve]
        if any(v is not None for v in values):
            ax1.plot(
                epochs,
                [float("nan") if v is None else v for v in values],
                marker="o",
                label=name.replace("_", " "),
            )
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax2.plot(
        epochs,
        [float("nan") if r.score is None else r.score for r in curve],
        marker="o",
        color="tab:green",
    )
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(f"validation {score_name}")
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def plot_confusion(path: Path, confusion: np.ndarray, classes: Sequence[str]) -> None:
    """The confusion matrix (rows = true class) as a PNG, with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(classes)
    side = min(12.0, 2.0 + 0.5 * n)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(n), labels=list(classes), rotation=90)
    ax.set_yticks(range(n), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        top = confusion.max() or 1
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    str(int(confusion[i, j])),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if confusion[i, j] > top / 2 else "black",
                )
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def write_run_files(
    folder: Path,
    *,
    config: Config,
    classes: Sequence[str],
    preprocessing: Mapping[str, Any],
    metrics: Mapping[str, float],
    confusion: np.ndarray | None,
    curve: Sequence[EpochRecord],
    score_name: str = "macro F1",
) -> None:
    """Write the JSON files and the plots of a run (weights are saved by the backend)."""
    from dataclasses import asdict

    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "classes.json", list(classes))
    write_json(folder / "preprocessing.json", dict(preprocessing))
    write_json(folder / "config.json", config.to_dict())
    write_json(
        folder / "metrics.json",
        {
            "metrics": dict(metrics),
            "confusion": None if confusion is None else confusion.tolist(),
            "curve": [asdict(r) for r in curve],
        },
    )
    if curve:
        plot_curve(folder / "curve.png", curve, score_name)
    if confusion is not None:
        plot_confusion(folder / "confusion.png", confusion, classes)
