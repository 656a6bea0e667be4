"""Per-image execution on numpy through Albumentations (the CPU fallback).

Each augkit op maps to one Albumentations transform defined here (stock ones subclassed
where they exist) whose parameters have the same distribution and the same names, keys and
dtypes as the tensor backend's, so params move between backends and replay. Semantics:
``docs/ops.md`` ("Albumentations backend").

Randomness: Albumentations 2.0's ``Compose(seed=s)`` gives *every* transform the same seed,
so two transforms with the same ``p`` (e.g. both flips at 0.5) fire together every time.
Each transform here keys its generator by (seed, its position, the DataLoader worker seed),
so decisions are independent across ops and across DataLoader workers and epochs.
"""

from __future__ import annotations

import math
import random
import warnings
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import get_worker_info

from .. import functional as F
from .. import geometry as G
from ..buffers import ByteLRU
from ..ops import (
    FLOAT_TOLERANCE,
    Contrast,
    GaussianNoise,
    HorizontalFlip,
    Normalize,
    Op,
    VerticalFlip,
    Zoom,
    check_channels,
    draw_params,
)
from ..params import Params
from ..random import KEY_HIGH, Draw, fmix32_np
from .albu_targets import MatrixTargets

__all__ = [
    "AlbuBackend",
    "to_compose",
    "AugkitHorizontalFlip",
    "AugkitVerticalFlip",
    "AugkitZoom",
    "AugkitContrast",
    "AugkitGaussianNoise",
    "AugkitNormalize",
]

MAX_CHANNELS = 4  # OpenCV's warpAffine / LUT limit


class _Seeded:
    """Mixin: params drawn by the augkit op itself from a key, keyed by (seed, salt, worker seed).

    ``get_params`` draws one key per call from a numpy generator seeded by (seed, salt, the
    DataLoader worker seed) and returns ``op.sample(1, Draw(key).child(salt))`` as Python
    values: the distribution is the op's, by construction. ``should_apply`` always says yes;
    ``apply`` is drawn with probability ``p`` inside the params, so every call holds every key,
    as the tensor backend's params do.
    """

    salt: int = 0
    op: Op
    seed: int | None
    random_generator: np.random.Generator
    py_random: random.Random
    _worker_seed: int | None = None

    def set_random_seed(self, seed: int | None) -> None:
        self.seed = seed
        self._worker_seed = _current_worker_seed()
        self._reseed()

    def _reseed(self) -> None:
        key = [self.salt] + ([] if self.seed is None else [self.seed]) + ([] if self._worker_seed is None else [self._worker_seed])
        entropy = None if (self.seed is None and self._worker_seed is None) else key
        self.random_generator = np.random.default_rng(entropy)
        self.py_random = random.Random(None if entropy is None else hash(tuple(key)))

    def _rng(self) -> np.random.Generator:
        w = _current_worker_seed()
        if w != self._worker_seed:  # first draw in a new DataLoader worker (or a new epoch's worker)
            self._worker_seed = w
            self._reseed()
        return self.random_generator

    def should_apply(self, force_apply: bool = False) -> bool:
        self._force = force_apply
        return True

    def get_params(self) -> dict[str, Any]:
        key = torch.tensor([int(self._rng().integers(0, KEY_HIGH - 1))])
        params = host_params(draw_params(self.op, 1, Draw(key).child(self.salt)))
        if getattr(self, "_force", False):
            params["apply"] = True
        return params


def host_params(values: dict[str, torch.Tensor]) -> dict[str, Any]:
    """One sample's params as Python values: (1,) -> a number, (1, k) -> a list."""
    return {k: t[0].tolist() for k, t in values.items()}


def _current_worker_seed() -> int | None:
    info = get_worker_info()
    return None if info is None else int(info.seed)


class _SeededFlip(MatrixTargets, _Seeded):
    """A stock Albumentations flip with augkit params ``{"apply"}``; images, masks, boxes, keypoints."""

    op_class: type[Op]

    def __init__(self, p: float = 0.5, salt: int = 0) -> None:
        super().__init__(p=p)  # type: ignore[call-arg]  # a mixin: the next class is an A.BasicTransform
        self.salt, self.op = salt, self.op_class(p=p)
        self.set_random_seed(None)

    def apply(self, img: np.ndarray, apply: bool = True, **params: Any) -> np.ndarray:
        return super().apply(img, **params) if apply else img  # type: ignore[misc]  # the A flip's apply


class AugkitHorizontalFlip(_SeededFlip, A.HorizontalFlip):
    """``A.HorizontalFlip`` with augkit params ``{"apply"}``; images and masks."""

    op_class = HorizontalFlip


class AugkitVerticalFlip(_SeededFlip, A.VerticalFlip):
    """``A.VerticalFlip`` with augkit params ``{"apply"}``; images and masks."""

    op_class = VerticalFlip


