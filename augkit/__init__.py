"""augkit: fast batched data augmentation on the GPU, dependable per-image fallback on the CPU."""

from typing import Any

from .data import AugmentedDataset, DeviceLoader, collate_uint8, expand, loader
from .mix import CutMix, MixUp
from .module import Augment
from .ops import (
    Affine,
    AutoContrast,
    Brightness,
    CenterCrop,
    ColorJitter,
    Contrast,
    Equalize,
    Erasing,
    Gamma,
    GaussianBlur,
    GaussianNoise,
    Grayscale,
    HorizontalFlip,
    Hue,
    Invert,
    Normalize,
    OneOf,
    Op,
    Posterize,
    RandAugment,
    RandomCrop,
    RandomResizedCrop,
    Resize,
    Rot90,
    Rotate,
    Saturation,
    Sharpness,
    Solarize,
    SomeOf,
    Translate,
    TrivialAugment,
    VerticalFlip,
    Zoom,
)
from .params import Params
from .pipeline import Pipeline, default_pipeline

__version__ = "0.1.0"

__all__ = [
    "Pipeline",
    "MixUp",
    "CutMix",
    "Augment",
    "default_pipeline",
    "expand",
    "Params",
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
    "Sharpness",
    "GaussianBlur",
    "Erasing",
    "OneOf",
    "SomeOf",
    "RandAugment",
    "TrivialAugment",
    "AugmentedDataset",
    "DeviceLoader",
    "loader",
    "collate_uint8",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "ray":  # ak.ray (Ray Data helpers) is imported on first use only
        import importlib

        return importlib.import_module(".ray", __name__)
    raise AttributeError(f"module 'augkit' has no attribute {name!r}")
