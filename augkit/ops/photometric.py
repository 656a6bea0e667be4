"""Photometric op specs: ops that change values and leave pixels where they are."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from ..random import Draw
from .base import FLOAT32_MAX, Op, check_range, uniform

__all__ = ["Contrast", "GaussianNoise", "Normalize"]


@dataclass(frozen=True)
class Contrast(Op):
    """Blend with the image's mean grey level: out = clamp(m + f * (x - m), 0, 1), f ~ U(lo, hi).

    ``m`` is the per-image mean of ITU-R 601 luma for 3 channels, of the channel itself for 1.
    One number c means (max(0, 1 - c), 1 + c), as torchvision's ``ColorJitter(contrast=c)``.
    """

    factor: tuple[float, float] = (0.8, 1.2)

    def __post_init__(self) -> None:
        super().__post_init__()
        factor = check_range("Contrast.factor", self.factor, low=0.0, high=1e6, scalar=_jitter, scalar_doc="(max(0, 1 - x), 1 + x)")
        object.__setattr__(self, "factor", factor)

    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(2)
        return {"apply": u[0] < self.p, "factor": uniform(u[1], *self.factor)}


def _jitter(x: float) -> tuple[float, float]:
    return (max(0.0, 1.0 - x), 1.0 + x)


@dataclass(frozen=True)
class GaussianNoise(Op):
    """Additive noise: out = clamp(x + sigma * N(0, 1), 0, 1), sigma ~ U(lo, hi) in [0, 1] units.

    Independent per pixel and channel. ``seed`` (n,) int64 keys each sample's noise field,
    so replaying the params replays the noise exactly. One number s means (0, s).
    """

    std: tuple[float, float] = (0.0, 0.05)

    def __post_init__(self) -> None:
        super().__post_init__()
        std = check_range("GaussianNoise.std", self.std, low=0.0, high=1e3, scalar=lambda s: (0.0, s), scalar_doc="(0, x)")
        object.__setattr__(self, "std", std)

    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(2)
        return {"apply": u[0] < self.p, "std": uniform(u[1], *self.std), "seed": rng.bits31()}


@dataclass(frozen=True)
class Normalize(Op):
    """Per channel (x - mean) / std; deterministic, not clamped. Must be the last op."""

    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            if isinstance(self.mean, (str, bytes)) or isinstance(self.std, (str, bytes)):
                raise TypeError
            mean = tuple(float(v) for v in self.mean)
            std = tuple(float(v) for v in self.std)
        except (TypeError, ValueError):
            raise ValueError(f"Normalize.mean and .std must be sequences of numbers, got {self.mean!r}, {self.std!r}") from None
        if len(mean) != len(std) or not mean:
            raise ValueError(f"Normalize.mean and .std must have the same non-zero length, got {len(mean)} and {len(std)}")
        if any(not (math.isfinite(m) and abs(m) <= FLOAT32_MAX) for m in mean):
            raise ValueError(f"Normalize.mean must be finite for every channel, got {mean!r}")
        # 1 / std must be finite in float32 too (std = 1e-46 rounds to 0 there)
        if any(not (math.isfinite(s) and 1e-30 <= s <= FLOAT32_MAX) for s in std):
            raise ValueError(f"Normalize.std must be > 0 (at least 1e-30) and finite for every channel, got {std!r}")
        if self.p != 1.0:
            raise ValueError(f"Normalize.p must be 1.0 (Normalize is deterministic), got {self.p!r}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
