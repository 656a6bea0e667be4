"""Albumentations transforms for the photometric ops and the containers (OneOf, SomeOf, policies).

Each photometric op maps to an ``AugkitPhotometric`` subclass (named ``Augkit<Op>``) whose params
come from the op's own ``sample`` (``_Seeded``), and whose pixels come from Albumentations'
functional kernels where their semantics are the op's (brightness, saturation, hue, posterize,
equalize, autocontrast) and from OpenCV / NumPy otherwise. uint8 stays uint8 (rounded after each
op), float32 stays float32. Containers map to subclasses of ``A.OneOf`` / ``A.SomeOf`` that draw
the whole container's params at once and run each child's ``apply`` with its share of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import albumentations as A
import albumentations.augmentations.pixel.functional as AF
import cv2
import numpy as np
import torch

from .. import color as K
from ..functional import GREY_WEIGHTS
from ..ops import (
    AutoContrast,
    Brightness,
    ColorJitter,
    Container,
    Equalize,
    Erasing,
    Gamma,
    GaussianBlur,
    Grayscale,
    Hue,
    Invert,
    OneOf,
    Op,
    Posterize,
    Saturation,
    Sharpness,
    Solarize,
    SomeOf,
)
from ..ops.compose import leaf_params, leaves
from .albu import _Seeded

__all__ = ["KERNELS", "AugkitPhotometric", "AugkitOneOf", "AugkitSomeOf", "transform_for"]

Img = np.ndarray


def _channels(img: Img) -> int:
    return 1 if img.ndim == 2 else img.shape[2]


def _grey_checked(name: str, img: Img) -> int:
    c = _channels(img)
    if c not in (1, 3):
        raise ValueError(f"{name} needs 1 or 3 channels (grey or RGB), got an image of shape {img.shape}")
    return c


def _lut(img: Img, table: np.ndarray) -> Img:
    """uint8 -> uint8 through a 256-entry float table (rounded, saturated)."""
    lut = np.clip(np.rint(table), 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut).reshape(img.shape)


_LEVELS = np.arange(256, dtype=np.float64)


def _pointwise(img: Img, fn: Callable[[np.ndarray], np.ndarray]) -> Img:
    """Apply a map of [0, 1] values: uint8 as a lookup table, float32 directly (clipped)."""
    if img.dtype == np.uint8:
        return _lut(img, fn(_LEVELS / 255.0) * 255.0)
    return np.clip(fn(img.astype(np.float32)), 0.0, 1.0).astype(np.float32)


def _via_float(img: Img, fn: Callable[[Img], Img]) -> Img:
    """Run ``fn`` on float32 [0, 1] values; uint8 in -> rounded uint8 out."""
    if img.dtype != np.uint8:
        return np.clip(fn(img), 0.0, 1.0).astype(np.float32)
    out = fn(img.astype(np.float32) / 255.0)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _via_uint8(img: Img, fn: Callable[[Img], Img]) -> Img:
    """Run ``fn`` on uint8 levels round(255 x); float in -> float32 out."""
    if img.dtype == np.uint8:
        return fn(img)
    levels = np.floor(img * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return fn(levels).astype(np.float32) / 255.0


def brightness(img: Img, f: float) -> Img:
    if img.dtype == np.uint8:
        return AF.adjust_brightness_torchvision(img, np.float32(f))  # a rounded, saturated LUT
    return np.clip(img * np.float32(f), 0.0, 1.0)


def contrast(img: Img, f: float) -> Img:
    c = _grey_checked("Contrast", img)
    means = cv2.mean(img)[:c]
    m = means[0] if c == 1 else float(np.dot(means, GREY_WEIGHTS))
    if img.dtype == np.uint8:
        return _lut(img, _LEVELS * f + m * (1 - f))
    return np.clip(img * np.float32(f) + np.float32(m * (1 - f)), 0.0, 1.0)


def saturation(img: Img, f: float) -> Img:
    if _grey_checked("Saturation", img) == 1:
        return img
    if img.dtype == np.uint8:
        return AF.adjust_saturation_torchvision(img, f)  # cv2 grey, cv2.addWeighted (rounded)
    grey = img @ np.asarray(GREY_WEIGHTS, np.float32)
    return np.clip(grey[..., None] + np.float32(f) * (img - grey[..., None]), 0.0, 1.0)


def hue(img: Img, shift: float) -> Img:
    """Albumentations' float hue path (OpenCV HSV in degrees); uint8 goes through float (OpenCV's
    uint8 HSV keeps hue in 2-degree steps)."""
    if _grey_checked("Hue", img) == 1:
        return img
    return _via_float(img, lambda x: AF.adjust_hue_torchvision(np.ascontiguousarray(x, np.float32), float(shift)))


def jitter(op: ColorJitter, img: Img, p: dict[str, Any]) -> Img:
    if op.brightness != (1.0, 1.0):
        img = brightness(img, p["brightness"])
    if op.contrast != (1.0, 1.0):
        img = contrast(img, p["contrast"])
    if op.saturation != (1.0, 1.0):
        img = saturation(img, p["saturation"])
    if op.hue != (0.0, 0.0):
        img = hue(img, p["hue"])
    return img


def grayscale(img: Img) -> Img:
    if _grey_checked("Grayscale", img) == 1:
        return img
    src = img if img.dtype == np.uint8 else img.astype(np.float32)
    return cv2.cvtColor(cv2.cvtColor(src, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


_LEVELS_F32 = np.arange(256, dtype=np.float32) * np.float32(1 / 255)  # uint8 levels as the tensor backend reads them


def solarize(img: Img, t: float) -> Img:
    """1 - x where x >= t; uint8 levels compared exactly as the tensor backend's float32 values are."""
    if img.dtype == np.uint8:
        flip = _LEVELS_F32 >= np.float32(t)
        return _lut(img, np.where(flip, 255 - np.arange(256), np.arange(256)).astype(np.float64))
    x = img.astype(np.float32)
    return np.where(x >= np.float32(t), np.float32(1) - x, x).astype(np.float32)


