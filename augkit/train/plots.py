"""Plots: train-vs-validation curves, learning curves, bar charts (matplotlib, no pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .trainer import History

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .curve import LearningCurve

__all__ = ["plot_history", "plot_learning_curve", "plot_bars", "new_figure"]


def new_figure(**kwargs: Any) -> Figure:
    """A matplotlib ``Figure`` on its own Agg canvas: no pyplot, no global backend change.

    matplotlib is an optional dependency (``pip install 'augkit[study]'``); imported here, on first use.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'augkit[study]' (or 'augkit[bench]')") from None
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_history(history: History, path: str | Path, title: str | None = None) -> Path:
    """Train vs validation loss and accuracy per epoch; the kept (best) and stop epochs marked."""
    if not isinstance(history, History) or not history.train_loss:
        raise ValueError("plot_history needs a History with at least one epoch")
    fig = new_figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2)
    ep = history.epochs
    for ax, key in zip(axes, ("loss", "acc"), strict=True):
        ax.plot(ep, getattr(history, f"train_{key}"), label=f"train {key}")
        if getattr(history, f"val_{key}"):
            ax.plot(ep, getattr(history, f"val_{key}"), label=f"validation {key}")
        if history.early_stopped:
            ax.axvline(history.stopped_epoch, color="red", ls="--", lw=1, label=f"stopped (epoch {history.stopped_epoch})")
        if history.best_epoch != history.stopped_epoch:
            ax.axvline(history.best_epoch, color="green", ls=":", lw=1.5, label=f"weights kept (epoch {history.best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_yscale("log")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_learning_curve(curve: LearningCurve, path: str | Path, title: str = "Error vs training-set size") -> Path:
    """Train / validation / test error (mean ± std over seeds) against the number of training images."""
    fig = new_figure(figsize=(5.5, 4))
    ax = fig.subplots()
    for split in ("train", "val", "test"):
        if split == "test" and curve.runs[0][0].test_acc is None:
            continue
        m, s = curve.error(split)
        ax.errorbar(curve.sizes, 100 * m, yerr=100 * s, marker="o", capsize=3, label=f"{split} error")
    ax.set_xscale("log")
    ax.set_xlabel("training images")
    ax.set_ylabel("error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_bars(
    names: Sequence[str], means: Sequence[float], stds: Sequence[float], path: str | Path,
    ylabel: str = "test accuracy (%)", reference: float | None = None,
) -> Path:
    """A bar per arm with ±std error bars; ``reference`` draws a horizontal line (the baseline)."""
    fig = new_figure(figsize=(max(6.0, 0.6 * len(names)), 4))
    ax = fig.subplots()
    ax.bar(range(len(names)), means, yerr=stds, capsize=3, color="tab:blue", alpha=0.8)
    if reference is not None:
        ax.axhline(reference, color="black", ls="--", lw=1, label="baseline")
        ax.legend()
    lo = min(m - s for m, s in zip(means, stds, strict=True))
    ax.set_ylim(max(0.0, lo - 3), min(100.5, max(m + s for m, s in zip(means, stds, strict=True)) + 1))
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
