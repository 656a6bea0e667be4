"""Real photographs that ship with installed packages (scikit-image), nothing downloaded."""

from __future__ import annotations

import numpy as np
import torch

# name -> scikit-image loader; all four are files inside the scikit-image wheel
SAMPLE_NAMES = ("astronaut", "coffee", "chelsea", "rocket")


def sample_images(names: tuple[str, ...] = SAMPLE_NAMES) -> dict[str, np.ndarray]:
    """Bundled RGB photographs as HWC uint8 arrays of their own sizes (non-square included)."""
    import skimage.data

    return {name: np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]) for name in names}


def sample_batch(size: int, batch_size: int, names: tuple[str, ...] = SAMPLE_NAMES) -> torch.Tensor:
    """A (B, 3, size, size) uint8 batch of bundled photographs, resized and repeated to fill B."""
    from PIL import Image

    imgs = [
        np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
        for im in sample_images(names).values()
    ]
    stack = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)  # (N, 3, S, S)
    reps = -(-batch_size // len(imgs))
    return stack.repeat(reps, 1, 1, 1)[:batch_size].contiguous()
