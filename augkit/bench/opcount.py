"""Count the torch ops a call issues, without a GPU: replay params on ``meta`` tensors.

A tensor on the ``meta`` device has a shape and dtype but no data, so a pipeline called on one
takes the non-CPU path (no cache blocking, no host selection) and every op it dispatches can be
counted under a ``TorchDispatchMode``. On a GPU each counted non-view op is one kernel launch
(or a small host-side allocation, counted apart), so this count is the launch budget of a call.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["OpCounter", "OpCount", "count_pipeline_ops", "count_sample_ops", "account", "accounting_table", "VIEW_OPS", "ALLOC_OPS"]

# ops that make a view or metadata only: no kernel on a GPU
VIEW_OPS = frozenset({
    "view", "_unsafe_view", "reshape", "slice", "select", "expand", "alias", "as_strided", "squeeze", "unsqueeze",
    "permute", "t", "transpose", "unbind", "split", "split_with_sizes", "chunk", "narrow", "detach", "lift_fresh",
    "_reshape_alias", "view_as", "unfold", "diagonal", "movedim",
})
# ops that allocate without computing: no kernel (the caching allocator hands out memory)
ALLOC_OPS = frozenset({"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"})


def _name(func: Any) -> str:
    return func.overloadpacket.__name__.rstrip("_") if hasattr(func, "overloadpacket") else str(func)


@dataclass
class OpCount:
    """What a call dispatched: ``ops`` (non-view, non-alloc: kernels on a GPU), ``views``, ``allocs``, by name.

    ``bytes_read`` / ``bytes_written``: a traffic model, each counted op reading every tensor argument
    once (the unique bytes under it: an expanded scalar is 4 bytes) and writing its results.
    """

    ops: int = 0
    views: int = 0
    allocs: int = 0
    by_name: Counter = field(default_factory=Counter)
    bytes_read: int = 0
    bytes_written: int = 0


def _tensors(tree: Any) -> list[Tensor]:
    return [t for t in pytree.tree_leaves(tree) if isinstance(t, Tensor)]


def _unique_bytes(t: Tensor) -> int:
    """Bytes an op must touch to read ``t``: its elements, or its storage when expanded (stride 0)."""
    nbytes = t.numel() * t.element_size()
    try:
        return min(nbytes, t.untyped_storage().nbytes())
    except (RuntimeError, NotImplementedError):
        return nbytes


class OpCounter(TorchDispatchMode):
    """A dispatch mode that counts every aten op, splitting views and allocations from the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.count = OpCount()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = _name(func)
        if name in VIEW_OPS:
            self.count.views += 1
        elif name in ALLOC_OPS:
            self.count.allocs += 1
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if name not in VIEW_OPS and name not in ALLOC_OPS:
            self.count.ops += 1
            self.count.by_name[name] += 1
            ins = _tensors((args, {k: v for k, v in kwargs.items() if k != "out"}))
            self.count.bytes_read += sum(_unique_bytes(x) for x in ins)
            self.count.bytes_written += sum(x.numel() * x.element_size() for x in _tensors(out))
        return out


def count_pipeline_ops(pipe: Any, shape: tuple[int, int, int, int], dtype: torch.dtype = torch.uint8,
                       params: Any = None) -> OpCount:
    """Ops one call of ``pipe`` issues on a ``meta`` batch of ``shape``, params drawn on the CPU then moved.

    The params are drawn (and moved to ``meta``) outside the counted region: only the call is counted.
    """
    if params is None:
        params = pipe.sample(shape[0])
    params = params.to("meta")
    x = torch.empty(shape, dtype=dtype, device="meta")
    pipe(x, params=params)  # warm caches (ramps, counters, workspaces) as a steady-state call finds them
    with OpCounter() as c:
        pipe(x, params=params)
    return c.count


def count_sample_ops(pipe: Any, n: int) -> OpCount:
    """Ops one ``pipe.sample(n)`` issues (on the CPU; the same ops run on any device)."""
    pipe.sample(n)
    with OpCounter() as c:
        pipe.sample(n)
    return c.count


def account(pipe: Any, shape: tuple[int, int, int, int], path: str, dtype: torch.dtype = torch.uint8) -> dict[str, Any]:
    """Kernels per call and bytes moved per output element of ``pipe`` on ``path`` ("fused" or "torch").

    Counted on ``meta`` tensors: the torch path's ops under ``OpCounter``; the fused path's Triton
    launches recorded (not run) by ``fused.record_launches``, plus any torch op it still issues.
    """
    from ..backends import fused as fz
    from ..pipeline import Pipeline

    if path not in ("fused", "torch"):
        raise ValueError(f"path must be 'fused' or 'torch', got {path!r}")
    p = Pipeline(pipe.ops, seed=pipe.seed, check="never", fused="always" if path == "fused" else "never")
    params = pipe.sample(shape[0]).to("meta")
    x = torch.empty(shape, dtype=dtype, device="meta")
    with fz.record_launches():
        p(x, params=params)  # warm caches
    with fz.record_launches() as launches, OpCounter() as c:
        p(x, params=params)
    n_out = math.prod(shape)
    moved = c.count.bytes_read + c.count.bytes_written + sum(k.bytes_read + k.bytes_written for k in launches)
    return {
        "path": path, "shape": list(shape), "kernels": c.count.ops + len(launches), "torch_ops": c.count.ops,
        "sample_ops": count_sample_ops(pipe, shape[0]).ops,
        "triton_launches": len(launches), "bytes_per_element": moved / n_out,
        "ops_by_name": dict(sorted(c.count.by_name.items())) | {k.name: 1 for k in launches},
    }


def accounting_table(pipe: Any, batches: tuple[int, ...] = (64, 256), size: int = 224) -> list[dict[str, Any]]:
    """``account`` for both paths at each batch size (the docs/gpu.md table)."""
    return [account(pipe, (b, 3, size, size), path) for b in batches for path in ("fused", "torch")]
