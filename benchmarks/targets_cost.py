"""What carrying targets costs next to the image: the detection workload, interleaved rounds.

RandomResizedCrop + HorizontalFlip + Affine (``augkit.bench.suite.detection_pipeline``) on a
(B, 3, S, S) uint8 batch: the image alone, + 20 boxes with labels per image, + boxes and a
(B, S, S) uint8 mask, and the targets alone (``transform_targets`` on the image's params).
Each round times every case once, in turn, so a slow spell of a shared machine hits all alike;
the best and the median of the rounds are printed.

Run: ``python benchmarks/targets_cost.py [--size 224] [--batch 32] [--rounds 15] [--device cpu]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's augkit, not an installed one

from augkit.bench.suite import BOXES_PER_IMAGE, detection_pipeline  # noqa: E402
from augkit.targets import check_targets, transform_targets  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    b, s = a.batch, a.size
    pipe = detection_pipeline(s)
    x = torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8, generator=g).to(dev)
    xy = torch.rand(b, BOXES_PER_IMAGE, 2, generator=g) * s * 0.8
    boxes = [t.to(dev) for t in torch.cat((xy, xy + s * 0.1), 2).unbind(0)]
    labels = [torch.arange(BOXES_PER_IMAGE, device=dev)] * b
    masks = torch.randint(0, 5, (b, s, s), dtype=torch.uint8, generator=g).to(dev)
    params = pipe.sample(b, dev, hw=(s, s))
    cases = {
        "image only": lambda: pipe(x, params=params),
        "image + boxes": lambda: pipe(x, boxes=boxes, labels=labels, params=params),
        "image + boxes + mask": lambda: pipe(x, masks=masks, boxes=boxes, labels=labels, params=params),
        "boxes alone": lambda: transform_targets(pipe.ops, params, (s, s), check_targets(b, (s, s), boxes=boxes, labels=labels, device=dev), batch=b),
        "mask alone": lambda: transform_targets(pipe.ops, params, (s, s), check_targets(b, (s, s), masks=masks, device=dev), batch=b),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():
        fn()
    sync()
    for _ in range(a.rounds):
        for k, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[k].append(time.perf_counter() - t0)
    base = min(times["image only"])
    print(f"B={b}, {s}x{s}, {dev}, {a.rounds} rounds, {torch.get_num_threads()} threads")
    for k, t in times.items():
        print(f"  {k:<22} best {1e3 * min(t):8.1f} ms  median {1e3 * float(np.median(t)):8.1f} ms  best / image-only best {min(t) / base:5.2f}")


if __name__ == "__main__":
    main()
