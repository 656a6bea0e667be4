"""Trainers and regularizers: every classic remedy for overfitting as a knob.

``from augkit import train as T``; see ``docs/study/report.md`` for the measured study.
"""

from .curve import LearningCurve, RunResult, learning_curve
from .models import build_cnn, count_params
from .plots import plot_bars, plot_history, plot_learning_curve
from .regularize import EarlyStopping, Penalty, Standardize
from .trainer import History, Trainer

__all__ = [
    "build_cnn",
    "count_params",
    "Penalty",
    "EarlyStopping",
    "Standardize",
    "Trainer",
    "History",
    "plot_history",
    "plot_learning_curve",
    "plot_bars",
    "learning_curve",
    "LearningCurve",
    "RunResult",
]
