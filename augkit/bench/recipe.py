"""The second ``augkit bench`` workload: the ImageNet training recipe from mixed-size photos.

RandomResizedCrop(S) + HorizontalFlip + Contrast + GaussianNoise on uint8 photographs of
several sizes (the bundled photos resized to 1.1x to 2.3x S, some non-square), against:
Kornia (``RandomResizedCrop`` per image, since Kornia cannot batch mixed sizes, then its batched
flip, contrast and noise), and Albumentations (``A.RandomResizedCrop`` with
``area_for_downscale="image"``, i.e. antialiased as augkit's, + flip + ``ColorJitter`` contrast +
``GaussNoise``) in one process and in DataLoader workers. augkit takes the list in one call
(``pipe(list_of_uint8_tensors)``). Every output is a (B, 3, S, S) float32 batch in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..images import sample_images
from ..ops import Contrast, GaussianNoise, HorizontalFlip, RandomResizedCrop
from ..pipeline import Pipeline
from . import peers as P

__all__ = ["recipe_pipeline", "recipe_images", "recipe_cases", "recipe_targets"]

SHAPES = ((1.15, 1.15), (1.5, 2.0), (2.3, 1.7), (1.3, 1.6), (2.0, 2.0), (1.8, 1.2))  # (H, W) as multiples of S


def recipe_pipeline(size: int, seed: int = 0) -> Pipeline:
    return Pipeline([RandomResizedCrop((size, size)), HorizontalFlip(p=0.5), Contrast(factor=(0.8, 1.2)), GaussianNoise(std=(0.0, 0.05))], seed=seed)


def recipe_images(size: int, n: int) -> list[np.ndarray]:
    """``n`` HWC uint8 photos cycling over the bundled ones at the sizes of ``SHAPES`` (times ``size``)."""
    from PIL import Image

    photos = list(sample_images().values())
    out = []
    for i in range(n):
        fh, fw = SHAPES[i % len(SHAPES)]
        im = Image.fromarray(photos[i % len(photos)]).resize((round(fw * size), round(fh * size)), Image.Resampling.BILINEAR)
        out.append(np.ascontiguousarray(np.asarray(im)))
    return out


def _kornia(size: int, device: torch.device) -> Callable[[list[Tensor]], Tensor]:
    import kornia.augmentation as K

    rrc = K.RandomResizedCrop((size, size), scale=(0.08, 1.0)).to(device)
    rest = K.AugmentationSequential(
        K.RandomHorizontalFlip(p=0.5), K.RandomContrast(contrast=(0.8, 1.2)), K.RandomGaussianNoise(std=0.05)
    ).to(device)

    def run(xs: list[Tensor]) -> Tensor:
        crops = torch.cat([rrc(x[None].float().div_(255)) for x in xs])  # mixed sizes: one image per call
        return rest(crops).clamp_(0.0, 1.0)

    return run


def _albu(size: int) -> Any:
    import albumentations as A

    return A.Compose([
        A.RandomResizedCrop(size=(size, size), scale=(0.08, 1.0), area_for_downscale="image"),
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=(1.0, 1.0), contrast=(0.8, 1.2), saturation=(1.0, 1.0), hue=(0.0, 0.0), p=1.0),
        A.GaussNoise(std_range=(0.0, 0.05), mean_range=(0.0, 0.0), per_channel=True, p=1.0),
    ], seed=0)


def recipe_cases(size: int, batch: int, device: torch.device, peers: tuple[str, ...], workers: int, cfg: dict,
                 sync: Callable[[], None]) -> list[dict]:
    """Rows of group "recipe" (ratios against "recipe-augkit"), timed like the batched cases."""
    from .suite import _AlbuImages, _epoch, _row, _timed, _timed_interleaved, check_output

    imgs = recipe_images(size, batch)
    xs = [torch.from_numpy(im.copy()).permute(2, 0, 1).to(device) for im in imgs]  # (3, Hi, Wi) uint8
    pipe = recipe_pipeline(size)
    ref = {"shape": (batch, 3, size, size), "dtype": torch.float32, "min": 0.0, "max": 1.0}
    note = "mixed sizes " + ", ".join(f"{round(h * size)}x{round(w * size)}" for h, w in SHAPES)
    rows: list[dict] = []
    timed: list[tuple[dict, Callable[[], Any]]] = []
    cases: list[tuple[str, str, Callable[[], Callable[[list[Tensor]], Tensor]]]] = [("recipe-augkit", "augkit pipe(list), one call", lambda: pipe)]
    if "kornia" in peers:
        cases.append(("recipe-kornia", "Kornia RandomResizedCrop per image + batched rest", lambda: _kornia(size, device)))
    for case, label, make in cases:
        row = _row(case, label, size, batch, "recipe", note=note if case == "recipe-augkit" else "")
        fn = make()
        problem = check_output(fn(xs), None, ref)
        if problem:
            rows.append({**row, "status": "failed", "note": f"output check: {problem}"})
        else:
            rows.append(row)
            timed.append((row, partial(fn, xs)))
    _timed_interleaved(timed, batch, cfg["repeats"], cfg["warmup"], sync)
    if "albumentations" in peers:
        compose = _albu(size)
        row = _row("recipe-albumentations", "Albumentations Compose, 1 process", size, batch, "recipe", note="CPU")

        def one() -> Tensor:
            return P.collate_float([compose(image=im)["image"] for im in imgs])

        problem = check_output(one(), None, ref)
        rows.append({**row, "status": "failed", "note": f"output check: {problem}"} if problem else _timed(row, one, batch, cfg["repeats"], cfg["warmup"], lambda: None))
        n = cfg["batches"] * batch
        loader = torch.utils.data.DataLoader(_AlbuImages(imgs, compose, n), batch_size=batch, num_workers=workers,
                                             collate_fn=P.collate_float, persistent_workers=workers > 0)
        row = _row("recipe-albumentations-workers", f"Albumentations Compose, {workers} DataLoader workers", size, batch,
                   "recipe", note=f"CPU, {cfg['batches']} batches per timed epoch")
        rows.append(_timed(row, lambda: _epoch(loader, torch.device("cpu")), n, cfg["repeats"], max(cfg["warmup"], 2), lambda: None))
    return rows


def recipe_targets(result: dict) -> list[dict]:
    """The issue's CPU targets for this workload: >= 3x Kornia, >= 1x Albumentations with 2 workers."""
    cfg, rows = result["config"], result["rows"]
    out = []
    for peer, case, what, need in (("kornia", "recipe-kornia", "recipe: augkit / Kornia", 3.0),
                                   ("albumentations", "recipe-albumentations-workers", "recipe: augkit / Albumentations 2 workers", 1.0)):
        if peer not in cfg["peers"]:
            continue
        t: dict[str, Any] = {"device": "cpu", "batch_size": 64, "size": 224, "what": what, "need": need, "value": None, "met": None}
        r = next((r for r in rows if r["case"] == case and r["size"] == 224 and r["status"] == "ok"), None)
        ok = torch.device(cfg["device"]).type == "cpu" and cfg["batch_size"] == 64 and cfg.get("workers") == 2
        if r is None or not ok:
            t["note"] = "not measured in this run"
        else:
            t["value"] = r["augkit_ratio"]
            t["met"] = t["value"] >= need
        out.append(t)
    return out
