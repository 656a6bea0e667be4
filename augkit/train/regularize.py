"""Regularizers as knobs: weight penalties, early stopping, input standardization."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..ops import Normalize

__all__ = ["Penalty", "EarlyStopping", "Standardize", "MONITORS", "penalized_parameters"]

# what a Trainer can monitor; "loss" is minimized, "acc" maximized
MONITORS = ("val_loss", "val_acc", "train_loss", "train_acc")

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def _check_number(name: str, v: float, *, low: float = 0.0) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < low:
        raise ValueError(f"{name} must be a finite number >= {low:g}, got {v!r}")
    return float(v)


def penalized_parameters(model: nn.Module) -> list[Tensor]:
    """The weights a penalty acts on: tensors with dim >= 2 outside normalization layers.

    Biases (1-D) and the scale/shift of BatchNorm, GroupNorm, LayerNorm are never penalized.
    """
    skip = {id(p) for m in model.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters(recurse=False)}
    return [p for p in model.parameters() if p.requires_grad and p.dim() >= 2 and id(p) not in skip]


@dataclass(frozen=True)
class Penalty:
    """L1 and L2 weight penalties: ``l1 * sum|w| + l2 * sum w**2`` over ``penalized_parameters``.

    Note the L2 term has no 1/2 factor (Keras convention); ``l2`` here equals
    ``weight_decay / 2`` of plain SGD.

    Args:
        l1: L1 strength, >= 0.
        l2: L2 strength, >= 0.
    """

    l1: float = 0.0
    l2: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "l1", _check_number("Penalty.l1", self.l1))
        object.__setattr__(self, "l2", _check_number("Penalty.l2", self.l2))

    def __call__(self, model: nn.Module) -> Tensor:
        """Differentiable scalar penalty of ``model``'s weights (0 if both strengths are 0)."""
        params = penalized_parameters(model)
        if not params:
            return torch.zeros(())
        total = torch.zeros((), device=params[0].device)
        if self.l1:
            total = total + self.l1 * sum(p.abs().sum() for p in params)
        if self.l2:
            total = total + self.l2 * sum(p.square().sum() for p in params)
        return total


@dataclass
class EarlyStopping:
    """Stop when ``monitor`` has not improved for ``patience`` epochs; keep the best weights.

    Call ``update(value, model)`` once per epoch. A value improves on the best when it is
    lower by more than ``min_delta`` (``*_loss``) or higher by more than ``min_delta`` (``*_acc``).
    Epochs count from 1; ``best_epoch``/``best_value`` describe the best one so far.

    Args:
        monitor: one of ``MONITORS``.
        patience: epochs without improvement before stopping, >= 1.
        min_delta: smallest change that counts as improvement, >= 0.
        restore_best: the Trainer loads the best weights back when training ends.
    """

    monitor: str = "val_loss"
    patience: int = 10
    min_delta: float = 0.0
    restore_best: bool = True
    best_epoch: int | None = field(default=None, init=False)
    best_value: float | None = field(default=None, init=False)
    epoch: int = field(default=0, init=False)
    _best_state: dict[str, Tensor] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise ValueError(f"EarlyStopping.monitor must be one of {list(MONITORS)}, got {self.monitor!r}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"EarlyStopping.patience must be an int >= 1, got {self.patience!r}")
        self.min_delta = _check_number("EarlyStopping.min_delta", self.min_delta)

    @property
    def mode(self) -> str:
        return "max" if self.monitor.endswith("acc") else "min"

    def reset(self) -> None:
        self.best_epoch, self.best_value, self.epoch, self._best_state = None, None, 0, None

    def update(self, value: float, model: nn.Module | None = None) -> bool:
        """Record this epoch's ``value``; snapshot ``model`` if it is the best. Returns should_stop."""
        value = float(value)
        if math.isnan(value):
            raise ValueError(f"EarlyStopping.update: {self.monitor} is NaN at epoch {self.epoch + 1}")
        self.epoch += 1
        sign = 1.0 if self.mode == "min" else -1.0
        if self.best_value is None or sign * (self.best_value - value) > self.min_delta:
            self.best_value, self.best_epoch = value, self.epoch
            if model is not None:
                self._best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        assert self.best_epoch is not None  # set above on the first update
        return self.epoch - self.best_epoch >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Load the best weights seen by ``update`` back into ``model``."""
        if self._best_state is None:
            raise RuntimeError("EarlyStopping.restore: no weights recorded; call update(value, model) first")
        model.load_state_dict(copy.copy(self._best_state))


@dataclass(frozen=True)
class Standardize:
    """Per-channel mean and std of a training set, in [0, 1] units; applied as ``ak.Normalize``.

    Fit it on the training images only; the same op then standardizes validation and test
    inputs at evaluation time.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, images: Tensor) -> Standardize:
        """Statistics of ``images``: (N, C, H, W) uint8 or float in [0, 1]."""
        if not isinstance(images, Tensor):
            raise TypeError(f"Standardize.fit: images must be a torch.Tensor (N,C,H,W), got {type(images).__name__}")
        if images.dim() != 4 or images.shape[0] == 0:
            raise ValueError(f"Standardize.fit: images must be (N,C,H,W) with N >= 1, got shape {tuple(images.shape)}")
        if images.dtype == torch.uint8:
            x = images.double() / 255
        elif images.dtype.is_floating_point:
            x = images.double()
            lo, hi = float(x.min()), float(x.max())
            if lo < 0 or hi > 1:
                raise ValueError(f"Standardize.fit: float images must be in [0, 1], got min {lo:.4g}, max {hi:.4g}")
        else:
            raise TypeError(f"Standardize.fit: images must be uint8 or float in [0, 1], got dtype {images.dtype}")
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3), unbiased=False)
        if bool((std <= 0).any()):
            raise ValueError(f"Standardize.fit: every channel must vary, got std {std.tolist()}")
        return cls(tuple(mean.tolist()), tuple(std.tolist()))

    def to_op(self) -> Normalize:
        """``ak.Normalize(mean, std)``: put it last in the pipeline so it runs on the device."""
        return Normalize(mean=self.mean, std=self.std)
