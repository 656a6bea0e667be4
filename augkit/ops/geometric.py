"""Geometric op specs: ops that move pixels. Each backend turns a run of them into one warp.

Every geometric op is a 3x3 matrix per sample mapping input to output pixel coordinates
(``augkit.geometry``). Sizing ops (``RandomResizedCrop``, ``Resize``, ``CenterCrop``,
``RandomCrop``) also set the output size; their crop ``box`` depends on the image size, so it
is filled in by ``sample_sized(values, hw)`` once the pipeline knows each sample's (H, W) at
the op's position. ``sample`` draws everything that does not depend on the size.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..random import Draw
from .base import Op, array_api, check_number, check_range, columns, uniform

__all__ = [
    "HorizontalFlip",
    "VerticalFlip",
    "Zoom",
    "Affine",
    "Rotate",
    "Translate",
    "Rot90",
    "RandomResizedCrop",
    "Resize",
    "CenterCrop",
    "RandomCrop",
    "SizingOp",
    "BORDERS",
    "INTERPOLATIONS",
    "check_size",
    "check_choice",
]

BORDERS = ("constant", "reflect", "replicate")
INTERPOLATIONS = ("bilinear", "nearest")
MAX_SIZE = 1 << 15  # output sides up to 32768 pixels
RRC_TRIES = 10  # torchvision's RandomResizedCrop tries this many boxes before its fallback


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_size(name: str, size: Any) -> tuple[int, int]:
    """An output size: one int s meaning (s, s), or (H, W), positive ints."""
    def ok(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIZE

    if ok(size):
        return (size, size)
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(ok(v) for v in size):
        return (int(size[0]), int(size[1]))
    raise ValueError(f"{name} must be an int s or (H, W) of ints in [1, {MAX_SIZE}], got {size!r}")


def _p_one(op: Op) -> None:
    if op.p != 1.0:
        raise ValueError(f"{type(op).__name__}.p must be 1.0 (it sets the output size of every sample), got {op.p!r}")


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

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(2)
        return {"apply": u[0] < self.p, "scale": uniform(u[1], *self.scale)}


def _sym(x: float) -> tuple[float, float]:
    return (-abs(x), abs(x))


@dataclass(frozen=True)
class _Warp(Op):
    """Shared keyword fields of the affine family: border, fill and interpolation."""

    kind: ClassVar[str] = "geometric"
    fill: float = field(default=0.0, kw_only=True)
    border: str = field(default="constant", kw_only=True)
    interpolation: str = field(default="bilinear", kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        object.__setattr__(self, "fill", check_number(f"{name}.fill", self.fill, low=0.0, high=1.0))
        check_choice(f"{name}.border", self.border, BORDERS)
        check_choice(f"{name}.interpolation", self.interpolation, INTERPOLATIONS)


@dataclass(frozen=True)
class Affine(_Warp):
    """About the image centre: isotropic scale s, rotation (degrees, counter-clockwise on
    screen), shear along x (degrees), then translation (tx W, ty H) (positive: right, down).

    Params: ``scale``, ``angle``, ``shear`` (B,) and ``translate`` (B, 2) = (tx, ty) fractions.
    One number for ``rotate``, ``translate`` or ``shear`` means (-x, x).
    """

    scale: tuple[float, float] = (1.0, 1.0)
    rotate: tuple[float, float] = (0.0, 0.0)
    translate: tuple[float, float] = (0.0, 0.0)
    shear: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        object.__setattr__(self, "scale", check_range(f"{name}.scale", self.scale, low=1e-3, high=1e3))
        object.__setattr__(self, "rotate", check_range(f"{name}.rotate", self.rotate, low=-360, high=360, scalar=_sym, scalar_doc="(-x, x)"))
        object.__setattr__(self, "translate", check_range(f"{name}.translate", self.translate, low=-1, high=1, scalar=_sym, scalar_doc="(-x, x)"))
        object.__setattr__(self, "shear", check_range(f"{name}.shear", self.shear, low=-80, high=80, scalar=_sym, scalar_doc="(-x, x)"))

    @property
    def rotates(self) -> bool:
        """Whether the matrix can rotate or shear (else it is axis-aligned)."""
        return self.rotate != (0.0, 0.0) or self.shear != (0.0, 0.0)

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(6)
        return {
            "apply": u[0] < self.p,
            "scale": uniform(u[1], *self.scale),
            "angle": uniform(u[2], *self.rotate),
            "translate": uniform(columns(u[3:5]), *self.translate),  # (n, 2)
            "shear": uniform(u[5], *self.shear),
        }


@dataclass(frozen=True)
class Rotate(_Warp):
    """Rotate about the image centre by an angle ~ U(degrees), counter-clockwise on screen.

    One number d means (-d, d). Params: ``angle`` (B,) degrees.
    """

    degrees: tuple[float, float] = (-15.0, 15.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "degrees", check_range("Rotate.degrees", self.degrees, low=-360, high=360, scalar=_sym, scalar_doc="(-x, x)"))

    @property
    def rotates(self) -> bool:
        return self.degrees != (0.0, 0.0)

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(2)
        return {"apply": u[0] < self.p, "angle": uniform(u[1], *self.degrees)}


@dataclass(frozen=True)
class Translate(_Warp):
    """Shift by (tx W, ty H), tx, ty ~ U(fraction) independently; positive moves right and down.

    One number f means (-f, f). Params: ``translate`` (B, 2) = (tx, ty).
    """

    fraction: tuple[float, float] = (-0.1, 0.1)
    rotates: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "fraction", check_range("Translate.fraction", self.fraction, low=-1, high=1, scalar=_sym, scalar_doc="(-x, x)"))

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(3)
        return {"apply": u[0] < self.p, "translate": uniform(columns(u[1:3]), *self.fraction)}


@dataclass(frozen=True)
class Rot90(Op):
    """k quarter turns counter-clockwise (as ``np.rot90``), k uniform in {1, 2, 3} when applied.

    Exact. On non-square images the output size differs per sample, so a sizing op must follow
    in the same run. Params: ``k`` (B,) int64 in {1, 2, 3} (0 turns where ``apply`` is false).
    """

    kind: ClassVar[str] = "geometric"
    p: float = 0.5

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        apply = self._apply(rng)
        return {"apply": apply, "k": rng.integers(1, 4)}


class SizingOp:
    """Mixin of the ops that set the output size ``size`` = (H, W) of every sample."""

    size: tuple[int, int]
    antialias: bool = False

    def sample_sized(self, values: dict[str, Tensor], hw: Tensor) -> dict[str, Tensor]:
        """Add the size-dependent params (``box``) for inputs of size ``hw`` (B, 2) int64 = (H, W)."""
        return values


@dataclass(frozen=True)
class RandomResizedCrop(SizingOp, Op):
    """Crop a random box (torchvision's sampling) and resize it to ``size``, per sample.

    Box: area fraction a ~ U(scale), aspect ratio r = exp(U(log ratio)), w = round(sqrt(a A r)),
    h = round(sqrt(a A / r)); the first of 10 tries that fits is placed uniformly at integer
    offsets; if none fits, torchvision's central fallback. A sample with ``apply`` false is
    resized whole. Params: ``area`` (B, 10), ``log_ratio`` (B, 10), ``pos`` (B, 2) uniforms,
    and ``box`` (B, 4) = (top, left, height, width) in input pixels once the size is known.
    """

    kind: ClassVar[str] = "geometric"
    size: tuple[int, int] = (224, 224)
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    antialias: bool = field(default=True, kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "size", check_size("RandomResizedCrop.size", self.size))
        object.__setattr__(self, "scale", check_range("RandomResizedCrop.scale", self.scale, low=0.0, high=1.0, strict=True))
        object.__setattr__(self, "ratio", check_range("RandomResizedCrop.ratio", self.ratio, low=0.0, high=1e3, strict=True))
        if not isinstance(self.antialias, bool):
            raise ValueError(f"RandomResizedCrop.antialias must be True or False, got {self.antialias!r}")

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        apply = self._apply(rng)
        u = rng.rand(2 * RRC_TRIES + 2)  # (22, n)
        lr = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        return {
            "apply": apply,
            "area": uniform(columns(u[:RRC_TRIES]), *self.scale),
            "log_ratio": uniform(columns(u[RRC_TRIES : 2 * RRC_TRIES]), *lr),
            "pos": columns(u[2 * RRC_TRIES :]),
        }

    def sample_sized(self, values: dict[str, Tensor], hw: Tensor) -> dict[str, Tensor]:
        # float64: round(sqrt(...)) must land on the integer torchvision's Python floats give.
        # Heights and widths travel as (B, 2) pairs (H, W) so each step is one op for both.
        dims = hw.double()  # (B, 2) (H, W)
        h_img, w_img = dims[:, 0:1], dims[:, 1:2]  # (B, 1)
        target = values["area"].double() * h_img * w_img  # (B, 10)
        r = values["log_ratio"].double().exp()
        w = torch.round(torch.sqrt(target * r))  # round half to even, as Python's round
        h = torch.round(torch.sqrt(target / r))
        fits = (w > 0) & (w <= w_img) & (h > 0) & (h <= h_img)  # (B, 10)
        first = torch.where(fits, _try_order(hw.device), _zero_long(hw.device)).argmax(1, keepdim=True)
        any_fit = fits.any(1, keepdim=True)  # (B, 1)
        tried = torch.cat([h.gather(1, first), w.gather(1, first)], 1)  # (B, 2) (h, w)
        # fallback: the whole image, cut to the nearest allowed ratio, centred
        hh, ww = dims[:, 0], dims[:, 1]
        lo, hi = min(self.ratio), max(self.ratio)
        in_ratio = ww / hh
        w_fb = torch.where(in_ratio > hi, torch.round(hh * hi), ww)
        h_fb = torch.where(in_ratio < lo, torch.round(ww / lo), hh)
        size = torch.where(any_fit, tried, torch.stack([h_fb, w_fb], 1))  # (B, 2) (h, w)
        pos = values["pos"].double()  # (B, 2) (top, left) uniforms
        room = dims - size
        tl = torch.where(any_fit, torch.floor(pos * (room + 1)), torch.floor(room / 2))
        box = torch.where(values["apply"][:, None], torch.cat([tl, size], 1), torch.cat([torch.zeros_like(dims), dims], 1))
        return {**values, "box": box.float()}


@functools.lru_cache(maxsize=8)
def _try_order(device: torch.device) -> Tensor:
    """10, 9, ..., 1 (int64): argmax of it where a try fits picks the first try that fits."""
    return torch.arange(RRC_TRIES, 0, -1, device=device)


@functools.lru_cache(maxsize=8)
def _zero_long(device: torch.device) -> Tensor:
    return torch.zeros((), dtype=torch.int64, device=device)


@dataclass(frozen=True)
class Resize(SizingOp, Op):
    """Resize the whole image to ``size`` = (H, W) (bilinear, antialiased when shrinking)."""

    kind: ClassVar[str] = "geometric"
    size: tuple[int, int] = (224, 224)
    antialias: bool = field(default=True, kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        _p_one(self)
        object.__setattr__(self, "size", check_size("Resize.size", self.size))
        if not isinstance(self.antialias, bool):
            raise ValueError(f"Resize.antialias must be True or False, got {self.antialias!r}")


@dataclass(frozen=True)
class CenterCrop(SizingOp, Op):
    """Cut the central ``size`` box (top = round((H - h) / 2), as torchvision); outside reads 0.

    Params: ``box`` (B, 4) = (top, left, height, width) in input pixels.
    """

    kind: ClassVar[str] = "geometric"
    size: tuple[int, int] = (224, 224)

    def __post_init__(self) -> None:
        super().__post_init__()
        _p_one(self)
        object.__setattr__(self, "size", check_size("CenterCrop.size", self.size))

    def sample_sized(self, values: dict[str, Tensor], hw: Tensor) -> dict[str, Tensor]:
        h, w = self.size
        top = torch.round((hw[:, 0].double() - h) / 2)
        left = torch.round((hw[:, 1].double() - w) / 2)
        box = torch.stack([top, left, torch.full_like(top, h), torch.full_like(top, w)], 1)
        return {**values, "box": box.float()}


@dataclass(frozen=True)
class RandomCrop(SizingOp, Op):
    """Cut a ``size`` box at a uniform integer offset of the image padded by ``pad`` on each side.

    top ~ U{-pad, ..., H + pad - h} (left likewise); outside the image reads by ``border``
    (``fill`` for "constant"). An image smaller than the box (padding included) gets the box at
    top = left = -pad. Params: ``pos`` (B, 2) uniforms and ``box`` (B, 4) in input pixels.
    """

    kind: ClassVar[str] = "geometric"
    size: tuple[int, int] = (224, 224)
    pad: int = field(default=0, kw_only=True)
    fill: float = field(default=0.0, kw_only=True)
    border: str = field(default="constant", kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        _p_one(self)
        object.__setattr__(self, "size", check_size("RandomCrop.size", self.size))
        if not isinstance(self.pad, int) or isinstance(self.pad, bool) or not 0 <= self.pad <= MAX_SIZE:
            raise ValueError(f"RandomCrop.pad must be an int in [0, {MAX_SIZE}], got {self.pad!r}")
        object.__setattr__(self, "fill", check_number("RandomCrop.fill", self.fill, low=0.0, high=1.0))
        check_choice("RandomCrop.border", self.border, BORDERS)

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        apply = self._apply(rng)
        return {"apply": apply, "pos": columns(rng.rand(2))}

    def sample_sized(self, values: dict[str, Tensor], hw: Tensor) -> dict[str, Tensor]:
        size = torch.tensor(self.size, dtype=torch.float64, device=hw.device)
        room = (hw.double() + 2 * self.pad - size + 1).clamp_min(1)  # (B, 2)
        tl = torch.floor(values["pos"].double() * room) - self.pad
        box = torch.cat([tl, size.expand_as(tl)], 1)
        return {**values, "box": box.float()}
