"""Op specs: what each op means and how its per-sample parameters are drawn.

An op is a frozen dataclass. It checks its arguments, says whether it is geometric
(moves pixels) or photometric (changes values), and draws a batch of parameters with
``sample(n, rng)`` as tensors of length ``n`` on the generator's device. Pixel math
lives in ``augkit.functional``; backends map specs to kernels. This module imports
torch and the standard library only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

__all__ = [
    "Op",
    "HorizontalFlip",
    "VerticalFlip",
    "Zoom",
    "Contrast",
    "GaussianNoise",
    "Normalize",
    "OPS",
    "op_from_dict",
    "check_channels",
    "FLOAT_TOLERANCE",
]

# Noise seeds are drawn in [0, 2**31) so they are exact in float64 and JSON.
SEED_HIGH = 2**31


def _check_p(name: str, p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}.p must be a number in [0, 1], got {p!r}")
    return float(p)


def _check_range(name: str, value: Any, *, low: float, strict: bool) -> tuple[float, float]:
    """Check a (lo, hi) range with lo <= hi and lo > low (strict) or lo >= low."""
    bound = "0 < lo <= hi" if (strict and low == 0) else f"{low} {'<' if strict else '<='} lo <= hi"
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (lo, hi) with {bound}, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi or (lo <= low if strict else lo < low):
        raise ValueError(f"{name} must be (lo, hi) with {bound}, got {value!r}")
    return lo, hi


def _uniform(u: Tensor, lo: float, hi: float) -> Tensor:
    return lo + u * (hi - lo)


@dataclass(frozen=True)
class Op:
    """Base of every op spec. Subclasses set ``kind`` and implement ``sample``."""

    kind: ClassVar[str] = "photometric"  # "geometric" ops move pixels, "photometric" change values
    p: float = field(default=1.0, kw_only=True)  # keyword-only: Zoom((0.8, 1.2)) sets scale

    def __post_init__(self) -> None:
        object.__setattr__(self, "p", _check_p(type(self).__name__, self.p))

    def sample(self, n: int, rng: torch.Generator) -> dict[str, Tensor]:
        """Draw parameters for ``n`` samples: ``apply`` (n,) bool plus op values (n,)."""
        return {"apply": self._apply(n, rng)}

    def _apply(self, n: int, rng: torch.Generator) -> Tensor:
        return torch.rand(n, generator=rng, device=rng.device) < self.p

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"name": type(self).__name__, **{k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}}


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
    """

    kind: ClassVar[str] = "geometric"
    scale: tuple[float, float] = (0.8, 1.2)
    fill: float = field(default=0.0, kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scale", _check_range("Zoom.scale", self.scale, low=0.0, strict=True))
        if isinstance(self.fill, bool) or not isinstance(self.fill, (int, float)) or not 0.0 <= self.fill <= 1.0:
            raise ValueError(f"Zoom.fill must be a number in [0, 1], got {self.fill!r}")
        object.__setattr__(self, "fill", float(self.fill))

    def sample(self, n: int, rng: torch.Generator) -> dict[str, Tensor]:
        u = torch.rand(2, n, generator=rng, device=rng.device)
        return {"apply": u[0] < self.p, "scale": _uniform(u[1], *self.scale)}


@dataclass(frozen=True)
class Contrast(Op):
    """Blend with the image's mean grey level: out = clamp(m + f * (x - m), 0, 1), f ~ U(lo, hi).

    ``m`` is the per-image mean of ITU-R 601 luma for 3 channels, of the channel itself for 1.
    """

    factor: tuple[float, float] = (0.8, 1.2)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "factor", _check_range("Contrast.factor", self.factor, low=0.0, strict=False))

    def sample(self, n: int, rng: torch.Generator) -> dict[str, Tensor]:
        u = torch.rand(2, n, generator=rng, device=rng.device)
        return {"apply": u[0] < self.p, "factor": _uniform(u[1], *self.factor)}


@dataclass(frozen=True)
class GaussianNoise(Op):
    """Additive noise: out = clamp(x + sigma * N(0, 1), 0, 1), sigma ~ U(lo, hi) in [0, 1] units.

    Independent per pixel and channel. ``seed`` (n,) int64 keys each sample's noise field,
    so replaying the params replays the noise exactly.
    """

    std: tuple[float, float] = (0.0, 0.05)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "std", _check_range("GaussianNoise.std", self.std, low=0.0, strict=False))

    def sample(self, n: int, rng: torch.Generator) -> dict[str, Tensor]:
        u = torch.rand(2, n, generator=rng, device=rng.device)
        seed = torch.randint(0, SEED_HIGH, (n,), generator=rng, device=rng.device)
        return {"apply": u[0] < self.p, "std": _uniform(u[1], *self.std), "seed": seed}


@dataclass(frozen=True)
class Normalize(Op):
    """Per channel (x - mean) / std; deterministic, not clamped. Must be the last op."""

    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            mean = tuple(float(v) for v in self.mean)
            std = tuple(float(v) for v in self.std)
        except (TypeError, ValueError):
            raise ValueError(f"Normalize.mean and .std must be sequences of numbers, got {self.mean!r}, {self.std!r}") from None
        if len(mean) != len(std) or not mean:
            raise ValueError(f"Normalize.mean and .std must have the same non-zero length, got {len(mean)} and {len(std)}")
        if any(not (s > 0 and math.isfinite(s)) for s in std):
            raise ValueError(f"Normalize.std must be > 0 for every channel, got {std!r}")
        if self.p != 1.0:
            raise ValueError(f"Normalize.p must be 1.0 (Normalize is deterministic), got {self.p!r}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)


FLOAT_TOLERANCE = 1e-3  # float images may stray this far outside [0, 1] (rounding)


def check_channels(ops: list[Op], channels: int, what: str) -> None:
    """Raise if an op cannot handle ``channels`` channels; ``what`` names the input in the message."""
    for op in ops:
        if isinstance(op, Contrast) and channels not in (1, 3):
            raise ValueError(f"Contrast needs 1 or 3 channels (grey or RGB), got {what} with {channels} channels")
        if isinstance(op, Normalize) and len(op.mean) not in (1, channels):
            raise ValueError(f"Normalize has {len(op.mean)} channel(s) of mean/std but {what} has {channels} channels")


OPS: dict[str, type[Op]] = {
    cls.__name__: cls for cls in (HorizontalFlip, VerticalFlip, Zoom, Contrast, GaussianNoise, Normalize)
}


def op_from_dict(d: dict[str, Any]) -> Op:
    """Build an op from ``{"name": ..., **fields}`` as written by ``Op.to_dict``."""
    if not isinstance(d, dict) or "name" not in d:
        raise ValueError(f"an op must be a mapping with a 'name' key, got {d!r}")
    name = d["name"]
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}; expected one of {sorted(OPS)}")
    cls = OPS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - fields - {"name"}
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)} for op {name}; expected some of {sorted(fields)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k != "name"})
