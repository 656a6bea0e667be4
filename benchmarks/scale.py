"""Local engine vs Ray Data for ``augkit expand``, and Ray's fixed costs (docs/scale.md).

Makes ``--n`` PNGs (random sizes 128-256 px, from the bundled photos, 4 classes) in ``--root``,
then times, on this machine:

- ``local``: ``expand(..., workers=W, device="cpu")`` into a fresh DST (the local engine);
- ``ray init``: ``ray.init`` of a local Ray (``num_cpus`` = CPUs), what a cold ``--engine ray`` pays first;
- ``ray tiny``: ``expand_ray`` of ``--tiny`` images on the warm Ray: actor start-up plus a little work;
- ``ray``: ``expand_ray(..., workers=W)`` of all images on the warm Ray (actor start-up included,
  as every ``--engine ray`` run pays it);
- ``augment``: ``ak.ray.Augment`` streaming ``--n`` in-memory 128x128 images through ``map_batches``
  into ``iter_batches``, vs the same pipeline called batch by batch in this process.

Every output tree of the Ray engine is checked to equal the local one byte for byte. Runs
alternate local/ray ``--rounds`` times; the median is reported with the load average (the
machine may be shared: read the numbers with it).

    PYTHONPATH=. python benchmarks/scale.py                       # 1,000 images, ~2-4 min on 2 cores
    PYTHONPATH=. python benchmarks/scale.py --n 200 --rounds 1    # a smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import augkit as ak
from augkit.data.expand import expand
from augkit.data.expand_ray import expand_ray
from augkit.images import sample_images


def make_src(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` PNGs at random sizes in [128, 256] px, 4 class folders; reused if already there."""
    src = root / f"src-{n}"
    if src.is_dir() and sum(1 for _ in src.rglob("*.png")) == n:
        return src
    shutil.rmtree(src, ignore_errors=True)
    rng = np.random.default_rng(seed)
    photos = list(sample_images().items())
    for i in range(n):
        name, im = photos[i % len(photos)]
        size = (int(rng.integers(128, 257)), int(rng.integers(128, 257)))
        (src / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).resize(size, Image.BILINEAR).save(src / name / f"{i:04d}.png")
    return src


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def bench_augment(ray, n: int, size: int, batch_size: int, actors: int, rounds: int) -> dict[str, list[float]]:
    """Images/s of ak.ray.Augment through Ray Data (actor start-up included) vs the same class called
    batch by batch in this process (torch's default threads, then 1 thread), alternating ``rounds`` times."""
    photos = list(sample_images().values())
    images = np.stack([np.asarray(Image.fromarray(photos[i % len(photos)]).resize((size, size))) for i in range(n)])
    pipe = ak.default_pipeline(0)
    aug = ak.ray.Augment(pipe, device="cpu")
    items = ray.data.from_items([{"id": i, "image": images[i]} for i in range(n)]).materialize()
    loop, loop1, streamed = [], [], []
    run_loop = lambda: [aug({"image": images[i : i + batch_size], "id": np.arange(i, min(i + batch_size, n))})  # noqa: E731
                        for i in range(0, n, batch_size)]  # fmt: skip
    threads = torch.get_num_threads()
    for _ in range(rounds):
        t, _ = timed(run_loop)
        loop.append(n / t)
        torch.set_num_threads(1)  # what one Ray actor with num_cpus=1 gets
        t, _ = timed(run_loop)
        torch.set_num_threads(threads)
        loop1.append(n / t)
        ds = items.map_batches(ak.ray.Augment, fn_constructor_kwargs={"pipe": pipe, "device": "cpu"},
                               batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=actors))  # fmt: skip
        t, seen = timed(lambda ds=ds: sum(len(b["id"]) for b in ds.iter_batches(batch_size=batch_size)))
        assert seen == n
        streamed.append(n / t)
    return {"loop_img_s": loop, "loop_1thread_img_s": loop1, "ray_img_s": streamed, "torch_threads": threads}


