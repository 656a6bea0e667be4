"""TEMPORARY stand-in for geo's ``augkit.geometry.run_matrix`` (flips and Zoom only); removed at merge."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .ops import HorizontalFlip, Op, VerticalFlip, Zoom


def run_matrix(ops: Sequence[Op], params: Sequence[dict[str, Tensor]], hw: tuple[int, int]) -> tuple[Tensor, tuple[int, int]]:
    h, w = hw
    apply = params[0]["apply"]
    b, dev = apply.shape[0], apply.device
    ax = torch.ones(b, dtype=torch.float64, device=dev)
    ay = ax.clone()
    for op, p in zip(ops, params):
        if isinstance(op, Zoom):
            s = torch.where(p["apply"], p["scale"].double(), 1.0)
            ax, ay = ax * s, ay * s
        elif isinstance(op, HorizontalFlip):
            ax = ax * torch.where(p["apply"], -1.0, 1.0).double()
        elif isinstance(op, VerticalFlip):
            ay = ay * torch.where(p["apply"], -1.0, 1.0).double()
    cx, cy = (w - 1) / 2, (h - 1) / 2
    m = torch.zeros(b, 3, 3, dtype=torch.float64, device=dev)
    m[:, 0, 0], m[:, 1, 1], m[:, 2, 2] = ax, ay, 1.0
    m[:, 0, 2], m[:, 1, 2] = cx * (1 - ax), cy * (1 - ay)
    return m.float(), hw
