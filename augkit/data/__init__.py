"""Data on top of the engine: dataset and loader wrappers, offline expansion."""

from .datasets import AugmentedDataset, collate_uint8, sample_key, to_chw_uint8, to_hwc_uint8
from .expand import expand
from .loaders import CPU_TENSOR_MAX_PIXELS, DeviceLoader, Loader, choose_backend, loader, resolve_device

__all__ = [
    "AugmentedDataset",
    "DeviceLoader",
    "Loader",
    "loader",
    "collate_uint8",
    "expand",
    "to_chw_uint8",
    "to_hwc_uint8",
    "sample_key",
    "choose_backend",
    "resolve_device",
    "CPU_TENSOR_MAX_PIXELS",
]
