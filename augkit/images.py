"""Real photographs shipped inside the package (``augkit/assets``), nothing downloaded.

Four public-domain / CC0 photographs from scikit-image's sample data (see NOTICE), stored
once as JPEG (quality 90) at their original sizes, so the demo and the benchmarks need no
scikit-image.
"""

from __future__ import annotations

import numbers
from importlib import resources

import numpy as np
import torch

SAMPLE_NAMES = ("astronaut", "coffee", "chelsea", "rocket")


def sample_images(names: tuple[str, ...] = SAMPLE_NAMES) -> dict[str, np.ndarray]:
    """Bundled RGB photographs as HWC uint8 arrays of their own sizes (non-square included)."""
    from PIL import Image

    unknown = [n for n in names if n not in SAMPLE_NAMES]
    if unknown:
        raise ValueError(f"names must be among {list(SAMPLE_NAMES)}, got {unknown}")
    out = {}
    assets = resources.files("augkit") / "assets"
    for name in names:
        with (assets / f"{name}.jpg").open("rb") as f, Image.open(f) as im:
            out[name] = np.ascontiguousarray(np.asarray(im.convert("RGB")))
    return out


def sample_batch(size: int, batch_size: int, names: tuple[str, ...] = SAMPLE_NAMES) -> torch.Tensor:
    """A (B, 3, size, size) uint8 batch of bundled photographs, resized and repeated to fill B."""
    from PIL import Image

    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    imgs = [
        np.asarray(Image.fromarray(im).resize((int(size), int(size)), Image.Resampling.BILINEAR))
        for im in sample_images(names).values()
    ]
    stack = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)  # (N, 3, S, S)
    reps = -(-int(batch_size) // len(imgs))
    return stack.repeat(reps, 1, 1, 1)[: int(batch_size)].contiguous()