class AugkitZoom(MatrixTargets, _Seeded, A.DualTransform):
    """Scale about the centre ((W-1)/2, (H-1)/2) by s ~ U(lo, hi): ``cv2.warpAffine``, bilinear, constant ``fill``.

    ``fill`` is in [0, 1] units (x255 for uint8). Masks: nearest, filled with ``mask_fill``;
    boxes and keypoints through the same matrix.
    """

    def __init__(self, scale: tuple[float, float] = (0.8, 1.2), fill_value: float = 0.0, p: float = 1.0, salt: int = 0) -> None:
        super().__init__(p=p)
        self.scale, self.fill_value, self.salt = tuple(scale), float(fill_value), salt
        self.op = Zoom(scale, fill=self.fill_value, p=p)
        self.set_random_seed(None)

    def apply(self, img: np.ndarray, apply: bool = True, scale: float = 1.0, **params: Any) -> np.ndarray:
        if not apply:
            return img
        return scale_about_centre(img, scale, scale, cv2.INTER_LINEAR, self.fill_value)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale", "fill_value", "salt")


def scale_about_centre(img: np.ndarray, sx: float, sy: float, interpolation: int, fill: float) -> np.ndarray:
    """Scale an HW or HWC image by (sx, sy) about ((W-1)/2, (H-1)/2), pixel centres at integers
    (a negative factor flips that axis); outside reads ``fill``, in [0, 1] units (x255 for uint8)."""
    h, w = img.shape[:2]
    cx, cy = (w - 1) / 2, (h - 1) / 2
    m = np.array([[sx, 0.0, cx * (1 - sx)], [0.0, sy, cy * (1 - sy)]])
    c = 1 if img.ndim == 2 else img.shape[2]
    value = fill * 255 if img.dtype == np.uint8 else fill
    out = cv2.warpAffine(img, m, (w, h), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=(value,) * c)
    return out.reshape(img.shape)  # OpenCV drops a trailing 1-channel axis


class AugkitContrast(_Seeded, A.ImageOnlyTransform):
    """out = clip(m + f (x - m)), m = mean ITU-R 601 luma (1 channel: the channel), f ~ U(lo, hi).

    Unlike ``A.RandomBrightnessContrast`` (multiplicative), this blends with the mean grey.
    uint8 runs as one ``cv2.LUT``.
    """

    def __init__(self, factor: tuple[float, float] = (0.8, 1.2), p: float = 1.0, salt: int = 0) -> None:
        super().__init__(p=p)
        self.factor, self.salt = tuple(factor), salt
        self.op = Contrast(factor, p=p)
        self.set_random_seed(None)

    def apply(self, img: np.ndarray, apply: bool = True, factor: float = 1.0, **params: Any) -> np.ndarray:
        if not apply:
            return img
        c = 1 if img.ndim == 2 else img.shape[2]
        if c not in (1, 3):
            raise ValueError(f"Contrast needs 1 or 3 channels (grey or RGB), got an image of shape {img.shape}")
        means = cv2.mean(img)[:c]
        m = means[0] if c == 1 else float(np.dot(means, F.GREY_WEIGHTS))
        if img.dtype == np.uint8:
            lut = np.clip(np.rint(np.arange(256) * factor + m * (1 - factor)), 0, 255).astype(np.uint8)
            return cv2.LUT(img, lut).reshape(img.shape)  # OpenCV drops a trailing 1-channel axis
        out = img * np.float32(factor)
        out += np.float32(m * (1 - factor))
        return np.clip(out, 0.0, 1.0, out=out)


class AugkitGaussianNoise(_Seeded, A.ImageOnlyTransform):
    """out = clip(x + sigma N(0, 1)), sigma ~ U(lo, hi) in [0, 1] units, per pixel and channel.

    The field is ``augkit.functional.normal_field(seed, sigma)`` (ported to numpy) laid out as
    (C, H, W), as the tensor backend's, so the same params give the same noise on both backends.
    """

    def __init__(self, std: tuple[float, float] = (0.0, 0.05), p: float = 1.0, salt: int = 0) -> None:
        super().__init__(p=p)
        self.std, self.salt = tuple(std), salt
        self.op = GaussianNoise(std, p=p)
        self.set_random_seed(None)

    def apply(self, img: np.ndarray, apply: bool = True, std: float = 0.0, seed: int = 0, **params: Any) -> np.ndarray:
        if not apply or std == 0.0:
            return img
        u8 = img.dtype == np.uint8
        planes = normal_field_np(seed, std * 255 if u8 else std, img.size).reshape(-1, *img.shape[:2])  # (C, H, W)
        if img.ndim == 2:
            planes = planes[0]
        if u8:  # per plane: saturating, rounding add in one pass, no float transpose
            if img.ndim == 2 or img.shape[2] == 1:
                return cv2.add(img, planes.reshape(img.shape[:2]), dtype=cv2.CV_8U).reshape(img.shape)
            return cv2.merge([cv2.add(ch, pl, dtype=cv2.CV_8U) for ch, pl in zip(cv2.split(img), planes, strict=True)])
        out = img + (planes if img.ndim == 2 else planes.transpose(1, 2, 0))
        return np.clip(out, 0.0, 1.0, out=out)


