"""Photometric op specs: ops that change values and leave pixels where they are."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, cast

from torch import Tensor

from ..random import Draw
from .base import FLOAT32_MAX, Op, array_api, check_range, uniform

__all__ = [
    "Contrast",
    "GaussianNoise",
    "Normalize",
    "Brightness",
    "Saturation",
    "Hue",
    "ColorJitter",
    "Gamma",
    "Grayscale",
    "Invert",
    "Solarize",
    "Posterize",
    "Equalize",
    "AutoContrast",
]


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

    @array_api
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

    @array_api
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


_JITTER_DOC = "(max(0, 1 - x), 1 + x)"
_BIG = 1e6  # the largest factor a range may reach (finite, far past any useful value)


def _factor(name: str, value: object) -> tuple[float, float]:
    """A (lo, hi) multiplicative factor range, lo >= 0, or one number x meaning (max(0, 1 - x), 1 + x)."""
    return check_range(name, value, low=0.0, high=_BIG, scalar=_jitter, scalar_doc=_JITTER_DOC)


def _hue(name: str, value: object) -> tuple[float, float]:
    return check_range(name, value, low=-0.5, high=0.5, scalar=lambda h: (-h, h), scalar_doc="(-x, x), 0 <= x <= 0.5")


@dataclass(frozen=True)
class _Factor(Op):
    """An op with one multiplicative factor f ~ U(lo, hi) per sample (param ``factor``)."""

    factor: tuple[float, float] = (0.8, 1.2)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "factor", _factor(f"{type(self).__name__}.factor", self.factor))

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(2)
        return {"apply": u[0] < self.p, "factor": uniform(u[1], *self.factor)}


@dataclass(frozen=True)
class Brightness(_Factor):
    """out = clamp(x * f, 0, 1), f ~ U(lo, hi): torchvision ``adjust_brightness``, PIL ``ImageEnhance.Brightness``.

    One number b means (max(0, 1 - b), 1 + b), as ``ColorJitter(brightness=b)``.
    """


@dataclass(frozen=True)
class Saturation(_Factor):
    """Blend with the ITU-R 601 grey image: out = clamp(g + f (x - g)), PIL ``ImageEnhance.Color``.

    f = 0 is grey, 1 the input. 1-channel images pass unchanged; 3 channels expected otherwise.
    """

    grey_channels: ClassVar[bool] = True


@dataclass(frozen=True)
class Hue(Op):
    """Rotate the hue by ``shift`` ~ U(lo, hi) of a full turn (HSV), torchvision ``adjust_hue``.

    ``shift`` lies in [-0.5, 0.5]; one number h means (-h, h). 1 channel passes unchanged.
    """

    grey_channels: ClassVar[bool] = True
    shift: tuple[float, float] = (-0.05, 0.05)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "shift", _hue("Hue.shift", self.shift))

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(2)
        return {"apply": u[0] < self.p, "shift": uniform(u[1], *self.shift)}


@dataclass(frozen=True)
class ColorJitter(Op):
    """Brightness, contrast, saturation, hue, in this fixed order, each factor drawn per sample.

    torchvision's conventions: a number b means (max(0, 1 - b), 1 + b) for the first three, h
    means (-h, h) for hue; a pair is (lo, hi). A component left at 0 (its identity) is skipped.
    Params: ``brightness``, ``contrast``, ``saturation`` (factors) and ``hue`` (shift), each (B,).
    """

    grey_channels: ClassVar[bool] = True
    brightness: tuple[float, float] | float = 0.0
    contrast: tuple[float, float] | float = 0.0
    saturation: tuple[float, float] | float = 0.0
    hue: tuple[float, float] | float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("brightness", "contrast", "saturation"):
            object.__setattr__(self, name, _factor(f"ColorJitter.{name}", getattr(self, name)))
        object.__setattr__(self, "hue", _hue("ColorJitter.hue", self.hue))

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(5)
        out = {"apply": u[0] < self.p}
        for k, name in enumerate(("brightness", "contrast", "saturation", "hue")):
            lo, hi = cast(tuple[float, float], getattr(self, name))  # a pair after __post_init__
            out[name] = uniform(u[k + 1], lo, hi)
        return out


@dataclass(frozen=True)
class Gamma(Op):
    """out = x ** g, g ~ U(lo, hi), 0 < lo: torchvision ``adjust_gamma`` (gain 1)."""

    gamma: tuple[float, float] = (0.8, 1.2)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "gamma", check_range("Gamma.gamma", self.gamma, low=0.0, high=1e3, strict=True))

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(2)
        return {"apply": u[0] < self.p, "gamma": uniform(u[1], *self.gamma)}


@dataclass(frozen=True)
class Grayscale(Op):
    """Every channel set to the ITU-R 601 luma (PIL ``convert("L")``); the channel count is kept."""

    grey_channels: ClassVar[bool] = True
    p: float = field(default=0.1, kw_only=True)


@dataclass(frozen=True)
class Invert(Op):
    """out = 1 - x."""

    p: float = field(default=0.5, kw_only=True)


@dataclass(frozen=True)
class Solarize(Op):
    """out = 1 - x where x >= t, else x; t ~ U(lo, hi) in [0, 1] (PIL ``ImageOps.solarize`` at 255 t).

    One number t means (t, t).
    """

    threshold: tuple[float, float] = (0.5, 0.5)

    def __post_init__(self) -> None:
        super().__post_init__()
        t = check_range("Solarize.threshold", self.threshold, low=0.0, high=1.0, scalar=lambda t: (t, t), scalar_doc="(x, x)")
        object.__setattr__(self, "threshold", t)

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(2)
        return {"apply": u[0] < self.p, "threshold": uniform(u[1], *self.threshold)}


@dataclass(frozen=True)
class Posterize(Op):
    """Keep the top ``bits`` ~ U{lo, ..., hi} (in 1..8) of each uint8 level round(255 x).

    PIL ``ImageOps.posterize``; 8 bits is the identity on uint8 data. One number b means (b, b).
    Param ``bits`` (B,) int64.
    """

    bits: tuple[int, int] = (4, 8)

    def __post_init__(self) -> None:
        super().__post_init__()
        b = check_range("Posterize.bits", self.bits, low=1, high=8, scalar=lambda b: (b, b), scalar_doc="(x, x)")
        if b != (int(b[0]), int(b[1])):
            raise ValueError(f"Posterize.bits must be whole numbers in [1, 8], got {self.bits!r}")
        object.__setattr__(self, "bits", (int(b[0]), int(b[1])))

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        apply = self._apply(rng)
        return {"apply": apply, "bits": rng.integers(self.bits[0], self.bits[1] + 1)}


@dataclass(frozen=True)
class Equalize(Op):
    """Histogram-equalize each channel's uint8 levels round(255 x), PIL ``ImageOps.equalize``'s rule."""

    p: float = field(default=0.5, kw_only=True)


@dataclass(frozen=True)
class AutoContrast(Op):
    """Stretch each channel to [0, 1]: (x - min) / (max - min), per image and channel; flat channels kept.

    torchvision ``autocontrast`` (PIL ``ImageOps.autocontrast`` with cutoff 0, without its truncation).
    """

    p: float = field(default=0.5, kw_only=True)
