"""``augkit demo``: augment bundled photographs, save a preview grid, time augkit vs Kornia.

``--pipeline FILE.yaml`` previews any pipeline (augkit's YAML, or an Albumentations file
``Pipeline.from_yaml`` reads); ``--images DIR`` previews the user's own images instead of the
bundled photographs. Preview images of any sizes are first brought to one square tile
(``PREVIEW_SIDE``): the shorter side resized to it (bilinear, PIL), then the centre cut, so
the aspect ratio is kept and the pipeline sees one batch; a sizing op in the pipeline then
sets the augmented tiles' size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .device import resolve_device
from .imageconv import pil_to_array
from .images import sample_batch
from .ops import Normalize, RandomResizedCrop, Rotate
from .pipeline import Pipeline, default_pipeline

PREVIEW_SIDE = 160  # preview tiles are PREVIEW_SIDE x PREVIEW_SIDE before the pipeline
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def preview_grid(pipe: Pipeline, images: torch.Tensor, copies: int = 5) -> np.ndarray:
    """Rows: each image, then ``copies`` augmented versions. (N,3,H,W) uint8 -> HWC uint8 grid.

    The augmented tiles may have another size than the originals (a sizing op in ``pipe``);
    every cell is as large as the larger of the two, tiles at its top left. A trailing
    ``Normalize`` is left out (its output is not an image).
    """
    ops = list(pipe.ops)
    if ops and isinstance(ops[-1], Normalize):
        pipe = Pipeline(ops[:-1], seed=pipe.seed)
    n, _, h, w = images.shape
    pad = 4
    batch = images.repeat_interleave(copies, 0)  # every copy gets its own params
    out = pipe(batch)
    ho, wo = out.shape[-2:]
    aug = out.mul(255).round().clamp(0, 255).byte().view(n, copies, 3, ho, wo).cpu()
    ch, cw = max(h, ho), max(w, wo)
    grid = np.full((n * (ch + pad) + pad, (copies + 1) * (cw + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        row = [images[i].cpu()] + [aug[i, k] for k in range(copies)]
        for j, tile in enumerate(row):
            y, x = pad + i * (ch + pad), pad + j * (cw + pad)
            grid[y : y + tile.shape[1], x : x + tile.shape[2]] = tile.permute(1, 2, 0).numpy()
    return grid


def _square(img: Any, side: int, what: str = "image") -> np.ndarray:
    """A PIL image as a side x side RGB uint8 array: its colours as the data module reads them
    (``pil_to_array``: 16-bit grey scaled, palettes expanded), shorter side resized to ``side``,
    centre cut."""
    from PIL import Image

    arr = pil_to_array(img, what, alpha=False)
    img = Image.fromarray(np.repeat(arr[:, :, None], 3, 2) if arr.ndim == 2 else arr)
    w, h = img.size
    scale = side / min(w, h)
    nw, nh = max(side, round(w * scale)), max(side, round(h * scale))
    img = img.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - side) // 2, (nh - side) // 2
    return np.asarray(img.crop((left, top, left + side, top + side)))


def load_preview_images(folder: str | Path | None, count: int, side: int = PREVIEW_SIDE) -> torch.Tensor:
    """(N, 3, side, side) uint8: the first ``count`` images of ``folder`` (sorted by name), or the
    bundled photographs when ``folder`` is None, each brought to a square tile (``_square``)."""
    from PIL import Image

    if folder is None:
        from .images import sample_images

        arrays = [_square(Image.fromarray(im), side) for im in list(sample_images().values())[:count]]
    else:
        root = Path(folder)
        if not root.is_dir():
            raise ValueError(f"images {str(folder)!r} is not a folder")
        paths = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:count]
        if not paths:
            raise ValueError(f"images {str(folder)!r} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
        arrays = []
        for path in paths:
            try:
                with Image.open(path) as im:
                    arrays.append(_square(im, side, str(path)))
            except (OSError, Image.DecompressionBombError, TypeError, ValueError) as e:  # unreadable, or a mode with no colours
                raise OSError(f"cannot read image {str(path)!r}: {e}") from None
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def time_images_per_s(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, repeats: int = 5, warmup: int = 2) -> float:
    """Median images/s of ``fn(x)`` over ``repeats`` calls after ``warmup`` calls (the bench's timer)."""
    from .bench.suite import median_seconds

    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    return x.shape[0] / float(np.median(median_seconds(lambda: fn(x), repeats, warmup, sync)))


def run_demo(
    out: str | Path = "augkit-demo.png",
    size: int = 224,
    batch_size: int = 64,
    seed: int = 0,
    *,
    pipeline: str | Path | None = None,
    images: str | Path | None = None,
    max_images: int = 4,
    timing: bool = True,
) -> dict[str, Any]:
    """Write the preview grid to ``out`` and return throughputs of augkit and Kornia.

    Args:
        out: PNG path for the preview grid (its folder must exist).
        size: image side in pixels for the timed batch, >= 8.
        batch_size: images per timed batch, >= 1.
        seed: seed of ``default_pipeline`` (and of a ``pipeline`` file's pipeline, whose own seed is not used).
        pipeline: a pipeline YAML file to preview and time instead of the default (with a
            ``RandomResizedCrop`` and a ``Rotate`` in front for the preview).
        images: a folder of images to preview instead of the bundled photographs.
        max_images: preview at most this many images (rows), >= 1.
        timing: time the pipeline; Kornia only for the default pipeline (it has no equivalent
            of most ops a file may hold), so ``kornia_img_s`` is None otherwise.
    """
    from PIL import Image

    for name, value, low in (("size", size, 8), ("batch_size", batch_size, 1), ("max_images", max_images, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    out = Path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"out {str(out)!r}: folder {str(out.parent)!r} does not exist")

    device = resolve_device("auto")
    if pipeline is not None:
        if not Path(pipeline).is_file():
            raise ValueError(f"pipeline {str(pipeline)!r} is not a file")
        pipe = Pipeline(list(Pipeline.from_yaml(pipeline).ops), seed=seed)
        shown = pipe
    else:
        pipe = default_pipeline(seed)
        shown = Pipeline([RandomResizedCrop((160, 160), scale=(0.4, 1.0)), Rotate((-15, 15), border="reflect"), *pipe.ops], seed=seed)
    tiles = load_preview_images(images, max_images).to(device)
    Image.fromarray(preview_grid(shown, tiles)).save(out)
    result: dict[str, Any] = {"preview": str(out.resolve()), "device": str(device), "size": size, "batch_size": batch_size,
                              "pipeline": pipe, "images": len(tiles), "augkit_img_s": None, "kornia_img_s": None}
    if not timing:
        return result
    x = sample_batch(size, batch_size).to(device)
    result["augkit_img_s"] = time_images_per_s(pipe, x)
    if pipeline is None:
        from .bench.peers import kornia_sequential

        kornia = kornia_sequential(pipe.ops).to(device)
        result["kornia_img_s"] = time_images_per_s(lambda t: kornia(t.float().div_(255)), x)
    return result
