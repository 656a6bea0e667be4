"""augkit: fast batched data augmentation on the GPU, dependable per-image fallback on the CPU."""

from .data import AugmentedDataset, DeviceLoader, collate_uint8, expand, loader
from .module import Augment
from .ops import (
    Affine,
    CenterCrop,
    Contrast,
    GaussianNoise,
    HorizontalFlip,
    Normalize,
    Op,
    RandomCrop,
    RandomResizedCrop,
    Resize,
    Rot90,
    Rotate,
    Translate,
    VerticalFlip,
    Zoom,
)
from .params import Params
from .pipeline import Pipeline, default_pipeline

__version__ = "0.1.0"

__all__ = [
    "Pipeline",
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
    "AugmentedDataset",
    "DeviceLoader",
    "loader",
    "collate_uint8",
    "__version__",
]
