"""Reusing float32 CPU outputs once their caller has let go of them.

On CPU, page faults on a fresh 64x3x224x224 float32 batch (38 MB) cost more than the pass that
fills it, so a producer that hands out batches (the tensor backend, the CPU loader) keeps the
last two and hands one out again once nobody holds it or a view of it. Elsewhere (CUDA) the
caching allocator makes fresh tensors cheap and nothing is kept.
"""

from __future__ import annotations

import sys

import torch
from torch import Tensor

__all__ = ["OutputPool"]


def _storage_uses(t: Tensor) -> int:
    try:
        return torch._C._storage_Use_Count(t.untyped_storage()._cdata)
    except AttributeError:  # private API gone: never reuse
        return -1


def _refs(bufs: list[Tensor], i: int) -> tuple[int, int]:
    """(Python refs, storage uses) of ``bufs[i]``, counted the same way for the probe and the buffers."""
    t = bufs[i]
    return sys.getrefcount(t), _storage_uses(t)


class OutputPool:
    """float32 tensors for a caller; one is reused only when the caller holds no reference to it.

    "No reference" means as many references as a probe tensor held only by a list, counted by the
    same code (refcount conventions differ between Python versions), and no view of it alive.
    """

    def __init__(self) -> None:
        self._bufs: list[Tensor] = []
        self._free = _refs([torch.empty(1)], 0)

    def get(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> Tensor:
        if torch.device(device).type != "cpu":
            return torch.empty(shape, dtype=torch.float32, device=device)
        for i in range(len(self._bufs)):  # no loop variable bound to a buffer: counts match the probe's
            if self._bufs[i].shape == shape and _refs(self._bufs, i) == self._free:
                return self._bufs[i]
        t = torch.empty(shape, dtype=torch.float32)
        self._bufs = [b for b in self._bufs if b.shape == shape][-1:] + [t]  # keep at most two
        return t
