"""The tensor backend's photometric steps for the ops of ``augkit.ops.photometric`` / ``filters``.

``STEPS`` maps an op class to a function ``(op, params, x) -> None`` that changes ``x``
(B, C, H, W) float32 true values in place through the kernels of ``augkit.color``. ``run``
picks the samples: on the CPU (selection is free there) it runs the kernel on the samples that
apply only, off the CPU it runs on all with identity params for the others (no host sync).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import color as K
from ..ops import (
    AutoContrast,
    Brightness,
    ColorJitter,
    Equalize,
    Erasing,
    Gamma,
    GaussianBlur,
    Grayscale,
    Hue,
    Invert,
    Op,
    Posterize,
    Saturation,
    Sharpness,
    Solarize,
)

__all__ = ["STEPS", "run"]

Params = dict[str, Tensor]


def _id(p: Params, key: str, identity: float) -> Tensor:
    """``p[key]`` where the op applies, ``identity`` elsewhere."""
    return torch.where(p["apply"], p[key].float(), identity)


def _masked(kernel: Callable[[Tensor], Tensor]) -> Callable[[Op, Params, Tensor], None]:
    """A parameter-free kernel: keep the input where ``apply`` is false."""

    def step(op: Op, p: Params, x: Tensor) -> None:
        y = kernel(x.clone())
        torch.where(p["apply"].view(-1, 1, 1, 1), y, x, out=x)

    return step


def _jitter(op: ColorJitter, p: Params, x: Tensor) -> None:
    if op.brightness != (1.0, 1.0):
        K.adjust_brightness(x, _id(p, "brightness", 1.0))
    if op.contrast != (1.0, 1.0):
        K.adjust_contrast(x, _id(p, "contrast", 1.0))
    if op.saturation != (1.0, 1.0):
        K.adjust_saturation(x, _id(p, "saturation", 1.0))
    if op.hue != (0.0, 0.0):
        K.adjust_hue(x, _id(p, "hue", 0.0))


def _posterize(op: Posterize, p: Params, x: Tensor) -> None:
    y = K.posterize(x.clone(), p["bits"])  # quantizes even at 8 bits: keep x where not applied
    torch.where(p["apply"].view(-1, 1, 1, 1), y, x, out=x)


def _erasing(op: Erasing, p: Params, x: Tensor) -> None:
    boxes = K.erase_boxes(p["area"], p["log_ratio"], p["top"], p["left"], x.shape[2], x.shape[3])
    boxes[:, 2] *= p["apply"]  # height 0: nothing erased
    K.erase(x, boxes, op.value)


STEPS: dict[type[Op], Callable[[Any, Params, Tensor], object]] = {
    Brightness: lambda op, p, x: K.adjust_brightness(x, _id(p, "factor", 1.0)),
    Saturation: lambda op, p, x: K.adjust_saturation(x, _id(p, "factor", 1.0)),
    Hue: lambda op, p, x: K.adjust_hue(x, _id(p, "shift", 0.0)),
    ColorJitter: _jitter,
    Gamma: lambda op, p, x: K.adjust_gamma(x, _id(p, "gamma", 1.0)),
    Grayscale: _masked(K.to_grey),
    Invert: _masked(K.invert),
    Solarize: lambda op, p, x: K.solarize(x, _id(p, "threshold", 2.0)),  # threshold 2: nothing flips
    Posterize: _posterize,
    Equalize: _masked(K.equalize),
    AutoContrast: _masked(K.autocontrast),
    Sharpness: lambda op, p, x: K.adjust_sharpness(x, _id(p, "factor", 1.0)),
    GaussianBlur: lambda op, p, x: K.gaussian_blur(x, _id(p, "sigma", 0.0), op.size),
    Erasing: _erasing,
}


def run(op: Op, p: Params, x: Tensor) -> None:
    """Apply ``op`` with params ``p`` (B rows) to ``x`` (B, C, H, W) float32 in [0, 1], in place."""
    step = STEPS[type(op)]
    if x.device.type != "cpu":
        step(op, p, x)
        return
    idx = p["apply"].nonzero().squeeze(1)
    if len(idx) == len(x):
        step(op, p, x)
    elif len(idx):
        sub = x.index_select(0, idx)
        step(op, {k: v.index_select(0, idx) for k, v in p.items()}, sub)
        x.index_copy_(0, idx, sub)
