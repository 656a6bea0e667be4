"""The peers' closest equivalents of an augkit pipeline (see docs/benchmarks.md)."""

from __future__ import annotations

import torch

from ..ops import Contrast, GaussianNoise, HorizontalFlip, Normalize, Op, VerticalFlip, Zoom


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
