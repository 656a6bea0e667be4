"""Offline dataset expansion: K augmented copies of every image in a folder.

Deterministic (copy k of the image at relative path p depends only on seed, p, k and the
pipeline), crash safe (every file is written under a temporary name, then renamed), resumable
(a re-run skips outputs the manifest lists with a matching sha256) and shardable (``shard=(i, n)``
does every n-th image; the parts merge into one manifest when the last shard finishes).
Decoding and encoding run in worker processes, augmentation in this process on ``device``.
See docs/expand.md.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..device import resolve_device
from ..ops import Normalize
from ..pipeline import Pipeline, default_pipeline
from ._expand_files import (
    FORMATS,
    INFO,
    MANIFEST,
    Inline,
    check_config,
    decode_image,
    encode_write,
    manifest_text,
    merge_parts,
    part_name,
    read_manifest,
    sha256_file,
    write_atomic,
)

__all__ = ["expand", "ExpandSummary", "ExpandError", "copy_key", "output_name", "parse_shard", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


class ExpandError(RuntimeError):
    """An image could not be read (with ``on_error="fail"``)."""


@dataclass(frozen=True)
class ExpandSummary:
    """What one ``expand`` call did. ``written`` + ``skipped`` = outputs of this shard."""

    src: str
    dst: str
    shard: tuple[int, int]
    device: str
    sources: int  # images in this shard
    written: int  # outputs written by this call
    skipped: int  # outputs already finished (verified by sha256) and left alone
    errors: tuple[tuple[str, str], ...]  # (source, message) for unreadable images
    seconds: float
    images_per_s: float  # written / seconds
    merged: bool  # DST/manifest.jsonl and DST/augkit-expand.json now cover every shard


# keys, names, arguments -------------------------------------------------------------------------
def copy_key(seed: int, source: str, copy: int) -> int:
    """The 63-bit key of copy ``copy`` of ``source`` (a posix path relative to SRC): a sha256 hash."""
    digest = hashlib.sha256(f"augkit-expand\0{seed}\0{source}\0{copy}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def output_name(source: str, copy: int, fmt: str) -> str:
    """``cls/img.jpg`` -> ``cls/img_aug{copy}.{ext}``; copy 0 is the original, ``cls/img_orig.{ext}``."""
    parent, _, name = source.rpartition("/")
    stem = name.rsplit(".", 1)[0]
    tail = "_orig" if copy == 0 else f"_aug{copy}"
    return f"{parent}/{stem}{tail}{FORMATS[fmt]}" if parent else f"{stem}{tail}{FORMATS[fmt]}"


def parse_shard(shard: str | tuple[int, int]) -> tuple[int, int]:
    """``"I/N"`` or ``(I, N)`` with 0 <= I < N -> ``(I, N)``."""
    try:
        i, n = (int(v) for v in (shard.split("/") if isinstance(shard, str) else shard))
    except (TypeError, ValueError):
        raise ValueError(f"shard must be 'I/N' with integers 0 <= I < N (e.g. '0/4'), got {shard!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"shard must be 'I/N' with integers 0 <= I < N (e.g. '0/4'), got {shard!r}")
    return i, n


def _load_pipeline(pipeline: Pipeline | str | Path | None, seed: int) -> Pipeline:
    if pipeline is None:
        return default_pipeline(seed)
    if isinstance(pipeline, (str, Path)):
        if not Path(pipeline).is_file():
            raise FileNotFoundError(f"pipeline file {str(pipeline)!r} does not exist")
        pipeline = Pipeline.from_yaml(Path(pipeline))
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"pipeline must be an augkit Pipeline, a YAML path or None, got {type(pipeline).__name__}")
    if any(isinstance(op, Normalize) for op in pipeline.ops):
        raise ValueError("pipeline must not contain Normalize: expand writes images, which hold values in [0, 1]")
    return pipeline


def list_images(src: Path) -> list[str]:
    """Posix paths (relative to ``src``) of every image below it, sorted; hidden entries skipped."""
    found = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(root).relative_to(src).as_posix()
        for f in files:
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS):
                found.append(f if rel == "." else f"{rel}/{f}")
    return sorted(found)


# the job ------------------------------------------------------------------------------------------
def to_uint8(y: torch.Tensor) -> torch.Tensor:
    """Float in [0, 1] -> uint8: clamp(round(255 * y), 0, 255), rounding half to even."""
    return y.mul(255).round_().clamp_(0, 255).to(torch.uint8)


def expand(
    src: str | Path,
    dst: str | Path,
    copies: int,
    pipeline: Pipeline | str | Path | None = None,
    seed: int = 0,
    include_original: bool = False,
    shard: str | tuple[int, int] = (0, 1),
    workers: int | None = None,
    batch_size: int = 32,
    device: str = "auto",
    format: str = "png",
    quality: int = 95,
    on_error: str = "fail",
    overwrite: bool = False,
    progress: bool = False,
) -> ExpandSummary:
    """Write ``copies`` augmented copies of every image below ``src`` into ``dst``, same layout.

    Args:
        src: folder of images, flat or in class subfolders (ImageFolder layout), any depth.
        dst: output folder, outside ``src``; ``dst/<class>/<stem>_aug<k>.<ext>`` for k = 1..copies.
        copies: augmented copies per image, >= 1.
        pipeline: a Pipeline, a YAML file path, or None for ``default_pipeline(seed)``.
            It must not contain Normalize.
        seed: keys every copy (see ``copy_key``). The pipeline's own seed plays no part.
        include_original: also write the decoded original, re-encoded, as ``<stem>_orig.<ext>`` (copy 0).
        shard: ``"I/N"`` or ``(I, N)``: do the images at sorted positions I, I+N, I+2N, ...
        workers: processes that decode and encode; 0 does it in this process; None: min(8, CPU count).
        batch_size: images augmented per call (does not change any output).
        device: "auto" (CUDA if available), "cpu" or "cuda[:i]"; outputs are byte-identical
            across runs on the same device type.
        format: "png", "jpg" or "webp"; quality (1..100) is used by jpg and webp.
        on_error: "fail" stops at the first unreadable image with an ExpandError naming it;
            "skip" records it in the summary and manifest and goes on.
        overwrite: replace a DST made with other settings instead of refusing; rewrite every output.
        progress: show a tqdm bar with images/s.
    """
    start = time.perf_counter()
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies must be an integer >= 1, got {copies!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if workers is None:
        workers = min(8, os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {format!r}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in [1, 100], got {quality!r}")
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    shard = parse_shard(shard)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    pipe = _load_pipeline(pipeline, seed)
    dev = resolve_device(device)

    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"SRC {str(src)!r} does not exist or is not a folder")
    src_abs, dst_abs = src.resolve(), dst.resolve()
    if dst_abs == src_abs or dst_abs.is_relative_to(src_abs) or src_abs.is_relative_to(dst_abs):
        raise ValueError(f"DST {str(dst)!r} must lie outside SRC {str(src)!r} (and not contain it)")
    sources = list_images(src)
    if not sources:
        raise ValueError(f"SRC {str(src)!r} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    ks = list(range(0 if include_original else 1, copies + 1))
    seen: dict[str, str] = {}
    for s in sources:
        for k in ks[:1]:
            out = output_name(s, k, format)
            if out in seen:
                raise ValueError(f"SRC has {seen[out]!r} and {s!r}, which would both be written as {out!r}; rename one")
            seen[out] = s
    mine = sources[shard[0] :: shard[1]]

    from .. import __version__

    config = {
        "pipeline": {"ops": pipe.to_dict()["ops"]},  # its seed is unused: copies are keyed by ``seed``
        "seed": seed,
        "copies": copies,
        "include_original": include_original,
        "format": format,
        "quality": None if format == "png" else quality,
    }
    dst.mkdir(parents=True, exist_ok=True)
    check_config(dst, config, overwrite)
    tmp_dir = dst / f".augkit-tmp-{shard[0]}-of-{shard[1]}"
    shutil.rmtree(tmp_dir, ignore_errors=True)  # leftovers of a killed run
    tmp_dir.mkdir()

    try:  # every temporary file of this shard lives in tmp_dir: gone when the run ends
        # resume: outputs the manifests list whose file still has the recorded sha256
        known: dict[str, dict[str, Any]] = {}
        e: dict[str, Any] | None
        for p in sorted(dst.glob("manifest*.jsonl")):
            for e in read_manifest(p):
                if "sha256" in e:
                    known[e["output"]] = e
        part_manifest, part_info = dst / part_name(MANIFEST, shard), dst / part_name(INFO, shard)
        done, todo = [], []
        for s in mine:
            pending = []
            for k in ks:
                out = output_name(s, k, format)
                e = known.get(out)
                if e and e["source"] == s and e["copy"] == k and sha256_file(dst / out) == e["sha256"]:
                    done.append(e)
                else:
                    pending.append((k, out))
            if pending:
                todo.append((s, pending))
        info = {"augkit_version": __version__, "config": config, "shard": list(shard), "status": "running"}
        write_atomic(part_info, json.dumps(info, indent=2, sort_keys=True) + "\n", tmp_dir)
        write_atomic(part_manifest, manifest_text(done), tmp_dir)

        n_todo = sum(len(p) for _, p in todo)
        job = _Job(pipe, seed, dev, src, dst, tmp_dir, format, quality, batch_size, workers, part_manifest, on_error)
        job.run(todo, n_todo, progress)
        write_atomic(part_manifest, manifest_text(done + job.entries), tmp_dir)
        errors = tuple(sorted((e["source"], e["error"]) for e in job.entries if "error" in e))
        info.update(status="complete", counts={"sources": len(mine), "outputs": len(done) + job.written, "errors": len(errors)})
        write_atomic(part_info, json.dumps(info, indent=2, sort_keys=True) + "\n", tmp_dir)
        merged = merge_parts(dst, config, shard[1], len(sources), __version__, tmp_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    seconds = time.perf_counter() - start
    return ExpandSummary(
        str(src), str(dst), shard, str(dev), len(mine), job.written, len(done), errors, seconds, job.written / seconds, merged
    )


class _Job:
    """The main loop: decodes in flight -> per-size buckets -> batched augment -> encodes in flight."""

    def __init__(
        self, pipe: Pipeline, seed: int, dev: torch.device, src: Path, dst: Path, tmp_dir: Path, fmt: str,
        quality: int, batch_size: int, workers: int, manifest: Path, on_error: str,
    ) -> None:  # fmt: skip
        self.pipe, self.seed, self.dev, self.src, self.dst, self.tmp_dir = pipe, seed, dev, src, dst, tmp_dir
        self.fmt, self.quality, self.batch_size, self.workers = fmt, quality, batch_size, workers
        self.manifest_path, self.on_error = manifest, on_error
        self.entries: list[dict[str, Any]] = []
        self.written = 0
        self.buckets: dict[tuple[int, ...], list[tuple[torch.Tensor, str, int, str]]] = {}
        self.encodes: deque = deque()
        self.max_buffered = 4 * batch_size  # samples waiting in buckets before a partial batch runs
        self.max_encodes = 2 * batch_size + 4 * workers

    def run(self, todo: list[tuple[str, list[tuple[int, str]]]], total: int, progress: bool) -> None:
        from tqdm import tqdm

        if self.workers:  # workers only decode and encode (PIL, numpy): forking is safe on Linux
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            self.pool: Any = multiprocessing.get_context(method).Pool(self.workers)
        else:
            self.pool = Inline()
        self.bar = tqdm(total=total, unit="img", desc="augkit expand", disable=not progress, smoothing=0.1)
        self.manifest = os.open(self.manifest_path, os.O_WRONLY | os.O_APPEND)
        threads = torch.get_num_threads()
        if self.dev.type == "cpu" and self.workers:  # leave the cores to the workers: no oversubscription
            torch.set_num_threads(max(1, (os.cpu_count() or 1) - self.workers))
        try:
            self._loop(todo)
            self.pool.close()
            self.pool.join()
        except BaseException:
            self.pool.terminate()
            raise
        finally:
            torch.set_num_threads(threads)
            self.bar.close()
            os.close(self.manifest)

    def _loop(self, todo: list[tuple[str, list[tuple[int, str]]]]) -> None:
        decodes: deque = deque()
        items = iter(todo)
        while True:
            while len(decodes) < max(2, 2 * self.workers):  # keep the decoders busy, memory bounded
                item = next(items, None)
                if item is None:
                    break
                decodes.append((item, self.pool.apply_async(decode_image, (str(self.src / item[0]),))))
            if not decodes:
                break
            (source, pending), result = decodes.popleft()
            pixels, err = result.get()
            if err is not None:
                self._failed(source, err)
                continue
            self._add(source, pending, pixels)
            self._collect()
        for shape in list(self.buckets):
            while self.buckets.get(shape):
                self._augment(shape)
        self._collect(wait_all=True)

    def _failed(self, source: str, err: str) -> None:
        if self.on_error == "fail":
            self._collect(wait_all=True)  # finish what is in flight: only complete outputs remain
            raise ExpandError(f"cannot read image {str(self.src / source)!r}: {err}")
        self._record({"source": source, "copy": None, "output": None, "error": err})

    def _add(self, source: str, pending: list[tuple[int, str]], pixels: np.ndarray) -> None:
        img = torch.from_numpy(pixels)
        img = img[None] if img.dim() == 2 else img.permute(2, 0, 1)  # (C, H, W)
        for k, out in pending:
            if k == 0:  # the original, re-encoded
                self._encode(pixels, {"source": source, "copy": 0, "output": out, "key": None, "params": None})
                continue
            bucket = self.buckets.setdefault(tuple(img.shape), [])
            bucket.append((img, source, k, out))
            if len(bucket) >= self.batch_size:
                self._augment(tuple(img.shape))
        while sum(len(b) for b in self.buckets.values()) > self.max_buffered:
            self._augment(max(self.buckets, key=lambda s: len(self.buckets[s])))

    def _augment(self, shape: tuple[int, ...]) -> None:
        batch, self.buckets[shape] = self.buckets[shape][: self.batch_size], self.buckets[shape][self.batch_size :]
        if not self.buckets[shape]:
            del self.buckets[shape]
        keys = [copy_key(self.seed, s, k) for _, s, k, _ in batch]
        x = torch.stack([img for img, *_ in batch]).to(self.dev, non_blocking=True)  # (B, C, H, W) uint8
        params = self.pipe.sample_keyed(keys)
        y = to_uint8(self.pipe(x, params=params)).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, C)
        if y.shape[-1] == 1:
            y = y[..., 0]
        for i, ((_, s, k, out), p) in enumerate(zip(batch, params.tolist(), strict=True)):
            self._encode(np.ascontiguousarray(y[i]), {"source": s, "copy": k, "output": out, "key": keys[i], "params": p})

    def _encode(self, pixels: np.ndarray, entry: dict[str, Any]) -> None:
        args = (pixels, str(self.dst), entry["output"], str(self.tmp_dir), self.fmt, self.quality)
        self.encodes.append((entry, self.pool.apply_async(encode_write, args)))
        self._collect()

    def _collect(self, wait_all: bool = False) -> None:
        """Record finished encodes in submission order; wait while more than the cap are in flight."""
        while self.encodes:
            entry, result = self.encodes[0]
            if not (wait_all or len(self.encodes) > self.max_encodes or result.ready()):
                break
            self.encodes.popleft()
            entry["sha256"] = result.get()
            self._record(entry)
            self.written += 1
            self.bar.update(1)

    def _record(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        os.write(self.manifest, (json.dumps(entry, sort_keys=True) + "\n").encode())  # one write: whole lines only
