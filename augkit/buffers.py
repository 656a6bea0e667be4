"""Reusing float32 CPU outputs once nobody can see them any more, and byte-bounded caches.

On CPU, page faults on a fresh 64x3x224x224 float32 batch (38 MB) cost more than the pass that
fills it, so a producer that hands out batches (the tensor backend, the CPU loader) keeps the
last two and writes one again only when no one else can reach its memory. Elsewhere (CUDA) the
caching allocator makes fresh tensors cheap and nothing is kept.

The rule that makes reuse safe (docs/reliability.md): the pool keeps a private *base* tensor and
hands out a view of it, a second TensorImpl on the same storage. Whoever keeps that view, a view
of it, its ``untyped_storage()``, a numpy array or a DLPack capsule made from it, an autograd
graph that saved it, holds a strong reference to the storage, so the storage's use count is above
the base's own. A storage that was ever moved to shared memory (a DataLoader worker sends its
result that way; ``share_memory_()``) is never written again: another process may map it. Only a
raw ``data_ptr()`` kept by foreign code escapes this, as it escapes any allocator.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

import torch
from torch import Tensor

__all__ = ["OutputPool", "ByteLRU", "byte_cache", "storage_uses"]

KEEP = 2  # bases kept per shape: the batch the caller holds and the one being made


def storage_uses(t: Tensor) -> tuple[int, int]:
    """(strong references to ``t``'s storage, Python references to its storage object); (-1, -1) if unknown.

    The first counts TensorImpls, DLPack capsules and the storage's Python object; the second
    sees a caller that keeps ``y.untyped_storage()`` (that Python object is cached on the storage,
    so holding it does not add a strong reference of its own).
    """
    try:
        s = t.untyped_storage()
        return torch._C._storage_Use_Count(s._cdata), sys.getrefcount(s)
    except (AttributeError, RuntimeError):  # private API gone: never reuse
        return -1, -1


class OutputPool:
    """float32 tensors for a caller; memory is written again only when no one else holds it.

    ``get`` returns a view of a pooled base. A base is reused when its storage has no holder but
    the base itself (the same count a fresh probe tensor has, measured the same way) and was
    never shared between processes; otherwise a new one is made and the oldest dropped.
    """

    def __init__(self) -> None:
        self._bufs: list[Tensor] = []
        self._free = storage_uses(torch.empty(1))  # a tensor nobody else sees
        self._lock = threading.Lock()

    def _reusable(self, base: Tensor) -> bool:
        return self._free[0] > 0 and not base.is_shared() and storage_uses(base) == self._free

    def get(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> Tensor:
        if torch.device(device).type != "cpu":
            return torch.empty(shape, dtype=torch.float32, device=device)
        with self._lock:  # two threads must not take the same base
            for base in self._bufs:
                if base.shape == shape and self._reusable(base):
                    return base.view(shape)
            base = torch.empty(shape, dtype=torch.float32)
            keep = [b for b in self._bufs if b.shape == shape and not b.is_shared()]
            self._bufs = keep[-(KEEP - 1) :] + [base]
            return base.view(shape)

    def __len__(self) -> int:
        return len(self._bufs)


K = TypeVar("K", bound=Hashable)


class ByteLRU(Generic[K]):
    """A least-recently-used cache of tensors or arrays bounded by their total bytes (thread safe).

    A value larger than the whole budget is computed and returned but not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._items: OrderedDict[K, object] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _size(value: object) -> int:
        if isinstance(value, Tensor):
            return value.numel() * value.element_size()
        return int(getattr(value, "nbytes", 0))

    def get_or_make(self, key: K, make: Callable[[], object]) -> object:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                return value
        value = make()  # outside the lock: other sizes need not wait
        size = self._size(value)
        if size > self.max_bytes:
            return value
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.nbytes -= self._size(old)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.nbytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def values(self) -> Iterator[object]:
        with self._lock:
            return iter(list(self._items.values()))


F = TypeVar("F", bound=Callable[..., object])


def byte_cache(max_bytes: int) -> Callable[[F], F]:
    """Like ``functools.lru_cache``, bounded by the bytes of the cached tensors/arrays (``fn.cache``)."""

    def wrap(fn: F) -> F:
        cache: ByteLRU = ByteLRU(max_bytes)

        @functools.wraps(fn)
        def cached(*args: object) -> object:
            return cache.get_or_make(args, lambda: fn(*args))

        cached.cache = cache  # type: ignore[attr-defined]
        cached.cache_clear = cache.clear  # type: ignore[attr-defined]
        return cached  # type: ignore[return-value]

    return wrap
