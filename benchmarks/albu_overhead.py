"""Per-image CPU throughput: ``pipe(img)`` (Albumentations backend) vs a hand-written ``albumentations.Compose``.

Both run on the same stream of 224x224 uint8 photographs, one process, one thread, interleaved
rounds so background load hits both alike. The hand-written Compose uses the nearest stock
transforms (multiplicative contrast, ``A.GaussNoise``), as a user would write it.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/albu_overhead.py [--size 224] [--images 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time

import albumentations as A
import cv2
import numpy as np
import torch

import augkit as ak
from augkit.images import sample_batch


def hand_written(seed: int) -> A.Compose:
    """The stock-Albumentations equivalent of ``ak.default_pipeline()``."""
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.Affine(scale=(0.8, 1.2), interpolation=cv2.INTER_LINEAR, border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0),
            A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.2, p=1.0),
            A.GaussNoise(std_range=(0.0, 0.05), p=1.0),
        ],
        seed=seed,
    )


def rate(fn, images: list[np.ndarray]) -> float:
    t0 = time.perf_counter()
    for im in images:
        fn(im)
    return len(images) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    images = [np.ascontiguousarray(t.permute(1, 2, 0).numpy()) for t in sample_batch(args.size, args.images)]
    pipe = ak.default_pipeline(seed=0)
    compose = hand_written(seed=0)
    to_albu = pipe.to_albumentations()
    cases = {
        "augkit pipe(img)": lambda im: pipe(im),
        "augkit pipe.to_albumentations()": lambda im: to_albu(image=im)["image"],
        "hand-written A.Compose": lambda im: compose(image=im)["image"],
    }
    for fn in cases.values():  # warm up
        rate(fn, images[:10])
    best = {k: 0.0 for k in cases}
    for _ in range(args.rounds):
        for k, fn in cases.items():
            best[k] = max(best[k], rate(fn, images))
    print(f"{args.size}x{args.size} uint8 HWC, {args.images} images x {args.rounds} rounds, 1 thread, best round:")
    for k, v in best.items():
        print(f"  {k:34s} {v:8,.0f} img/s")
    base = best["hand-written A.Compose"]
    print(f"ratio pipe(img) / hand-written: {best['augkit pipe(img)'] / base:.2f}x")
    print(f"ratio to_albumentations() / hand-written: {best['augkit pipe.to_albumentations()'] / base:.2f}x")


if __name__ == "__main__":
    main()
