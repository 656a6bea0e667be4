"""Accelerator timing done right: many pipelined calls between two CUDA events, a real bandwidth bound.

One call followed by a sync measures launch latency plus the sync, not throughput: here ``calls``
calls are queued back to back and timed by CUDA events around the whole queue, after warm-up
calls that bring the clocks up. The bound is the copy bandwidth of a buffer larger than any L2
(1 GiB), applied to the 5 bytes per element a uint8 -> float32 pipeline must move at least.
On the CPU the same functions fall back to wall time so that the code runs in the test suite.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..pipeline import Pipeline

__all__ = ["time_pipelined", "copy_bandwidth", "accelerator_cases", "BOUND_BYTES", "COPY_BYTES"]

COPY_BYTES = 1 << 30  # 1 GiB: larger than the L2 of any GPU, so the copy runs at memory bandwidth
BOUND_BYTES = 5  # per element: uint8 read + float32 write


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pipelined(fn: Callable[[], Any], device: torch.device, calls: int = 50, warmup: int = 10,
                   rounds: int = 3) -> dict[str, Any]:
    """Seconds per call: the best of ``rounds`` rounds of ``calls`` calls queued back to back."""
    for _ in range(warmup):
        fn()
    _sync(device)
    per_call = []
    for _ in range(rounds):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            per_call.append(start.elapsed_time(end) / 1e3 / calls)
        else:
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            per_call.append((time.perf_counter() - t0) / calls)
    return {"s_per_call": min(per_call), "rounds_s_per_call": per_call, "calls": calls, "warmup": warmup}


def copy_bandwidth(device: torch.device, nbytes: int = COPY_BYTES, calls: int = 10) -> float:
    """Bytes per second moved (read + written) by ``dst.copy_(src)`` of ``nbytes`` bytes."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    t = time_pipelined(lambda: dst.copy_(src), device, calls=calls, warmup=3)["s_per_call"]

    return 2 * nbytes / t


def _kornia_compiled(ops: list, device: torch.device) -> Callable[[Tensor], Tensor]:
    from . import peers as P

    return torch.compile(P.kornia_peer(ops, device))


def accelerator_cases(pipe: Pipeline, x: Tensor, peers: tuple[str, ...] = ("kornia", "kornia-compiled"),
                      calls: int = 50, warmup: int = 10, bandwidth: float | None = None,
                      log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Time augkit fused, augkit torch path and the peers on batch ``x``; one row each, with % of the bound.

    ``augkit`` draws params on the device each call, as a training loop (and every peer) does; the
    ``-replay`` rows replay params drawn once: the cost of the augmentation alone, fused and torch path.
    ``augkit_ratio`` is augkit's images/s over the row's.

    A peer that cannot be imported or compiled gets ``status: skipped`` and the reason, never an exception.
    """
    say = log or (lambda s: None)
    dev = x.device
    bsz, _, h, w = x.shape
    bound_s = x.numel() * BOUND_BYTES / bandwidth if bandwidth else None
    params = pipe.sample(bsz, dev)
    makers: list[tuple[str, str, Callable[[], Callable[[], Any]]]] = [
        ("augkit", "augkit (fused), drawing params", lambda: _call(Pipeline(pipe.ops, pipe.seed), x, None)),
        ("augkit-replay", "augkit (fused), replayed params", lambda: _call(Pipeline(pipe.ops, pipe.seed), x, params)),
        ("augkit-torch-replay", "augkit torch path, replayed params",
         lambda: _call(Pipeline(pipe.ops, pipe.seed, fused="never"), x, params)),
        ("augkit-graph", "augkit (fused) as a CUDA graph, drawing params", lambda: _graphed(pipe, x)),
    ]
    if "kornia" in peers:
        makers.append(("kornia", "Kornia eager", lambda: _peer(x, dev, pipe, compiled=False)))
    if "kornia-compiled" in peers:
        makers.append(("kornia-compiled", "Kornia torch.compile", lambda: _peer(x, dev, pipe, compiled=True)))
    from ..backends import fused as fz

    inactive = "" if dev.type == "cuda" and fz.available() else f"fused path inactive on {dev} (no CUDA or no Triton): torch path"
    rows = []
    for case, label, make in makers:
        row: dict[str, Any] = {"case": case, "label": label, "size": h, "width": w, "batch_size": bsz,
                               "device": str(dev), "status": "ok", "note": inactive if case in ("augkit", "augkit-replay") else ""}
        try:
            fn = make()
            fn()
        except Exception as e:  # a missing peer or a failed compile: say so and go on
            row.update(status="skipped", note=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            rows.append(row)
            say(f"  {label:<28} skipped ({row['note']})")
            continue
        t = time_pipelined(fn, dev, calls=calls, warmup=warmup)
        row.update(t, img_s=bsz / t["s_per_call"], ms_per_call=1e3 * t["s_per_call"],
                   pct_bound=100 * bound_s / t["s_per_call"] if bound_s else None)
        rows.append(row)
        say(f"  {label:<28} {row['img_s']:>12,.0f} img/s  {row['ms_per_call']:8.3f} ms/call")
    ours = next((r for r in rows if r["case"] == "augkit" and r["status"] == "ok"), None)
    for r in rows:
        r["augkit_ratio"] = ours["img_s"] / r["img_s"] if ours and r["status"] == "ok" else None
    return rows


def _call(p: Pipeline, x: Tensor, params: Any) -> Callable[[], Tensor]:
    """A call replaying ``params``, or drawing fresh ones on the device when None (a training loop's call)."""
    return lambda: p(x, params=params)


def _graphed(pipe: Pipeline, x: Tensor) -> Callable[[], Tensor]:
    g = Pipeline(pipe.ops, pipe.seed).compile(x)  # raises on a non-CUDA batch: the row is skipped
    return lambda: g(x)


def _peer(x: Tensor, dev: torch.device, pipe: Pipeline, compiled: bool) -> Callable[[], Tensor]:
    from . import peers as P

    fn = _kornia_compiled(pipe.ops, dev) if compiled else P.kornia_peer(pipe.ops, dev)
    return lambda: fn(x)
