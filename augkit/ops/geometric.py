"""Geometric op specs: ops that move pixels. Each backend turns a run of them into one warp."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from torch import Tensor

from ..random import Draw
from .base import Op, check_number, check_range, uniform

__all__ = ["HorizontalFlip", "VerticalFlip", "Zoom"]


@dataclass(frozen=True)
class HorizontalFlip(Op):
    """Reverse the W axis of each sample selected with probability ``p``."""

    kind: ClassVar[str] = "geometric"
    p: float = 0.5


@dataclass(frozen=True)
class VerticalFlip(Op):
    """Reverse the H axis of each sample selected with probability ``p``."""

    kind: ClassVar[str] = "geometric"
    p: float = 0.5


@dataclass(frozen=True)
class Zoom(Op):
    """Scale about the image centre by s ~ U(lo, hi): s > 1 zooms in, s < 1 zooms out.

    Bilinear; the area brought in from outside the image is ``fill`` (in [0, 1] units).
    ``scale`` lies in [1e-3, 1e3].
    """

    kind: ClassVar[str] = "geometric"
    scale: tuple[float, float] = (0.8, 1.2)
    fill: float = field(default=0.0, kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scale", check_range("Zoom.scale", self.scale, low=1e-3, high=1e3))
        object.__setattr__(self, "fill", check_number("Zoom.fill", self.fill, low=0.0, high=1.0))

    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(2)
        return {"apply": u[0] < self.p, "scale": uniform(u[1], *self.scale)}