def driver_costs(src: Path, dst: Path) -> dict[str, float]:
    """What the one driver of a shard does per file, measured: list, key, record, verify (sha256)."""
    from augkit.data._expand_files import sha256_file
    from augkit.data.expand import copy_key, list_images

    t, sources = timed(list_images, src)
    entries = [json.loads(line) for line in (dst / "manifest.jsonl").read_text().splitlines()]
    t_key, _ = timed(lambda: [copy_key(0, e["source"], e["copy"]) for e in entries])
    fd = os.open(os.devnull, os.O_WRONLY)
    t_rec, _ = timed(lambda: [os.write(fd, (json.dumps(e, sort_keys=True) + "\n").encode()) for e in entries])
    os.close(fd)
    t_sha, _ = timed(lambda: [sha256_file(dst / e["output"]) for e in entries])
    mb = sum((dst / e["output"]).stat().st_size for e in entries) / 1e6
    line = statistics.mean(len(json.dumps(e, sort_keys=True)) + 1 for e in entries)
    return {
        "list_us_per_file": 1e6 * t / len(sources), "key_us_per_output": 1e6 * t_key / len(entries),
        "record_us_per_output": 1e6 * t_rec / len(entries), "verify_us_per_output": 1e6 * t_sha / len(entries),
        "verify_mb_s": mb / t_sha, "output_kb": 1e3 * mb / len(entries), "manifest_bytes_per_output": line,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="images")
    ap.add_argument("--copies", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="local worker processes = Ray actors")
    ap.add_argument("--tiny", type=int, default=10, help="images of the start-up probe")
    ap.add_argument("--rounds", type=int, default=2, help="local/ray alternations; median reported")
    ap.add_argument("--root", default="/tmp/augkit-scale")
    ap.add_argument("--json", default="benchmarks/results/scale-cpu.json")
    args = ap.parse_args()

    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    src, tiny = make_src(root, args.n), make_src(root, args.tiny, seed=1)
    import ray

    t_init, _ = timed(ray.init, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    print(f"ray.init: {t_init:.1f} s (local Ray, {ray.cluster_resources().get('CPU', 0):g} CPUs)", flush=True)
    t_tiny, _ = timed(expand_ray, tiny, root / "dst-tiny", copies=args.copies, workers=args.workers, overwrite=True)
    print(f"ray tiny ({args.tiny} images): {t_tiny:.1f} s", flush=True)

    local_s, ray_s, loads = [], [], []
    for r in range(args.rounds):
        loads.append(os.getloadavg()[0])
        shutil.rmtree(root / "dst-local", ignore_errors=True)
        t, _ = timed(expand, src, root / "dst-local", copies=args.copies, workers=args.workers, device="cpu")
        local_s.append(t)
        shutil.rmtree(root / "dst-ray", ignore_errors=True)
        t, _ = timed(expand_ray, src, root / "dst-ray", copies=args.copies, workers=args.workers)
        ray_s.append(t)
        same = digest(root / "dst-local") == digest(root / "dst-ray")
        print(f"round {r}: local {local_s[-1]:.1f} s, ray {ray_s[-1]:.1f} s, identical trees: {same}", flush=True)
        assert same, "the Ray engine wrote a different tree"
    augment = bench_augment(ray, args.n, 128, 32, args.workers, args.rounds)
    driver = driver_costs(src, root / "dst-local")
    loads.append(os.getloadavg()[0])
    ray.shutdown()

    outputs = args.n * args.copies
    t_local, t_ray = statistics.median(local_s), statistics.median(ray_s)
    # a straight line through (tiny, t_tiny) and (n, t_ray): Ray's fixed cost per run and its rate after it
    per_output = (t_ray - t_tiny) / (outputs - args.tiny * args.copies)
    fixed = t_tiny - per_output * args.tiny * args.copies
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg_1m": loads},
        "n_images": args.n, "copies": args.copies, "workers": args.workers,
        "ray_init_s": t_init, "ray_tiny_s": t_tiny, "tiny_images": args.tiny,
        "local_s": local_s, "ray_s": ray_s,
        "local_img_s": outputs / t_local, "ray_img_s": outputs / t_ray,
        "ray_fixed_s": fixed, "ray_steady_img_s": 1 / per_output,
        "augment_128px": augment,
        "driver": driver,
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
