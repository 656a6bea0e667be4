"""Learning curves: error against training-set size."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .trainer import Data, History, Trainer, check_data

__all__ = ["RunResult", "LearningCurve", "learning_curve", "check_fraction", "subset_indices"]


def check_fraction(name: str, f: float) -> float:
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not math.isfinite(f) or not 0.0 < f <= 1.0:
        raise ValueError(f"{name} must be a number in (0, 1], got {f!r}")
    return float(f)


def subset_indices(n: int, fraction: float, seed: int = 0) -> Tensor:
    """The first ``max(1, round(fraction * n))`` of a permutation seeded by ``seed``: nested across fractions."""
    check_fraction("fraction", fraction)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: max(1, round(fraction * n))]


@dataclass
class RunResult:
    """One training run: clean accuracies at the end (after any restore), epochs and wall time."""

    train_acc: float
    val_acc: float
    test_acc: float | None
    epochs: int
    best_epoch: int
    wall_time: float
    history: History = field(repr=False)


def evaluate_run(trainer: Trainer, hist: History, train: Data, val: Data, test: Data | None) -> RunResult:
    _, tr = trainer.evaluate(train)
    _, va = trainer.evaluate(val)
    te = trainer.evaluate(test)[1] if test is not None else None
    return RunResult(tr, va, te, hist.stopped_epoch, hist.best_epoch, hist.wall_time, hist)


@dataclass
class LearningCurve:
    """Runs per training fraction; ``sizes[i]`` images were used for ``fractions[i]``."""

    fractions: list[float]
    sizes: list[int]
    runs: list[list[RunResult]]

    def error(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std over seeds of the error (1 - accuracy) on ``split``: train, val or test."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        errs = [[1.0 - getattr(r, f"{split}_acc") for r in runs] for runs in self.runs]
        return np.array([np.mean(e) for e in errs]), np.array([np.std(e) for e in errs])


def learning_curve(
    fractions: Sequence[float],
    train_data: Data,
    val_data: Data,
    build: Callable[[Data, int], Trainer],
    seeds: Sequence[int] = (0,),
    test_data: Data | None = None,
    path: str | Path | None = None,
    subset_seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> LearningCurve:
    """Train on growing nested subsets of ``train_data`` and measure error at each size.

    Args:
        fractions: training fractions, each in (0, 1]; subsets are nested (see ``subset_indices``).
        train_data, val_data, test_data: (images (N,C,H,W), labels (N,)) pairs.
        build: ``build(train_subset, seed) -> Trainer``, a fresh model each call (fit any
            ``Standardize`` on ``train_subset`` inside it).
        seeds: one run per seed and fraction.
        path: if given, the curve is plotted there (``plot_learning_curve``).
    """
    fractions = [check_fraction(f"fractions[{i}]", f) for i, f in enumerate(fractions)]
    if not fractions:
        raise ValueError("fractions must hold at least one value in (0, 1]")
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    x, y = check_data("train_data", train_data)
    val = check_data("val_data", val_data)
    test = check_data("test_data", test_data) if test_data is not None else None
    sizes, runs = [], []
    for f in fractions:
        idx = subset_indices(len(x), f, subset_seed)
        sub = (x[idx], y[idx])
        sizes.append(len(idx))
        per_seed = []
        for s in seeds:
            trainer = build(sub, s)
            hist = trainer.fit(sub, val)
            per_seed.append(evaluate_run(trainer, hist, sub, val, test))
            if log:
                r = per_seed[-1]
                log(f"fraction {f:g} ({len(idx)} images) seed {s}: train {r.train_acc:.3f} val {r.val_acc:.3f}"
                    + (f" test {r.test_acc:.3f}" if r.test_acc is not None else "") + f" ({r.wall_time:.1f} s)")
        runs.append(per_seed)
    curve = LearningCurve(fractions, sizes, runs)
    if path is not None:
        from .plots import plot_learning_curve

        plot_learning_curve(curve, path)
    return curve
