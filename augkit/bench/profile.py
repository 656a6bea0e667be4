"""Where augkit's time goes: ``torch.profiler`` over the seed pipeline, per step and per kernel.

Each step of the tensor backend's plan (flip, warp, contrast, noise, ...) plus parameter
sampling and the input check is wrapped in a ``record_function`` range on a private
pipeline instance (the library code is not changed); the kernels inside each range are
summed by self time. Run it through ``benchmarks/profile.py``.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from ..device import resolve_device
from ..images import sample_batch
from ..pipeline import default_pipeline

__all__ = ["profile_pipeline", "profile_markdown"]

PREFIX = "augkit."


def _wrap(obj: Any, attr: str, label: str) -> None:
    fn = getattr(obj, attr)

    @functools.wraps(fn)
    def wrapped(*a: Any, **kw: Any) -> Any:
        with record_function(PREFIX + label):
            return fn(*a, **kw)

    setattr(obj, attr, wrapped)  # instance attribute: shadows the method on this object only


def profile_pipeline(size: int = 224, batch_size: int = 64, device: str = "auto", steps: int = 10, top: int = 4,
                     seed: int = 0) -> dict[str, Any]:
    """Profile ``steps`` calls of the seed pipeline on a (B, 3, size, size) uint8 batch.

    Returns ``{"size", "batch_size", "device", "steps", "total_ms", "stages": [...]}``; each stage
    (a backend step, ``sample``, ``check`` or ``other``) has its ms per call, its share of the
    total and its ``top`` kernels by self time. Times are CPU-side on CPU, kernel time on CUDA.
    """
    dev = resolve_device(device)
    pipe = default_pipeline(seed)
    x = sample_batch(size, batch_size).to(dev)
    backend = pipe._tensor
    for step in backend.steps:
        _wrap(backend, "_" + step.kind, step.kind)
    _wrap(pipe, "sample", "sample")
    _wrap(pipe, "_check_tensor", "check")
    for _ in range(3):
        pipe(x)
    on_device = dev.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_device else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            with record_function(PREFIX + "call"):
                pipe(x)
            if on_device:
                torch.cuda.synchronize()
    kernels = _device_kernels(prof) if on_device else _cpu_kernels(prof)
    total = sum(sum(k.values()) for k in kernels.values()) or 1.0
    stages = []
    for stage, ks in sorted(kernels.items(), key=lambda kv: -sum(kv[1].values())):
        us = sum(ks.values())
        tops = sorted(ks.items(), key=lambda kv: -kv[1])[:top]
        stages.append({"stage": stage, "ms_per_call": us / steps / 1e3, "share": us / total,
                       "top": [{"kernel": n, "ms_per_call": t / steps / 1e3, "share_of_stage": t / us} for n, t in tops]})
    return {"size": size, "batch_size": batch_size, "device": str(dev), "steps": steps, "threads": torch.get_num_threads(),
            "total_ms": total / steps / 1e3, "stages": stages}


def _stage(e: Any) -> str:
    """The innermost augkit range around event ``e`` (``other`` if none but the whole call)."""
    parent = e.cpu_parent
    while parent is not None:
        if parent.name.startswith(PREFIX) and parent.name != PREFIX + "call":
            return parent.name[len(PREFIX):]
        parent = parent.cpu_parent
    return "other"


def _cpu_kernels(prof: Any) -> dict[str, dict[str, float]]:
    """CPU self time of every op, grouped by augkit stage then op name (microseconds)."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in prof.events():
        if not e.name.startswith(PREFIX) and e.self_cpu_time_total > 0:
            out[_stage(e)][e.name] += float(e.self_cpu_time_total)
    return out


def _device_kernels(prof: Any) -> dict[str, dict[str, float]]:
    """CUDA kernel time grouped by the augkit range whose CPU op launched it (via correlation)."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in prof.events():
        if e.name.startswith(PREFIX):
            continue
        for k in getattr(e, "kernels", []):
            out[_stage(e)][k.name] += float(k.duration)
    return out


def profile_markdown(results: list[dict[str, Any]]) -> str:
    """Markdown tables: per stage, ms per call, share, and its top kernels."""
    out = []
    for r in results:
        out += [f"**{r['size']}x{r['size']}, batch {r['batch_size']}, {r['device']} ({r['threads']} threads)**: "
                f"{r['total_ms']:.2f} ms per call in profiled kernels (profiler overhead included)", "",
                "| stage | ms / call | share | top kernels (ms / call) |", "|---|---:|---:|---|"]
        for s in r["stages"]:
            tops = ", ".join(f"`{k['kernel']}` {k['ms_per_call']:.2f}" for k in s["top"])
            out.append(f"| {s['stage']} | {s['ms_per_call']:.2f} | {s['share']:.0%} | {tops} |")
        out.append("")
    return "\n".join(out)
