"""Offline dataset expansion: K augmented copies of every image in a folder.

Deterministic (copy k of the image at relative path p depends only on seed, p, k and the
pipeline), crash safe (every file is written under a temporary name, then renamed), resumable
(a re-run skips outputs the manifest lists with a matching sha256 whose source is unchanged)
and shardable (``shard=(i, n)`` does every n-th image; the parts merge into one manifest when
the last shard finishes). One run per shard at a time (a lock in DST). Decoding and encoding
run in worker processes, augmentation in this process on ``device``. See docs/expand.md and
docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
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
    LOCK,
    MANIFEST,
    DstLock,
    Inline,
    append_line,
    check_config,
    decode_image,
    encode_write,
    entry_files,
    held_by_other,
    manifest_text,
    merge_parts,
    output_name,
    part_name,
    read_manifest,
    sha256_file,
    source_fingerprint,
    write_atomic,
)
from .expand_targets import augment_with_targets, mask_name, read_annotations, to_png_mask

__all__ = ["expand", "ExpandSummary", "ExpandError", "copy_key", "output_name", "parse_shard", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


MAX_PIXELS = 50_000_000  # default pixel cap per image (a 50 MP photo); larger ones are errors
BATCH_PIXELS = 1 << 23  # pixels augmented per call at most (8 Mpx: 32 images of 512x512); a larger image runs alone


class ExpandError(RuntimeError):
    """An image could not be read (with ``on_error="fail"``), or a worker process died."""


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
    stale: tuple[str, ...] = ()  # outputs (relative to DST) of sources no longer in SRC (removed if ``prune``)
    pruned: bool = False  # whether ``stale`` outputs were removed
    rejected: int = 0  # part-manifest entries the merge refused (see augkit-expand.json "rejected")

    def lines(self) -> list[str]:
        """What ``augkit expand`` prints: counts, a rate only when something was written, stale outputs."""
        head = f"shard {self.shard[0]}/{self.shard[1]}: {self.sources} images, wrote {self.written} outputs, {self.skipped} already done, {len(self.errors)} unreadable"
        if self.written:
            rate = f"{self.images_per_s:,.1f}" if self.images_per_s >= 1 else f"{self.images_per_s:.2g}"
            head += f", in {self.seconds:.1f} s ({rate} images/s on {self.device})"
        elif self.skipped:
            head += "; nothing to do"
        out = [head] + [f"  skipped {s!r}: {m}" for s, m in self.errors]
        if self.stale:
            what = "removed" if self.pruned else "left in DST (pass --prune to remove them)"
            out.append(f"  {len(self.stale)} output(s) of sources no longer in SRC {what}, e.g. {self.stale[0]!r}")
        if self.rejected:
            out.append(f"  {self.rejected} entry(ies) of part manifests failed verification and were left out (see {INFO})")
        return out


# keys, names, arguments -------------------------------------------------------------------------
def copy_key(seed: int, source: str, copy: int) -> int:
    """The 63-bit key of copy ``copy`` of ``source`` (a posix path relative to SRC): a sha256 hash."""
    raw = b"augkit-expand\0%d\0%s\0%d" % (seed, os.fsencode(source), copy)  # fsencode: any file name, UTF-8 or not
    digest = hashlib.sha256(raw).digest()
    return int.from_bytes(digest[:8], "little") >> 1


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
    """Posix paths (relative to ``src``) of every image below it, sorted; hidden entries skipped.

    Regular files only, after following symlinks: a FIFO, socket or device named ``*.png`` is not
    an image (reading it could block forever).
    """
    found = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(root).relative_to(src).as_posix()
        for f in files:
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(root, f)):
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
    format: str = "keep",
    quality: int = 95,
    on_error: str = "fail",
    overwrite: bool = False,
    progress: bool = False,
    max_pixels: int = MAX_PIXELS,
    prune: bool = False,
    annotations: str | Path | None = None,
    _job: Callable[..., Any] | None = None,
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
        batch_size: images augmented per call at most (does not change any output); calls hold
            at most ``BATCH_PIXELS`` pixels, so a large image is augmented alone.
        device: "auto" (CUDA if available), "cpu" or "cuda[:i]"; outputs are byte-identical
            across runs on the same device type.
        format: "keep" (each output in its source's format: PNG stays PNG, JPEG stays JPEG at
            ``quality``, WebP stays WebP; other formats become PNG), or "png", "jpg", "webp" for all.
        quality: 1..100, used by JPEG and WebP outputs.
        on_error: "fail" stops at the first unreadable image with an ExpandError naming it;
            "skip" records it in the summary and manifest and goes on.
        overwrite: replace a DST made with other settings instead of refusing; rewrite every output.
        progress: show a tqdm bar with images/s and the time left.
        max_pixels: images with more pixels are unreadable (``on_error`` applies), checked before decoding.
        prune: remove the outputs of sources no longer in SRC (otherwise they are reported and kept).
        annotations: a JSON Lines file of masks, boxes, labels and keypoints per source
            (``augkit.data.expand_targets``, docs/targets.md): each copy's mask is written as a PNG
            beside it, its boxes and keypoints into its manifest line.
        _job: what runs the work list instead of the local engine (``expand_ray`` passes its Ray job).
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
    if format != "keep" and format not in FORMATS:
        raise ValueError(f"format must be 'keep' or one of {sorted(FORMATS)}, got {format!r}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in [1, 100], got {quality!r}")
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be an integer >= 1, got {max_pixels!r}")
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
    anns = read_annotations(annotations) if annotations is not None else {}
    masks_in_src = {Path(a["mask"]).relative_to(src_abs).as_posix() for a in anns.values() if "mask" in a and Path(a["mask"]).is_relative_to(src_abs)}
    sources = [s for s in list_images(src) if s not in masks_in_src]  # masks kept beside the images are not sources
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
    lock = _claim_shard(dst, shard)  # one run per shard; no run of an overlapping shard split
    try:
        return _run_locked(
            pipe, seed, dev, src, dst, sources, mine, ks, shard, config, overwrite, lock, workers, batch_size,
            format, quality, on_error, progress, max_pixels, prune, __version__, start, anns, _job,
        )  # fmt: skip
    finally:
        lock.release()


def _claim_shard(dst: Path, shard: tuple[int, int]) -> DstLock:
    """Lock shard I/N of DST, refusing while a run of an overlapping shard (same I/N, or another N) holds one."""
    setup = DstLock(dst / LOCK).acquire(f"DST {str(dst)!r}", blocking=True)  # checks and claims are serialised
    try:
        for p in dst.glob(".augkit-expand-*-of-*.lock"):
            m = re.fullmatch(r"\.augkit-expand-(\d+)-of-(\d+)\.lock", p.name)
            if m and (int(m[2]) != shard[1] or int(m[1]) == shard[0]):
                holder = held_by_other(p)
                if holder is not None:
                    raise RuntimeError(
                        f"DST {str(dst)!r} is in use by another augkit expand (pid {holder}, shard {m[1]}/{m[2]}); "
                        "wait for it to finish or stop it"
                    )
        name = f".augkit-expand-{shard[0]}-of-{shard[1]}.lock"
        return DstLock(dst / name).acquire(f"shard {shard[0]}/{shard[1]} of DST {str(dst)!r}")
    finally:
        setup.release()


def _run_locked(
    pipe: Pipeline, seed: int, dev: torch.device, src: Path, dst: Path, sources: list[str], mine: list[str],
    ks: list[int], shard: tuple[int, int], config: dict[str, Any], overwrite: bool, lock: DstLock, workers: int,
    batch_size: int, format: str, quality: int, on_error: str, progress: bool, max_pixels: int, prune: bool,
    version: str, start: float, anns: dict[str, dict[str, Any]] | None = None, job_class: Callable[..., Any] | None = None,
) -> ExpandSummary:  # fmt: skip
    check_config(dst, config, overwrite)
    prefix = f".augkit-tmp-{shard[0]}-of-{shard[1]}"
    for old in [*dst.glob(prefix), *dst.glob(prefix + "-*")]:  # leftovers of a killed run of this shard (we hold its lock)
        shutil.rmtree(old, ignore_errors=True)
    tmp_dir = dst / f"{prefix}-{os.getpid()}"
    tmp_dir.mkdir()

    try:  # every temporary file of this run lives in tmp_dir: gone when the run ends
        known: dict[str, dict[str, Any]] = {}
        for p in sorted(dst.glob("manifest*.jsonl")):
            for e in read_manifest(p):
                if "sha256" in e:
                    known[e["output"]] = e
        part_manifest, part_info = dst / part_name(MANIFEST, shard), dst / part_name(INFO, shard)
        done, todo = _resume(src, dst, mine, ks, format, known)
        stale, pruned = _stale(dst, set(sources), known, prune)
        info = {"augkit_version": version, "config": config, "shard": list(shard), "status": "running"}
        write_atomic(part_info, json.dumps(info, indent=2, sort_keys=True) + "\n", tmp_dir)
        write_atomic(part_manifest, manifest_text(done + stale), tmp_dir)

        n_todo = sum(len(p) for _, p in todo)
        job = (job_class or _Job)(pipe, seed, dev, src, dst, tmp_dir, format, quality, batch_size, workers, part_manifest, on_error, max_pixels)
        job.annotations = anns or {}
        job.run(todo, n_todo, progress, lock.fd)
        write_atomic(part_manifest, manifest_text(done + stale + job.entries), tmp_dir)
        errors = tuple(sorted((e["source"], e["error"]) for e in job.entries if "error" in e))
        counts = {"sources": len(mine), "outputs": len(done) + job.written, "errors": len(errors)}
        info.update(status="complete", counts=counts)
        write_atomic(part_info, json.dumps(info, indent=2, sort_keys=True) + "\n", tmp_dir)
        trusted = {f for e in done + job.entries if "sha256" in e for f in entry_files(e)}  # written or verified here
        merged, rejected = merge_parts(dst, config, shard[1], len(sources), version, tmp_dir, trusted)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    seconds = time.perf_counter() - start
    return ExpandSummary(
        str(src), str(dst), shard, str(dev), len(mine), job.written, len(done), errors, seconds, job.written / seconds, merged,
        tuple(e["output"] for e in stale) or pruned, bool(pruned), len(rejected),
    )  # fmt: skip


def _resume(
    src: Path, dst: Path, mine: list[str], ks: list[int], fmt: str, known: dict[str, dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[tuple[str, list[tuple[int, str]]]]]:
    """(entries already done, sources with their pending (copy, output)): an output is done when the
    manifest lists it with its file's sha256 (and its mask's, if it has one) and the source it came
    from is unchanged (same size and mtime, or same size and sha256). A copy whose image or mask is
    missing or damaged is pending: both are written again."""
    done, todo = [], []
    for s in mine:
        listed = {k: known.get(output_name(s, k, fmt)) for k in ks}
        entries = {k: e for k, e in listed.items() if e is not None and e["source"] == s and e["copy"] == k}
        fresh = _unchanged(src / s, list(entries.values())) if entries else False
        pending = []
        for k in ks:
            out = output_name(s, k, fmt)
            e = entries.get(k)
            if fresh and e is not None and all(sha256_file(dst / name) == digest for name, digest in entry_files(e)):
                done.append(e)
            else:
                pending.append((k, out))
        if pending:
            todo.append((s, pending))
    return done, todo


def _unchanged(path: Path, entries: list[dict[str, Any]]) -> bool:
    """Whether the source at ``path`` is the one every entry recorded (updating a moved mtime)."""
    now = source_fingerprint(path, with_hash=False)
    if now is None:
        return False
    for e in entries:
        if e.get("source_size") != now["source_size"] or not isinstance(e.get("source_sha256"), str):
            return False
    if all(e.get("source_mtime_ns") == now["source_mtime_ns"] for e in entries):
        return True
    hashed = source_fingerprint(path, with_hash=True)  # same size, new mtime (copied, touched): compare bytes
    if hashed is None or any(e["source_sha256"] != hashed["source_sha256"] for e in entries):
        return False
    for e in entries:
        e["source_mtime_ns"] = hashed["source_mtime_ns"]
    return True


def _stale(
    dst: Path, sources: set[str], known: dict[str, dict[str, Any]], prune: bool
) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """(entries kept, outputs removed) for outputs whose source is no longer in SRC.

    Without ``prune`` their entries stay in the manifest marked ``"stale": true`` (and every run
    reports them); with it, each file they own (the output and its mask) that still has its
    recorded sha256 is removed.
    """
    stale = sorted((dict(e, stale=True) for e in known.values() if e["source"] not in sources), key=lambda e: e["output"])
    if not prune:
        return stale, ()
    for e in stale:
        for name, digest in entry_files(e):
            target = dst / name
            if target.resolve().is_relative_to(dst.resolve()) and sha256_file(target) == digest:
                target.unlink(missing_ok=True)  # only files that are still what the manifest says
    return [], tuple(e["output"] for e in stale)


def _worker_init(fds: tuple[int, ...], parent: int) -> None:
    """Pool initializer: a worker must not keep DST's lock alive, nor outlive this process."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    if sys.platform.startswith("linux"):  # die with the parent, even one killed by SIGKILL
        import ctypes
        import signal

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


