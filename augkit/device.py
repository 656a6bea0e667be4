"""One rule for picking a device, shared by the loaders, trainers, expansion, bench and demo."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: torch.device | str = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; a CUDA device without CUDA is a clear error."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise RuntimeError(
                f"device={str(device)!r} but CUDA is not available (torch {torch.__version__}, {build}); "
                "use device='cpu', or device='auto' to fall back to the CPU"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={str(device)!r} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    return dev