def posterize(img: Img, bits: int) -> Img:
    return _via_uint8(img, lambda u: AF.posterize(u, int(bits)) if bits < 8 else u)


def _equalize_channel(u: Img) -> Img:
    """PIL ``ImageOps.equalize``'s rule on one uint8 channel. (``A.equalize(mode="pil")`` is not
    it: its table counts each level's own pixels, PIL's only those below.)"""
    hist = np.bincount(u.ravel(), minlength=256)
    present = np.flatnonzero(hist)
    step = (u.size - hist[present[-1]]) // 255
    if not step:
        return u
    lut = np.minimum((step // 2 + np.cumsum(hist) - hist) // step, 255).astype(np.uint8)
    return cv2.LUT(u, lut).reshape(u.shape)


def equalize(img: Img) -> Img:
    def per_channel(u: Img) -> Img:
        if u.ndim == 2:
            return _equalize_channel(u)
        return np.stack([_equalize_channel(np.ascontiguousarray(u[..., c])) for c in range(u.shape[2])], -1)

    return _via_uint8(img, per_channel)


def autocontrast(img: Img) -> Img:
    """Per channel (x - min) / (max - min); flat channels kept (float math, rounded once for uint8)."""

    def stretch(x: Img) -> Img:
        axes = (0, 1)
        lo, hi = x.min(axis=axes, keepdims=True), x.max(axis=axes, keepdims=True)
        flat = hi <= lo
        scale = np.where(flat, 1.0, 1.0 / np.where(flat, 1.0, hi - lo))
        return (x - np.where(flat, 0.0, lo)) * scale

    return _via_float(img, stretch)


_SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13


def sharpness(img: Img, f: float) -> Img:
    h, w = img.shape[:2]
    if h < 3 or w < 3:
        return img

    def blend(x: Img) -> Img:
        deg = cv2.filter2D(x, -1, _SMOOTH, borderType=cv2.BORDER_REFLECT_101).reshape(x.shape)
        out = x.copy()
        inner = (slice(1, -1), slice(1, -1))
        out[inner] = deg[inner] + np.float32(f) * (x[inner] - deg[inner])
        return out

    return _via_float(img, blend)


def gaussian_blur(img: Img, sigma: float, size: int) -> Img:
    h, w = img.shape[:2]
    r = min(size // 2, h - 1, w - 1)
    if r <= 0:
        return img
    k = K.gaussian_kernels(torch.tensor([sigma]), 2 * r + 1)[0].double().numpy()
    return _via_float(img, lambda x: cv2.sepFilter2D(x, -1, k, k, borderType=cv2.BORDER_REFLECT_101).reshape(x.shape))


def erasing(op: Erasing, img: Img, p: dict[str, Any]) -> Img:
    h, w = img.shape[:2]
    t = {k: torch.tensor([p[k]]) for k in ("area", "log_ratio", "top", "left")}
    top, left, bh, bw = K.erase_boxes(t["area"], t["log_ratio"], t["top"], t["left"], h, w)[0].tolist()
    if bh == 0:
        return img
    out = img.copy()
    out[top : top + bh, left : left + bw] = round(op.value * 255) if img.dtype == np.uint8 else op.value
    return out


KERNELS: dict[type[Op], Callable[[Any, Img, dict[str, Any]], Img]] = {
    Brightness: lambda op, img, p: brightness(img, p["factor"]),
    Saturation: lambda op, img, p: saturation(img, p["factor"]),
    Hue: lambda op, img, p: hue(img, p["shift"]),
    ColorJitter: jitter,
    Gamma: lambda op, img, p: _pointwise(img, lambda x: np.power(x, p["gamma"])),
    Grayscale: lambda op, img, p: grayscale(img),
    Invert: lambda op, img, p: _pointwise(img, lambda x: 1.0 - x),
    Solarize: lambda op, img, p: solarize(img, p["threshold"]),
    Posterize: lambda op, img, p: posterize(img, p["bits"]),
    Equalize: lambda op, img, p: equalize(img),
    AutoContrast: lambda op, img, p: autocontrast(img),
    Sharpness: lambda op, img, p: sharpness(img, p["factor"]),
    GaussianBlur: lambda op, img, p: gaussian_blur(img, p["sigma"], op.size),
    Erasing: erasing,
}


class AugkitPhotometric(_Seeded, A.ImageOnlyTransform):
    """An augkit photometric op on one image; params ``op.sample`` draws, pixels from ``KERNELS``."""

    def __init__(self, op: Op, salt: int = 0) -> None:
        super().__init__(p=op.p)
        self.op, self.salt = op, salt
        self.set_random_seed(None)

    def apply(self, img: Img, apply: bool = True, **params: Any) -> Img:
        return KERNELS[type(self.op)](self.op, img, params) if apply else img

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("op", "salt")


_CLASSES: dict[type[Op], type[AugkitPhotometric]] = {
    cls: type(f"Augkit{cls.__name__}", (AugkitPhotometric,), {"__doc__": f"``ak.{cls.__name__}`` on one image."})
    for cls in KERNELS
}


class _SeededContainer(_Seeded):
    """Mixin: a container drawing all its params at once and running its leaves with their share.

    Consecutive geometric leaves (a OneOf of flips and zooms, a policy's Affine pair) are one
    composed matrix and one resample (``albu_geometry.warp_run``), as on the tensor backend.
    """

    op: Container
    children: list[tuple[str, Any]]

    def _setup(self, op: Container, salt: int, make: Callable[[Op, int], Any]) -> list[Any]:
        from .. import geometry as G

        self.op, self.salt = op, salt
        self.children = [(prefix, make(child, j)) for j, (prefix, child) in enumerate(op.branches())]
        self.leaf_ops = leaves([op])
        self.leaf_transforms = [make(leaf, j) if leaf.kind != "geometric" else None for j, leaf in enumerate(self.leaf_ops)]
        self.runs = {r[0]: r for r in G.split_runs(self.leaf_ops)}
        return [t for _, t in self.children]

    def apply(self, img: Img, apply: bool = True, **params: Any) -> Img:
        from .albu_geometry import warp_run

        values = leaf_params([self.op], [params])
        i = 0
        while i < len(self.leaf_ops):
            run = self.runs.get(i)
            if run:
                if any(values[j]["apply"] for j in run):
                    ops = [self.leaf_ops[j] for j in run]
                    img = warp_run(img, ops, [{k: torch.tensor([v]) for k, v in values[j].items()} for j in run])
                i = run[-1] + 1
                continue
            t = self.leaf_transforms[i]
            assert t is not None  # only geometric leaves have none, and they are in runs
            img = t.apply(img, **values[i])
            i += 1
        return img
class AugkitOneOf(_SeededContainer, A.OneOf):
    """``ak.OneOf`` (and the policies, which are OneOfs per slot): one draw per image for the whole container."""

    def __init__(self, op: Container, salt: int, make: Callable[[Op, int], Any]) -> None:
        A.OneOf.__init__(self, self._setup(op, salt, make), p=op.p)
        self.set_random_seed(None)


class AugkitSomeOf(_SeededContainer, A.SomeOf):
    """``ak.SomeOf``: one draw per image picks the subset; children run in the listed order."""

    def __init__(self, op: SomeOf, salt: int, make: Callable[[Op, int], Any]) -> None:
        A.SomeOf.__init__(self, self._setup(op, salt, make), n=max(1, cast(tuple[int, int], op.n)[1]), p=op.p)
        self.set_random_seed(None)


def transform_for(op: Op, salt: int, make: Callable[[Op, int], Any]) -> Any | None:
    """The transform for ``op`` if this module has one (``make`` builds a child's), else None."""
    if type(op) in _CLASSES:
        return _CLASSES[type(op)](op, salt)
    if isinstance(op, SomeOf):
        return AugkitSomeOf(op, salt, make)
    if isinstance(op, (OneOf, Container)):
        return AugkitOneOf(op, salt, make)
    return None
