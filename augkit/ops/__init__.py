"""Op specs: what each op means and how its per-sample parameters are drawn.

An op is a frozen dataclass. It checks its arguments, says whether it is geometric (moves
pixels) or photometric (changes values), and draws a batch of parameters with
``sample(n, rng)`` from a counter-based ``augkit.random.Draw``. Pixel math lives in the
kernels; backends map specs to kernels. This package imports torch and the stdlib only.
"""

from __future__ import annotations

import dataclasses
import reprlib
from typing import Any

from .base import (
    FLOAT32_MAX,
    SEED_HIGH,
    Op,
    array_api,
    check_number,
    check_p,
    check_range,
    columns,
    draw_params,
    uniform,
)
from .compose import Container, OneOf, SomeOf, leaf_params, leaves
from .filters import Erasing, GaussianBlur, Sharpness
from .geometric import (
    BORDERS,
    INTERPOLATIONS,
    Affine,
    CenterCrop,
    HorizontalFlip,
    RandomCrop,
    RandomResizedCrop,
    Resize,
    Rot90,
    Rotate,
    SizingOp,
    Translate,
    VerticalFlip,
    Zoom,
)
from .photometric import (
    AutoContrast,
    Brightness,
    ColorJitter,
    Contrast,
    Equalize,
    Gamma,
    GaussianNoise,
    Grayscale,
    Hue,
    Invert,
    Normalize,
    Posterize,
    Saturation,
    Solarize,
)
from .policies import POLICY_OPS, RandAugment, TrivialAugment

PHOTOMETRIC = [  # issue 12's photometric ops (names pinned)
    "Brightness", "Saturation", "Hue", "ColorJitter", "Gamma", "Grayscale", "Invert", "Solarize",
    "Posterize", "Equalize", "AutoContrast", "Sharpness", "GaussianBlur", "Erasing",
]

__all__ = [
    "Op",
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
    "Contrast",
    "GaussianNoise",
    "Normalize",
    *PHOTOMETRIC,
    "Container",
    "OneOf",
    "SomeOf",
    "RandAugment",
    "TrivialAugment",
    "POLICY_OPS",
    "leaves",
    "leaf_params",
    "OPS",
    "register",
    "op_from_dict",
    "check_channels",
    "check_p",
    "check_range",
    "check_number",
    "uniform",
    "array_api",
    "columns",
    "draw_params",
    "FLOAT_TOLERANCE",
    "FLOAT32_MAX",
    "SEED_HIGH",
]

FLOAT_TOLERANCE = 1e-3  # float images may stray this far outside [0, 1] (rounding)

OPS: dict[str, type[Op]] = {}


def register(*classes: type[Op]) -> None:
    """Make op classes known to ``op_from_dict`` (serialization) by their class name."""
    for cls in classes:
        OPS[cls.__name__] = cls


register(HorizontalFlip, VerticalFlip, Zoom, Contrast, GaussianNoise, Normalize)
register(Affine, Rotate, Translate, Rot90, RandomResizedCrop, Resize, CenterCrop, RandomCrop)
register(
    Brightness, Saturation, Hue, ColorJitter, Gamma, Grayscale, Invert, Solarize, Posterize, Equalize,
    AutoContrast, Sharpness, GaussianBlur, Erasing, OneOf, SomeOf, RandAugment, TrivialAugment,
)


def check_channels(ops: list[Op], channels: int, what: str) -> None:
    """Raise if an op cannot handle ``channels`` channels; ``what`` names the input in the message."""
    for op in ops:
        if isinstance(op, Contrast) and channels not in (1, 3):
            raise ValueError(f"Contrast needs 1 or 3 channels (grey or RGB), got {what} with {channels} channels")
        if getattr(op, "grey_channels", False) and channels not in (1, 3):
            raise ValueError(f"{type(op).__name__} needs 1 or 3 channels (grey or RGB), got {what} with {channels} channels")
        if isinstance(op, Normalize) and len(op.mean) not in (1, channels):
            raise ValueError(f"Normalize has {len(op.mean)} channel(s) of mean/std but {what} has {channels} channels")
        if isinstance(op, Container):  # containers (OneOf, SomeOf, policies) check their children
            check_channels([child for _, child in op.branches()], channels, what)


def op_from_dict(d: Any) -> Op:
    """Build an op from ``{"name": ..., **fields}`` as written by ``Op.to_dict``."""
    if not isinstance(d, dict) or "name" not in d:
        raise ValueError(f"an op must be a mapping with a 'name' key, got {reprlib.repr(d)}")
    name = d["name"]
    if not isinstance(name, str) or name not in OPS:
        raise ValueError(f"unknown op {reprlib.repr(name)}; expected one of {sorted(OPS)}")
    cls = OPS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - fields - {"name"}
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)} for op {name}; expected some of {sorted(fields)}")
    return cls(**{k: _value(v) for k, v in d.items() if k != "name"})


def _value(v: Any) -> Any:
    if isinstance(v, dict) and "name" in v:
        return op_from_dict(v)
    if isinstance(v, list):
        return tuple(_value(x) for x in v)
    return v
