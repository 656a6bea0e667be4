"""``augkit demo``: augment bundled photographs, save a preview grid, time augkit vs Kornia."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .device import resolve_device
from .images import sample_batch
from .ops import RandomResizedCrop, Rotate
from .pipeline import Pipeline, default_pipeline


def preview_grid(pipe: Pipeline, images: torch.Tensor, copies: int = 5) -> np.ndarray:
    """Rows: each image, then ``copies`` augmented versions. (N,3,H,W) uint8 -> HWC uint8 grid."""
    n, _, h, w = images.shape
    pad = 4
    grid = np.full((n * (h + pad) + pad, (copies + 1) * (w + pad) + pad, 3), 255, np.uint8)
    batch = images.repeat_interleave(copies, 0)  # every copy gets its own params
    aug = pipe(batch).mul(255).round().byte().view(n, copies, 3, h, w).cpu()
    for i in range(n):
        row = [images[i].cpu()] + [aug[i, k] for k in range(copies)]
        for j, tile in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y : y + h, x : x + w] = tile.permute(1, 2, 0).numpy()
    return grid


def time_images_per_s(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, repeats: int = 5, warmup: int = 2) -> float:
    """Median images/s of ``fn(x)`` over ``repeats`` calls after ``warmup`` calls (the bench's timer)."""
    from .bench.suite import median_seconds

    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    return x.shape[0] / float(np.median(median_seconds(lambda: fn(x), repeats, warmup, sync)))


def run_demo(out: str | Path = "augkit-demo.png", size: int = 224, batch_size: int = 64, seed: int = 0) -> dict[str, Any]:
    """Write the preview grid to ``out`` and return throughputs of augkit and Kornia.

    Args:
        out: PNG path for the preview grid (its folder must exist).
        size: image side in pixels for the timed batch, >= 8.
        batch_size: images per timed batch, >= 1.
        seed: seed of ``default_pipeline``.
    """
    from PIL import Image

    for name, value, low in (("size", size, 8), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    out = Path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"out {str(out)!r}: folder {str(out.parent)!r} does not exist")

    from .bench.peers import kornia_sequential

    device = resolve_device("auto")
    pipe = default_pipeline(seed)
    images = sample_batch(160, 4).to(device)
    Image.fromarray(preview_grid(Pipeline([RandomResizedCrop((160, 160), scale=(0.4, 1.0)), Rotate((-15, 15), border="reflect"), *pipe.ops], seed=seed), images)).save(out)

    x = sample_batch(size, batch_size).to(device)
    kornia = kornia_sequential(pipe.ops).to(device)
    ours = time_images_per_s(pipe, x)
    theirs = time_images_per_s(lambda t: kornia(t.float().div_(255)), x)
    return {"preview": str(out.resolve()), "device": str(device), "size": size, "batch_size": batch_size,
            "augkit_img_s": ours, "kornia_img_s": theirs}
