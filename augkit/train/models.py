"""Model builders whose capacity is one knob: ``width`` and ``depth``."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["build_cnn", "count_params"]


def build_cnn(
    in_channels: int = 1,
    num_classes: int = 10,
    width: int = 32,
    depth: int = 2,
    dropout: float = 0.0,
    seed: int | None = None,
) -> nn.Sequential:
    """A small image classifier: ``depth`` conv blocks, then a two-layer head.

    Block i is ``Conv3x3(width * 2**i) -> ReLU -> MaxPool2`` (ceil mode, so a 1x1 map stays 1x1);
    the head is ``AdaptiveAvgPool(2) -> Flatten -> Dropout -> Linear(4 * width) -> ReLU -> Dropout
    -> Linear(num_classes)``. Capacity grows with ``width`` and ``depth``; ``dropout`` (in [0, 1))
    is active in training mode only (``model.train()``), an identity in ``model.eval()``.

    Args:
        in_channels: channels of the input images (1 for grey).
        num_classes: number of output logits.
        width: channels of the first conv block (>= 1); block i has ``width * 2**i``.
        depth: number of conv blocks (>= 1).
        dropout: probability of zeroing a head feature during training, in [0, 1).
        seed: if given, initializes the weights from this seed without touching the global RNG.

    Shape:
        Input: (B, in_channels, H, W) float, any H, W >= 1. Output: (B, num_classes) logits.
    """
    for name, v in (("in_channels", in_channels), ("num_classes", num_classes), ("width", width), ("depth", depth)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"build_cnn: {name} must be an int >= 1, got {v!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"build_cnn: dropout must be a number in [0, 1), got {dropout!r}")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        layers: list[nn.Module] = []
        c = in_channels
        for i in range(depth):
            out = width * 2**i
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
            c = out
        hidden = 4 * width
        layers += [
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(4 * c, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        ]
        return nn.Sequential(*layers)


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
