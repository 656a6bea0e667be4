"""End-to-end loader throughput: ``ak.loader`` vs a plain DataLoader over an albumentations.Compose.

Both read the same in-memory dataset of (HWC uint8 photo, label) items, use the same batch
size, worker count and shuffling, and yield float32 (B, C, H, W) batches in [0, 1]:

- ``plain``: ``DataLoader(ComposeDataset)``, each item ``pipe.to_albumentations()(image=...)``
  then ``torch.from_numpy(...).permute(2, 0, 1).float() / 255`` (what users write today);
- ``auto``: ``ak.loader(..., device="auto")`` (the fallback rule picks the path);
- ``tensor`` / ``albumentations``: ``ak.loader`` with the path forced (``--sweep``).

Images/s = images delivered / wall time of whole epochs (worker start-up included, as users
pay it; ``ak.loader`` keeps its workers across epochs, a default DataLoader re-forks them),
median (and best) of ``--epochs`` epochs after one warm-up epoch; the paths are interleaved
epoch by epoch so machine noise hits them alike.

    PYTHONPATH=. python benchmarks/loader.py                             # 224x224, auto vs plain
    PYTHONPATH=. python benchmarks/loader.py --sweep 32 64 96 128 224    # the table in docs/data.md
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

import augkit as ak
from augkit.images import sample_batch


class PhotoDataset:
    """``n`` (HWC uint8, label) items from the bundled photographs at ``size`` x ``size``."""

    def __init__(self, size: int, n: int) -> None:
        batch = sample_batch(size, n)  # (n, 3, S, S) uint8
        self.images = [np.ascontiguousarray(b.permute(1, 2, 0).numpy()) for b in batch]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], i % 10


class ComposeDataset:
    """The plain baseline: the equivalent albumentations.Compose per item, then float CHW."""

    def __init__(self, base: PhotoDataset, compose) -> None:
        self.base, self.compose = base, compose

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        img, y = self.base[i]
        out = self.compose(image=img)["image"]
        return torch.from_numpy(out).permute(2, 0, 1).float().div_(255), y


def epoch_rate(loader) -> float:
    t0 = time.perf_counter()
    n = 0
    for x, _ in loader:
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def measure(size: int, n: int, batch_size: int, workers: int, epochs: int, paths: list[str]) -> dict[str, float]:
    base = PhotoDataset(size, n)
    pipe = ak.default_pipeline(0)
    loaders = {}
    for name in paths:
        if name == "plain":
            loaders[name] = DataLoader(ComposeDataset(base, pipe.to_albumentations()), batch_size=batch_size,
                                       shuffle=True, num_workers=workers)
        else:
            backend = "auto" if name == "auto" else name
            loaders[name] = ak.loader(base, pipe, batch_size=batch_size, device="auto", num_workers=workers,
                                      backend=backend)
    rates: dict[str, list[float]] = {k: [] for k in loaders}
    for ld in loaders.values():  # warm-up epoch
        epoch_rate(ld)
    for _ in range(epochs):
        for k, ld in loaders.items():
            rates[k].append(epoch_rate(ld))
    out = {k: statistics.median(v) for k, v in rates.items()}
    out.update({f"{k}_best": max(v) for k, v in rates.items()})
    if "auto" in loaders:
        out["auto_backend"] = loaders["auto"].backend
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--sweep", type=int, nargs="*", help="sizes: time the forced tensor and albumentations paths too")
    ap.add_argument("--n", type=int, default=512, help="images per epoch")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.workers} workers, batch {args.batch_size}, "
          f"{args.n} images/epoch, median of {args.epochs} epochs")
    results = []
    sizes = args.sweep or [args.size]
    paths = ["plain", "auto"] + (["tensor", "albumentations"] if args.sweep and device == "cpu" else [])
    for size in sizes:
        n = args.n if size >= 128 else args.n * 8  # small images: more of them so epochs last
        r = measure(size, n, args.batch_size, args.workers, args.epochs, paths)
        r.update(size=size, n=n)
        results.append(r)
        cols = "  ".join(f"{k} {r[k]:,.0f} (best {r[k + '_best']:,.0f})" for k in paths)
        print(f"{size}x{size} img/s: {cols}  | auto chose {r['auto_backend']}, "
              f"auto/plain = {r['auto'] / r['plain']:.2f}x (best/best {r['auto_best'] / r['plain_best']:.2f}x)")
    if args.out:
        meta = dict(device=device, machine=platform.machine(), cpus=torch.get_num_threads(), workers=args.workers,
                    batch_size=args.batch_size, epochs=args.epochs, torch=torch.__version__)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
