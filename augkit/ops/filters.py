"""Photometric ops that read neighbours or regions: Sharpness, GaussianBlur, Erasing."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import Tensor

from ..random import Draw
from .base import Op, array_api, check_number, check_range, columns, uniform
from .photometric import _factor

__all__ = ["Sharpness", "GaussianBlur", "Erasing", "ERASE_ATTEMPTS"]

ERASE_ATTEMPTS = 10  # as torchvision RandomErasing: 10 tries, then no erase


@dataclass(frozen=True)
class Sharpness(Op):
    """Blend with the SMOOTH-filtered image (3x3 [[1,1,1],[1,5,1],[1,1,1]] / 13, border pixels kept).

    f ~ U(lo, hi): 0 gives the smoothed image, 1 the input, > 1 sharpens (PIL ``ImageEnhance.Sharpness``,
    torchvision ``adjust_sharpness``). One number s means (max(0, 1 - s), 1 + s).
    """

    factor: tuple[float, float] = (0.5, 1.5)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "factor", _factor("Sharpness.factor", self.factor))

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(2)
        return {"apply": u[0] < self.p, "factor": uniform(u[1], *self.factor)}


@dataclass(frozen=True)
class GaussianBlur(Op):
    """Separable Gaussian blur, sigma ~ U(lo, hi) per sample (pixels), one kernel size for the batch.

    ``kernel_size`` (odd, >= 3) defaults to ``round(6 hi + 1) | 1``. Taps are the Gaussian sampled
    at integer offsets, normalized; borders reflect without repeating the edge pixel (OpenCV's
    default). One number s means (s, s).
    """

    sigma: tuple[float, float] = (0.1, 2.0)
    kernel_size: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        s = check_range("GaussianBlur.sigma", self.sigma, low=0.0, high=100.0, strict=True, scalar=lambda s: (s, s), scalar_doc="(x, x)")
        object.__setattr__(self, "sigma", s)
        k = self.kernel_size
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 3 or k % 2 == 0 or k > 1001):
            raise ValueError(f"GaussianBlur.kernel_size must be None or an odd int in [3, 1001], got {k!r}")

    @property
    def size(self) -> int:
        """The kernel size in use: ``kernel_size`` or ``round(6 sigma_hi + 1) | 1``."""
        if self.kernel_size is not None:
            return self.kernel_size
        return max(3, int(round(6 * self.sigma[1] + 1)) | 1)

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(2)
        return {"apply": u[0] < self.p, "sigma": uniform(u[1], *self.sigma)}


@dataclass(frozen=True)
class Erasing(Op):
    """Fill one box per sample with ``value``: torchvision ``RandomErasing``'s box sampling.

    Attempt a: erase fraction s ~ U(scale), log aspect r ~ U(log ratio); the box is
    round(sqrt(s H W e^r)) high and round(sqrt(s H W / e^r)) wide; the first of 10 attempts that
    fits strictly inside the image is placed at top ~ U{0..H-h}, left ~ U{0..W-w}; none fits:
    no erase. Params (size-free, resolved per image size): ``area``, ``log_ratio`` (B, 10),
    ``top``, ``left`` (B,) uniforms in [0, 1).
    """

    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    value: float = 0.0
    p: float = field(default=0.5, kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scale", check_range("Erasing.scale", self.scale, low=0.0, high=1.0, strict=True))
        object.__setattr__(self, "ratio", check_range("Erasing.ratio", self.ratio, low=0.0, high=1e3, strict=True))
        object.__setattr__(self, "value", check_number("Erasing.value", self.value, low=0.0, high=1.0))

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(3 + 2 * ERASE_ATTEMPTS)
        lr = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        area = columns(uniform(u[3 : 3 + ERASE_ATTEMPTS], *self.scale))  # (n, A)
        log_ratio = columns(uniform(u[3 + ERASE_ATTEMPTS :], *lr))
        return {"apply": u[0] < self.p, "area": area, "log_ratio": log_ratio, "top": u[1], "left": u[2]}

