"""The peers' closest equivalents of an augkit pipeline (see docs/benchmarks.md).

Every batched peer is a callable ``(B, C, H, W) uint8 -> (B, C, H, W) float32 in [0, 1]`` on
the input's device, so the conversion from uint8 is part of each peer's timed work, as it is
of augkit's. The per-image Albumentations peer maps one HWC uint8 numpy image to another, and
``collate_float`` turns a list of those into the same float32 batch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from ..ops import Contrast, GaussianNoise, HorizontalFlip, Normalize, Op, VerticalFlip, Zoom

__all__ = [
    "kornia_sequential",
    "kornia_peer",
    "albumentations_compose",
    "collate_float",
    "torch_reference",
    "torchvision_peer",
]

GREY = (0.299, 0.587, 0.114)  # ITU-R 601 luma


def kornia_sequential(ops: list[Op]) -> torch.nn.Module:
    """Kornia ``AugmentationSequential`` with the nearest Kornia op for each augkit op.

    Kornia's RandomContrast multiplies (x * f) instead of blending with the mean, and its
    RandomGaussianNoise has one fixed std: we give it the top of augkit's std range.
    """
    import kornia.augmentation as K

    table = {
        HorizontalFlip: lambda o: K.RandomHorizontalFlip(p=o.p),
        VerticalFlip: lambda o: K.RandomVerticalFlip(p=o.p),
        Zoom: lambda o: K.RandomAffine(degrees=0.0, scale=o.scale, p=o.p, fill_value=o.fill),
        Contrast: lambda o: K.RandomContrast(contrast=o.factor, p=o.p),
        GaussianNoise: lambda o: K.RandomGaussianNoise(mean=0.0, std=o.std[1], p=o.p),
        Normalize: lambda o: K.Normalize(mean=torch.tensor(o.mean), std=torch.tensor(o.std)),
    }
    return K.AugmentationSequential(*(table[type(op)](op) for op in ops))


def kornia_peer(ops: list[Op], device: torch.device) -> Callable[[Tensor], Tensor]:
    """uint8 batch -> float in [0, 1] -> ``kornia_sequential`` -> clamp to [0, 1] (augkit clamps after noise)."""
    aug = kornia_sequential(ops).to(device)
    clamp = not any(isinstance(op, Normalize) for op in ops)

    def run(x: Tensor) -> Tensor:
        y = aug(x.float().div_(255))
        return y.clamp_(0.0, 1.0) if clamp else y

    return run


def albumentations_compose(ops: list[Op], seed: int = 0):
    """A hand-written ``albumentations.Compose``, uint8 HWC -> uint8 HWC, one image at a time.

    Stock transforms only: flips, ``Affine(scale=...)`` (bilinear, constant fill), ``ColorJitter``
    with contrast only (blends with the grey mean, as augkit's Contrast) and ``GaussNoise`` with
    ``std_range`` in [0, 1] units. Normalize is left to ``collate_float``'s caller.
    """
    import albumentations as A
    import cv2

    table = {
        HorizontalFlip: lambda o: A.HorizontalFlip(p=o.p),
        VerticalFlip: lambda o: A.VerticalFlip(p=o.p),
        Zoom: lambda o: A.Affine(
            scale=o.scale, interpolation=cv2.INTER_LINEAR, border_mode=cv2.BORDER_CONSTANT, fill=round(o.fill * 255), p=o.p
        ),
        Contrast: lambda o: A.ColorJitter(brightness=(1.0, 1.0), contrast=o.factor, saturation=(1.0, 1.0), hue=(0.0, 0.0), p=o.p),
        GaussianNoise: lambda o: A.GaussNoise(std_range=o.std, mean_range=(0.0, 0.0), per_channel=True, p=o.p),
    }
    unknown = [type(op).__name__ for op in ops if type(op) not in table]
    if unknown:
        raise TypeError(f"the Albumentations peer has no equivalent for {unknown}; expected ops among {[c.__name__ for c in table]}")
    return A.Compose([table[type(op)](op) for op in ops], seed=seed)


def collate_float(images: list[np.ndarray]) -> Tensor:
    """List of HWC uint8 images (same size) -> (B, C, H, W) float32 in [0, 1], contiguous, in one pass."""
    u8 = torch.from_numpy(np.stack(images))  # (B, H, W, C)
    b, h, w, c = u8.shape
    out = torch.empty((b, c, h, w), dtype=torch.float32)
    out.copy_(u8.permute(0, 3, 1, 2))
    return out.mul_(1.0 / 255)


def torch_reference(ops: list[Op], device: torch.device, seed: int = 0) -> Callable[[Tensor], Tensor]:
    """Plain torch, written the obvious way: per-sample params, ``torch.where`` flips,
    ``affine_grid`` + ``grid_sample`` zoom, mean-blend contrast, ``randn`` noise, fresh tensors."""
    g = torch.Generator(device=device).manual_seed(seed)

    def rand(n: int) -> Tensor:
        return torch.rand(n, generator=g, device=device)

    def run(x: Tensor) -> Tensor:
        b = x.shape[0]
        y = x.float().div(255)
        for op in ops:
            apply = (rand(b) < op.p)[:, None, None, None]
            if isinstance(op, HorizontalFlip):
                y = torch.where(apply, y.flip(3), y)
            elif isinstance(op, VerticalFlip):
                y = torch.where(apply, y.flip(2), y)
            elif isinstance(op, Zoom):
                s = torch.where(apply.view(b), op.scale[0] + rand(b) * (op.scale[1] - op.scale[0]), 1.0)
                theta = torch.zeros(b, 2, 3, device=device)
                theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / s  # output u reads input u / s, about the centre
                grid = nnf.affine_grid(theta, list(y.shape), align_corners=False)
                y = nnf.grid_sample(y - op.fill if op.fill else y, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
                y = y + op.fill if op.fill else y
            elif isinstance(op, Contrast):
                f = torch.where(apply.view(b), op.factor[0] + rand(b) * (op.factor[1] - op.factor[0]), 1.0)[:, None, None, None]
                if y.shape[1] == 3:
                    m = (y * torch.tensor(GREY, device=device)[:, None, None]).sum(1).mean((1, 2))[:, None, None, None]
                else:
                    m = y.mean((1, 2, 3), keepdim=True)
                y = (m + f * (y - m)).clamp(0.0, 1.0)
            elif isinstance(op, GaussianNoise):
                std = torch.where(apply.view(b), op.std[0] + rand(b) * (op.std[1] - op.std[0]), 0.0)[:, None, None, None]
                y = (y + torch.randn(y.shape, generator=g, device=device) * std).clamp(0.0, 1.0)
            elif isinstance(op, Normalize):
                mean = torch.tensor(op.mean, device=device)[:, None, None]
                y = (y - mean) / torch.tensor(op.std, device=device)[:, None, None]
            else:
                raise TypeError(f"the plain-torch reference has no code for {type(op).__name__}")
        return y

    return run


def torchvision_available() -> bool:
    """True when ``torchvision.transforms.v2`` imports; any failure (missing, or broken against this
    torch: ``RuntimeError``, ``AttributeError``, ...) means the peer is skipped, not a crash."""
    try:
        import torchvision.transforms.v2  # noqa: F401
    except Exception:
        return False
    return True


def torchvision_peer(ops: list[Op], device: torch.device) -> Callable[[Tensor], Tensor]:
    """torchvision v2 ``Compose`` on the whole batch. Note: v2 draws ONE set of params per call,
    so every image of a batch gets the same flip, zoom, contrast and noise level."""
    from torchvision.transforms import v2

    table = {
        HorizontalFlip: lambda o: v2.RandomHorizontalFlip(p=o.p),
        VerticalFlip: lambda o: v2.RandomVerticalFlip(p=o.p),
        Zoom: lambda o: v2.RandomApply([v2.RandomAffine(degrees=0.0, scale=o.scale, fill=o.fill)], p=o.p),
        Contrast: lambda o: v2.RandomApply([v2.ColorJitter(contrast=o.factor)], p=o.p),
        GaussianNoise: lambda o: v2.RandomApply([v2.GaussianNoise(sigma=o.std[1], clip=True)], p=o.p),
        Normalize: lambda o: v2.Normalize(mean=list(o.mean), std=list(o.std)),
    }
    t = v2.Compose([v2.ToDtype(torch.float32, scale=True)] + [table[type(op)](op) for op in ops])

    def run(x: Tensor) -> Tensor:
        return t(x)

    return run