class _Job:
    """The main loop: decodes in flight -> per-size buckets -> batched augment -> encodes in flight."""

    def __init__(
        self, pipe: Pipeline, seed: int, dev: torch.device, src: Path, dst: Path, tmp_dir: Path, fmt: str,
        quality: int, batch_size: int, workers: int, manifest: Path, on_error: str, max_pixels: int,
    ) -> None:  # fmt: skip
        self.pipe, self.seed, self.dev, self.src, self.dst, self.tmp_dir = pipe, seed, dev, src, dst, tmp_dir
        self.fmt, self.quality, self.batch_size, self.workers = fmt, quality, batch_size, workers
        self.manifest_path, self.on_error, self.max_pixels = manifest, on_error, max_pixels
        self.entries: list[dict[str, Any]] = []
        self.written = 0
        self.buckets: dict[tuple[int, ...], list[tuple[torch.Tensor, str, int, str, dict[str, Any]]]] = {}
        self.encodes: deque = deque()
        self.max_buffered = 4 * max(BATCH_PIXELS, batch_size)  # pixels waiting in buckets before a partial batch runs
        self.max_encodes = 2 * batch_size + 4 * workers
        self.annotations: dict[str, dict[str, Any]] = {}  # source -> its targets (expand_targets)

    def run(self, todo: list[tuple[str, list[tuple[int, str]]]], total: int, progress: bool, lock_fd: int | None) -> None:
        from tqdm import tqdm

        if self.workers:  # workers only decode and encode (PIL, numpy): forking is safe on Linux
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            fds = () if lock_fd is None else (lock_fd,)
            self.pool: ProcessPoolExecutor | Inline = ProcessPoolExecutor(
                self.workers, multiprocessing.get_context(method), initializer=_worker_init, initargs=(fds, os.getpid())
            )
        else:
            self.pool = Inline()
        fmt = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"
        self.bar = tqdm(total=total, unit="img", desc="augkit expand", disable=not progress or not total, smoothing=0.1, bar_format=fmt)
        self.manifest = os.open(self.manifest_path, os.O_WRONLY | os.O_APPEND)
        threads = torch.get_num_threads()
        if self.dev.type == "cpu" and self.workers:  # leave the cores to the workers: no oversubscription
            torch.set_num_threads(max(1, (os.cpu_count() or 1) - self.workers))
        try:
            self._loop(todo)
            self.pool.shutdown(wait=True)
        except BrokenProcessPool:
            self._stop_pool()
            raise ExpandError(
                "a worker process died (killed by a signal, e.g. the out-of-memory killer?); the outputs finished so far "
                "are kept: run the same command again to resume (fewer --workers, or a lower --max-pixels, use less memory)"
            ) from None
        except BaseException:
            self._stop_pool()
            raise
        finally:
            torch.set_num_threads(threads)
            self.bar.close()
            os.close(self.manifest)

    def _stop_pool(self) -> None:
        """Cancel what is queued and end every worker now: none outlives this call."""
        procs = list((getattr(self.pool, "_processes", None) or {}).values()) if self.workers else []
        for p in procs:
            if p.is_alive():
                p.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)
        for p in procs:
            p.join(timeout=5)

    def _loop(self, todo: list[tuple[str, list[tuple[int, str]]]]) -> None:
        decodes: deque = deque()
        items = iter(todo)
        last = 1  # pixels of the last decoded image: huge images are decoded fewer at a time
        while True:
            cap = max(1, min(max(2, 2 * self.workers), 4 * BATCH_PIXELS // last))
            while len(decodes) < cap:  # keep the decoders busy, memory bounded
                item = next(items, None)
                if item is None:
                    break
                decodes.append((item, self.pool.submit(decode_image, os.path.join(self.src, item[0]), self.max_pixels)))
            if not decodes:
                break
            (source, pending), result = decodes.popleft()
            pixels, err, fp = result.result()
            if err is not None:
                self._failed(source, err)
                continue
            last = max(1, pixels.shape[0] * pixels.shape[1])
            self._add(source, pending, pixels, fp)
            self._collect()
        for shape in list(self.buckets):
            while self.buckets.get(shape):
                self._augment(shape)
        self._collect(wait_all=True)

    def _failed(self, source: str, err: str) -> None:
        if self.on_error == "fail":
            self._collect(wait_all=True)  # finish what is in flight: only complete outputs remain
            raise ExpandError(f"cannot read image {os.path.join(self.src, source)!r}: {err}")
        self._record({"source": source, "copy": None, "output": None, "error": err})

    def _rows(self, shape: tuple[int, ...]) -> int:
        """Images of this (C, H, W) per augment call: ``batch_size``, fewer for large images, at least 1."""
        return max(1, min(self.batch_size, BATCH_PIXELS // (shape[1] * shape[2])))

    def _add(self, source: str, pending: list[tuple[int, str]], pixels: np.ndarray, fp: dict[str, Any]) -> None:
        img = torch.from_numpy(pixels)
        img = img[None] if img.dim() == 2 else img.permute(2, 0, 1)  # (C, H, W)
        shape = tuple(img.shape) + (int("mask" in self.annotations.get(source, {})),)  # (C, H, W, masked): one kind per batch
        for k, out in pending:
            if k == 0:  # the original, re-encoded
                self._encode(pixels, {"source": source, "copy": 0, "output": out, "key": None, "params": None, **fp})
                continue
            bucket = self.buckets.setdefault(shape, [])
            bucket.append((img, source, k, out, fp))
            if len(bucket) >= self._rows(shape):
                self._augment(shape)
        while sum(len(b) * s[1] * s[2] for s, b in self.buckets.items()) > self.max_buffered:
            self._augment(max(self.buckets, key=lambda s: len(self.buckets[s]) * s[1] * s[2]))

    def _augment(self, shape: tuple[int, ...]) -> None:
        rows = self._rows(shape)
        batch, self.buckets[shape] = self.buckets[shape][:rows], self.buckets[shape][rows:]
        if not self.buckets[shape]:
            del self.buckets[shape]
        keys = [copy_key(self.seed, s, k) for _, s, k, _, _ in batch]
        x = torch.stack([img for img, *_ in batch]).to(self.dev, non_blocking=True)  # (B, C, H, W) uint8
        params = self.pipe.sample_keyed(keys)
        anns = [self.annotations.get(s) for _, s, _, _, _ in batch]
        targets: list[dict[str, Any] | None] = [None] * len(batch)
        if any(anns):
            images, targets = augment_with_targets(self.pipe, x, params, anns, [s for _, s, _, _, _ in batch])  # type: ignore[assignment]
        else:
            images = self.pipe(x, params=params)
        y = to_uint8(images).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, C)
        if y.shape[-1] == 1:
            y = y[..., 0]
        for i, ((_, s, k, out, fp), p) in enumerate(zip(batch, params.tolist(), strict=True)):
            entry: dict[str, Any] = {"source": s, "copy": k, "output": out, "key": keys[i], "params": p, **fp}
            t = targets[i]
            if t is not None and t["mask"] is not None:  # written (atomically) before the copy's manifest line
                entry["mask"] = name = mask_name(out)
                entry["mask_sha256"] = encode_write(to_png_mask(t["mask"]), str(self.dst), name, str(self.tmp_dir), "png", 95)
            if t is not None and t["targets"] is not None:
                entry["targets"] = t["targets"]
            self._encode(np.ascontiguousarray(y[i]), entry)

    def _encode(self, pixels: np.ndarray, entry: dict[str, Any]) -> None:
        fmt = self.fmt if self.fmt != "keep" else "png"  # "keep": encode_write reads the format off the name
        self.encodes.append((entry, self.pool.submit(encode_write, pixels, str(self.dst), entry["output"], str(self.tmp_dir), fmt, self.quality)))
        self._collect()

    def _collect(self, wait_all: bool = False) -> None:
        """Record finished encodes in submission order; wait while more than the cap are in flight."""
        while self.encodes:
            entry, result = self.encodes[0]
            if not (wait_all or len(self.encodes) > self.max_encodes or result.done()):
                break
            self.encodes.popleft()
            entry["sha256"] = result.result()
            self._record(entry)
            self.written += 1
            self.bar.update(1)

    def _record(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        append_line(self.manifest, json.dumps(entry, sort_keys=True) + "\n")  # whole lines only, even on a full disk
