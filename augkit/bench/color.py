"""The photometric case of ``augkit bench``: ColorJitter + GaussianBlur + Erasing vs Kornia and Albumentations.

Same pipeline on every side: ColorJitter(0.4, 0.4, 0.4, 0.1) on every image, GaussianBlur
(sigma 0.1..2, 13x13 kernel) and Erasing (torchvision's box sampling, value 0) each with p = 0.5.
uint8 (B, 3, S, S) in, float32 in [0, 1] out; Albumentations runs per image in one process.
Kornia's ColorJitter applies its four parts in a fixed order too (brightness, contrast,
saturation, hue), so the work is the same; rows are in group "color", ratios against "color-augkit".
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..ops import ColorJitter, Erasing, GaussianBlur
from ..pipeline import Pipeline

__all__ = ["color_pipeline", "color_cases", "color_targets", "JITTER", "SIGMA", "KERNEL"]

JITTER = (0.4, 0.4, 0.4, 0.1)
SIGMA = (0.1, 2.0)
KERNEL = 13  # GaussianBlur's own choice for sigma up to 2: round(6 * 2 + 1) | 1


def color_pipeline(seed: int = 0) -> Pipeline:
    return Pipeline([ColorJitter(*JITTER), GaussianBlur(SIGMA, kernel_size=KERNEL, p=0.5), Erasing(p=0.5)], seed=seed)


def _kornia(device: torch.device) -> Callable[[Tensor], Tensor]:
    import kornia.augmentation as K

    aug = K.AugmentationSequential(
        K.ColorJitter(*JITTER, p=1.0),
        K.RandomGaussianBlur((KERNEL, KERNEL), SIGMA, p=0.5),
        K.RandomErasing(scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0, p=0.5),
    ).to(device)
    return lambda x: aug(x.float().div_(255)).clamp_(0.0, 1.0)


def _albumentations() -> Any:
    import albumentations as A

    b, c, s, h = JITTER
    return A.Compose([
        A.ColorJitter(brightness=b, contrast=c, saturation=s, hue=h, p=1.0),
        A.GaussianBlur(blur_limit=(KERNEL, KERNEL), sigma_limit=SIGMA, p=0.5),
        A.Erasing(scale=(0.02, 0.33), ratio=(0.3, 3.3), fill=0, p=0.5),
    ], seed=0)


def color_cases(size: int, batch: int, device: torch.device, x: Tensor, imgs: list[np.ndarray], peers: tuple[str, ...],
                cfg: dict, sync: Callable[[], None]) -> list[dict]:
    """Rows for the photometric pipeline at one size: augkit and Kornia interleaved, Albumentations after."""
    from . import peers as P
    from . import suite as S

    pipe = color_pipeline()
    y = pipe(x)
    ref = {"shape": tuple(y.shape), "dtype": y.dtype, "min": 0.0, "max": 1.0}
    del y
    rows: list[dict] = []
    timed: list[tuple[dict, Callable[[], Any]]] = []
    makers: list[tuple[str, str, Callable[[Tensor], Any]]] = [("color-augkit", "augkit ColorJitter+Blur+Erasing", pipe)]
    if "kornia" in peers:
        makers.append(("color-kornia", "Kornia ColorJitter+Blur+Erasing", _kornia(device)))
    for case, label, fn in makers:
        row = S._row(case, label, size, batch, "color")
        problem = S.check_output(fn(x), x, ref)
        if problem:
            rows.append({**row, "status": "failed", "note": f"output check: {problem}"})
        else:
            rows.append(row)
            timed.append((row, partial(fn, x)))
    S._timed_interleaved(timed, batch, cfg["repeats"], cfg["warmup"], sync)
    if "albumentations" in peers:
        compose = _albumentations()

        def one_process() -> Tensor:
            return P.collate_float([compose(image=im)["image"] for im in imgs])

        row = S._row("color-albumentations", "Albumentations ColorJitter+Blur+Erasing, 1 process", size, batch, "color",
                     note="CPU, output on CPU")
        problem = S.check_output(one_process(), x, ref)
        if problem:
            rows.append({**row, "status": "failed", "note": f"output check: {problem}"})
        else:
            rows.append(S._timed(row, one_process, batch, cfg["repeats"], cfg["warmup"], lambda: None))
    return rows


def color_targets(result: dict) -> list[dict]:
    """Issue 12's target: on the CPU at 224, augkit >= 3x Kornia on the photometric pipeline."""
    cfg = result["config"]
    t = {"device": "cpu", "batch_size": cfg["batch_size"], "size": 224, "what": "color pipeline: augkit / Kornia",
         "need": 3.0, "value": None, "met": None}
    r = next((r for r in result["rows"] if r["case"] == "color-kornia" and r["size"] == 224 and r["status"] == "ok"), None)
    if torch.device(cfg["device"]).type != "cpu" or r is None or r.get("augkit_ratio") is None:
        t["note"] = "not measured in this run"
    else:
        t["value"] = r["augkit_ratio"]
        t["met"] = t["value"] >= 3.0
    return [t]
