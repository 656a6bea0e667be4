"""Dataset and loader wrappers: per-image augmentation in workers, batched augmentation on a device."""

from .datasets import AugmentedDataset, collate_uint8, sample_key, to_chw_uint8, to_hwc_uint8
from .loaders import CPU_TENSOR_MAX_PIXELS, DeviceLoader, Loader, choose_backend, loader, resolve_device

__all__ = [
    "AugmentedDataset",
    "DeviceLoader",
    "Loader",
    "loader",
    "collate_uint8",
    "to_chw_uint8",
    "to_hwc_uint8",
    "sample_key",
    "choose_backend",
    "resolve_device",
    "CPU_TENSOR_MAX_PIXELS",
]
