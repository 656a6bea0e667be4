"""How the CPU resizes one sample's crop: F.interpolate(antialias=True) by dtype and memory layout.

One crop (3, 400, 450) uint8 (a view of an HWC photo, as ``pipe(list)`` gets them) resized to
224x224, best of 50 calls each, in one run. Chose uint8 channels-last for ``_crop_resize``
(augkit/backends/tensor.py); see docs/ops.md, "uint8 crops on the CPU".

Run: ``python benchmarks/crop_resize.py [--threads 2]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F


def best_ms(fn: Callable[[], object], n: int = 50) -> float:
    for _ in range(5):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    torch.set_num_threads(ap.parse_args().threads)
    hwc = torch.randint(0, 256, (1, 400, 450, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    crop = hwc.permute(0, 3, 1, 2)  # channels-last memory, as torch.from_numpy(photo).permute(2, 0, 1)
    flat = crop.contiguous()

    def resize(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, (224, 224), mode="bilinear", align_corners=False, antialias=True)

    cases = {
        "float32, channels-last (.float() of the view)": lambda: resize(crop.float()),
        "float32, contiguous": lambda: resize(flat.float()),
        "uint8, contiguous": lambda: resize(flat),
        "uint8, channels-last": lambda: resize(crop),
        "uint8, contiguous made channels-last first": lambda: resize(flat.contiguous(memory_format=torch.channels_last)),
    }
    ref = resize(crop.float())
    print(f"3x400x450 -> 224x224, {torch.get_num_threads()} threads, best of 50")
    for name, fn in cases.items():
        diff = (fn().float() - ref).abs()
        print(f"  {name:45s} {best_ms(fn):6.3f} ms   |diff| vs float32: mean {diff.mean():.3f}, max {diff.max():.2f} levels")


if __name__ == "__main__":
    main()