# numpy port of ``augkit.functional.normal_field`` for one sample (same hash, same layout;
# equal up to float rounding, checked in tests): 2x faster than torch's sin/cos/log on one CPU thread.
_GOLDEN = np.uint32(0x9E3779B9)
COUNTER_CACHE_BYTES = 64 << 20  # per process: the key-free hash of each recent image size
_COUNTERS: ByteLRU[int] = ByteLRU(COUNTER_CACHE_BYTES)


def _golden_counter(half: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(1, half + 1, dtype=np.uint32) * _GOLDEN
    return c, np.empty_like(c)


def normal_field_np(seed: int, std: float, n: int) -> np.ndarray:
    """(n,) float32 ``std * N(0, 1)`` keyed by ``seed``: the row ``functional.normal_field`` gives for B = 1."""
    half = (n + 1) // 2
    counter = _COUNTERS.get_or_make(half, lambda: fmix32_np(*_golden_counter(half)))
    h = counter + np.uint32(int(seed) & 0x7FFFFFFF)
    tmp = np.empty_like(h)
    fmix32_np(h, tmp)
    np.bitwise_and(h, np.uint32(0xFFFF), out=tmp)  # radius from the low half: u1 in (0, 1]
    r = tmp.astype(np.float32)
    r += 1
    r *= np.float32(1 / 65536)
    np.log(r, out=r)
    r *= np.float32(-2.0 * np.float32(std) ** 2)
    np.sqrt(r, out=r)
    s = h.view(np.int32)
    s >>= 16  # angle from the high half, as a signed 16-bit s: theta = 2 pi s / 2**16
    out = np.empty(n, dtype=np.float32)
    theta = out[:half]
    np.multiply(s, np.float32(2 * math.pi / 65536), out=theta, casting="unsafe")
    rest = n - half
    np.sin(theta[:rest], out=out[half:])
    np.cos(theta, out=theta)
    theta *= r
    out[half:] *= r[:rest]
    return out


class AugkitNormalize(A.ImageOnlyTransform):
    """Per channel (x - mean) / std on [0, 1] values (uint8 is divided by 255 first) -> float32."""

    def __init__(self, mean: tuple[float, ...] = (0.485, 0.456, 0.406), std: tuple[float, ...] = (0.229, 0.224, 0.225), p: float = 1.0) -> None:
        super().__init__(p=p)
        self.mean, self.std = tuple(mean), tuple(std)
        self._mean = np.asarray(mean, dtype=np.float32)
        self._inv_std = 1.0 / np.asarray(std, dtype=np.float32)

    def get_params(self) -> dict[str, Any]:
        return {"apply": True}

    def apply(self, img: np.ndarray, apply: bool = True, **params: Any) -> np.ndarray:
        c = 1 if img.ndim == 2 else img.shape[2]
        if len(self.mean) not in (1, c):
            raise ValueError(f"Normalize has {len(self.mean)} channel(s) of mean/std but the image has {c} channels")
        scale = self._inv_std / 255 if img.dtype == np.uint8 else self._inv_std
        return img * scale - self._mean * self._inv_std  # float32, broadcast over the channel axis

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("mean", "std")


def _transform(op: Op, salt: int) -> A.BasicTransform:
    from .albu_color import transform_for  # photometric ops and containers (it imports this module)

    t = transform_for(op, salt, _transform)
    if t is not None:
        return t
    if isinstance(op, HorizontalFlip):
        return AugkitHorizontalFlip(p=op.p, salt=salt)
    if isinstance(op, VerticalFlip):
        return AugkitVerticalFlip(p=op.p, salt=salt)
    if isinstance(op, Zoom):
        return AugkitZoom(scale=op.scale, fill_value=op.fill, p=op.p, salt=salt)
    if isinstance(op, Contrast):
        return AugkitContrast(factor=op.factor, p=op.p, salt=salt)
    if isinstance(op, GaussianNoise):
        return AugkitGaussianNoise(std=op.std, p=op.p, salt=salt)
    if isinstance(op, Normalize):
        return AugkitNormalize(mean=op.mean, std=op.std)
    from .albu_geometry import TRANSFORMS

    if type(op) in TRANSFORMS:
        return TRANSFORMS[type(op)](op, salt=salt)
    raise TypeError(f"the Albumentations backend has no transform for {type(op).__name__}")


def to_compose(
    ops: list[Op], seed: int | None, *, mask_fill: int = 0, min_visibility: float = 0.0, label_fields: tuple[str, ...] = ()
) -> A.Compose:
    """A plain ``albumentations.Compose`` running ``ops`` per image, transform i seeded by (seed, i).

    Boxes go in as ``pascal_voc`` (xyxy pixels), keypoints as ``xy`` (Albumentations' pixel
    convention), never removed; ``label_fields`` name the keyword arguments holding box labels.
    """
    transforms = [_transform(op, i) for i, op in enumerate(ops)]
    for t in transforms:
        if isinstance(t, MatrixTargets):
            t.mask_fill = mask_fill
    bbox = A.BboxParams(format="pascal_voc", label_fields=list(label_fields) or None, min_visibility=min_visibility)
    keypoints = A.KeypointParams(format="xy", remove_invisible=False)
    with warnings.catch_warnings():  # a photometric-only Compose carries targets through untouched
        warnings.filterwarnings("ignore", message="Got processor for", category=UserWarning)
        return A.Compose(transforms, seed=seed, bbox_params=bbox, keypoint_params=keypoints)


class AlbuBackend:
    """Runs a pipeline's ops on one numpy image (HW or HWC, uint8 or float in [0, 1]) with given params."""

    def __init__(self, ops: list[Op], seed: int | None) -> None:
        self.ops = list(ops)
        self.compose = to_compose(self.ops, seed)
        self.names = tuple(type(op).__name__ for op in self.ops)
        self._runs = {r[0]: r for r in G.split_runs(self.ops)}  # geometric runs by their first op

    def __call__(self, img: np.ndarray, params: Params) -> np.ndarray:
        """Shape: (H, W) or (H, W, C) -> same; dtype kept (float32 for float input; float32 after Normalize).

        ``img`` has passed ``check_image``; ``params`` hold one sample.
        """
        from .albu_geometry import warp_run

        out = img
        host = self._host(params)
        runs = self._runs
        skip: set[int] = set()
        for i, (t, v) in enumerate(zip(self.compose.transforms, host, strict=True)):
            if i in skip:
                continue
            run = runs.get(i, ())
            if len(run) > 1 or (run and not isinstance(self.ops[i], (HorizontalFlip, VerticalFlip))):
                # a run of geometric ops: one composed matrix, one resample (flips alone stay exact)
                if all(isinstance(self.ops[j], (HorizontalFlip, VerticalFlip)) for j in run):
                    for j in run:
                        out = self.compose.transforms[j].apply(out, **host[j])
                else:
                    out = warp_run(out, [self.ops[j] for j in run], [params[j] for j in run], host=[host[j] for j in run])
                skip.update(run)
                continue
            out = t.apply(out, **v)
        return out

    def _host(self, params: Params) -> list[dict[str, Any]]:
        if not isinstance(params, Params):
            raise TypeError(f"params must be the Params a pipeline returned, got {type(params).__name__}")
        if params.names != self.names:
            raise ValueError(f"params were drawn for ops {list(params.names)}, this pipeline has {list(self.names)}")
        if params.batch_size != 1 and len(params):
            raise ValueError(f"params hold {params.batch_size} samples but a numpy image is one sample; use params.select(i)")
        return [host_params(v) for v in params.values]
    def check_image(self, x: Any) -> np.ndarray:
        """Validate (and convert a PIL image to) an HW / HWC uint8 or float32 array."""
        what = "img"
        if not isinstance(x, np.ndarray):  # PIL, checked by the caller
            what = f"PIL image (mode {x.mode!r})"
            x = np.asarray(x)
        if x.ndim not in (2, 3):
            raise ValueError(f"{what} must be a numpy (H, W) or (H, W, C) array, got shape {x.shape}")
        h, w = x.shape[:2]
        c = 1 if x.ndim == 2 else x.shape[2]
        if h == 0 or w == 0:
            raise ValueError(f"{what} must have H and W > 0, got shape {x.shape}")
        if not 1 <= c <= MAX_CHANNELS:
            raise ValueError(
                f"{what} must be HWC with 1 to {MAX_CHANNELS} channels, got shape {x.shape}; "
                "a (C, H, W) image goes in as a torch tensor"
            )
        check_channels(self.ops, c, f"{what} of shape {x.shape}")
        if x.dtype == np.uint8:
            return x
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{what} must be uint8, or float in [0, 1], got dtype {x.dtype}")
        x = x.astype(np.float32, copy=False)
        lo, hi = float(x.min()), float(x.max())
        if not (lo >= -FLOAT_TOLERANCE and hi <= 1 + FLOAT_TOLERANCE):
            raise ValueError(f"float {what} must hold values in [0, 1], got min {lo:.4g}, max {hi:.4g}; divide uint8 data by 255")
        return x
