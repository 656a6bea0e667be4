"""Counter-based, keyed random numbers for per-sample params: one vectorized call per draw.

Sample b's numbers are a pure function of (pipeline seed, ``keys[b]``, stream, counter), like
JAX's threefry or CUDA's Philox: they do not depend on the batch the sample sits in, its
position, the device, or how many workers there are. That is the reproducibility contract of
every path (docs/reliability.md): the batched tensor path draws a batch of keys at once, the
per-image Albumentations path draws one, and both get the same params for the same key.

Hash: murmur3's 32-bit finalizer ``fmix32`` on int32 tensors (multiplies wrap, shifts are made
logical by masking), exact and identical on every device. Sample b's base word mixes its key
and the seed; a stream (an op's position, a child of OneOf, ...) xors in a word of its own, and
value c of a stream is ``fmix32(fmix32(base ^ stream) + (c + 1) * golden)``.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import sys
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["Draw", "GeneratorDraw", "sample_key", "item_keys", "fmix32", "fmix32_", "fmix32_np", "KEY_HIGH"]

_GOLDEN = 0x9E3779B9
_M1 = 0x85EBCA6B
_M2 = 0xC2B2AE35
_MASK = 0xFFFFFFFF
KEY_HIGH = 2**63  # keys are ints in [0, 2**63): an int64 tensor holds them


def _i32(v: int) -> int:
    """An unsigned 32-bit word as the int32 value with the same bits."""
    v &= _MASK
    return v - (1 << 32) if v >= 1 << 31 else v


def sample_key(*parts: int) -> int:
    """A stable int in [0, 2**63) from ints, e.g. (seed, index, epoch, rank): same ints, same key.

    Python's ``hash`` is salted per process; this is not (blake2b of the packed ints), so
    DataLoader workers, machines and re-runs agree.
    """
    raw = struct.pack(f"<{len(parts)}q", *(int(p) for p in parts))
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little") % KEY_HIGH


def _as_i32(t: Tensor) -> Tensor:
    """int64 values in [0, 2**32) -> int32 with the same low 32 bits (exact, no overflowing cast)."""
    return ((t ^ 0x80000000) - 0x80000000).to(torch.int32)


def fmix32(v: int) -> int:
    """murmur3 fmix32 on a Python int (unsigned 32-bit in and out)."""
    v &= _MASK
    v ^= v >> 16
    v = (v * _M1) & _MASK
    v ^= v >> 13
    v = (v * _M2) & _MASK
    v ^= v >> 16
    return v


def fmix32_(h: Tensor, tmp: Tensor | None = None, rounds: int = 3) -> Tensor:
    """murmur3 fmix32 in place on an int32 tensor (the bits of uint32 words); ``rounds`` < 3 stops
    early, for a caller that folds the last xor-shift into what it does next."""
    tmp = torch.empty_like(h) if tmp is None else tmp
    for shift, mask, mult in _FMIX_ROUNDS[:rounds]:
        torch.bitwise_right_shift(h, shift, out=tmp)
        tmp.bitwise_and_(mask)
        h.bitwise_xor_(tmp)
        if mult is not None:
            h.mul_(mult)
    return h


# (shift, mask making the arithmetic shift logical, multiplier as int32 bits) per fmix32 round
_FMIX_ROUNDS = tuple((k, (1 << (32 - k)) - 1, None if m is None else _i32(m)) for k, m in ((16, _M1), (13, _M2), (16, None)))


_LITTLE = sys.byteorder == "little"


@functools.lru_cache(maxsize=256)
def _seed_word(seed: int) -> int:
    return fmix32(fmix32((seed >> 32) + _GOLDEN) ^ (seed & _MASK))


@functools.lru_cache(maxsize=256)
def _children_words(path: tuple[int, ...], m: int, words: int) -> tuple[np.ndarray, np.ndarray]:
    """The stream words of children 0..m-1 of ``path`` (m, 1) and the counter steps (words, 1), uint32."""
    streams = np.array([_stream_word(path + (i,)) for i in range(m)], dtype=np.uint32)[:, None]
    c = (np.arange(1, words + 1, dtype=np.uint64) * np.uint64(_GOLDEN)).astype(np.uint32)[:, None]
    streams.flags.writeable = c.flags.writeable = False
    return streams, c


@functools.lru_cache(maxsize=1024)
def _stream_word(path: tuple[int, ...]) -> int:
    w = 0x5EED
    for i in path:
        w = fmix32(w * _GOLDEN + i + 1)
    return w


def fmix32_np(h: np.ndarray, tmp: np.ndarray | None = None) -> np.ndarray:
    """murmur3 fmix32 in place on a uint32 array (multiplies wrap); ``tmp`` an optional scratch
    array of ``h``'s shape (no temporaries for large arrays)."""
    for shift, mult in ((16, _M1), (13, _M2), (16, None)):
        h ^= h >> np.uint32(shift) if tmp is None else np.right_shift(h, np.uint32(shift), out=tmp)
        if mult is not None:
            h *= np.uint32(mult)
    return h


class Draw:
    """Random numbers for ``n`` samples keyed by ``keys`` (n,) int64 and ``seed``; one stream.

    ``rand(k)`` returns (k, n) float32 uniforms in [0, 1) (24-bit, exact on every device);
    each call continues the stream, so an op may call it more than once. ``child(i)`` is an
    independent stream for a sub-op (an op's position in the pipeline, OneOf's children). Ops
    receive a Draw in ``sample``. Keys on the CPU are hashed with NumPy (a few microseconds per
    pass instead of a torch dispatch each), elsewhere with int32 tensor arithmetic: the same
    bits (``numpy=False`` forces the tensor path on the CPU, for tests).
    """

    def __init__(self, keys: Tensor, seed: int = 0, path: tuple[int, ...] = (), *, numpy: bool | None = None) -> None:
        if keys.dim() != 1 or keys.dtype != torch.int64:
            raise ValueError(f"keys must be a (n,) int64 tensor, got shape {tuple(keys.shape)} dtype {keys.dtype}")
        self.keys, self.seed, self.path = keys, int(seed), tuple(path)
        self._counter = 0
        self._np = keys.device.type == "cpu" if numpy is None else numpy
        s = _seed_word(self.seed)
        if self._np:
            k = np.ascontiguousarray(keys.numpy()).view(np.uint32).reshape(-1, 2)  # (n, 2) 32-bit halves
            lo_n, hi_n = (k[:, 0], k[:, 1]) if _LITTLE else (k[:, 1], k[:, 0])
            self._root: Any = fmix32_np(fmix32_np(hi_n ^ np.uint32(s)) ^ lo_n)  # (n,) uint32
        else:
            lo, hi = _as_i32(keys & _MASK), _as_i32(keys >> 32)
            self._root = fmix32_(fmix32_(hi.bitwise_xor_(_i32(s))).bitwise_xor_(lo))  # (n,) int32

    _base_v: Any = None  # the stream's base word per sample, hashed on first use

    @property
    def _base(self) -> Any:
        if self._base_v is None:
            self._base_v = self._stream_base(self.path)
        return self._base_v

    def _stream_base(self, path: tuple[int, ...]) -> Any:
        w = _stream_word(path)
        if self._np:
            return fmix32_np(self._root ^ np.uint32(w))
        return fmix32_(self._root.bitwise_xor(_i32(w)))

    @property
    def n(self) -> int:
        return self.keys.shape[0]

    @property
    def device(self) -> torch.device:
        return self.keys.device

    _SHARED: tuple[str, ...] = ("keys", "seed", "_np", "_root")  # what a child stream shares with its parent

    def _siblings(self, paths: list[tuple[int, ...]]) -> list[Draw]:
        """New streams at ``paths`` sharing this one's ``_SHARED`` state, counters at 0."""
        shared = {k: self.__dict__[k] for k in self._SHARED}
        kids: list[Draw] = []
        for path in paths:
            kid = object.__new__(type(self))
            kid.__dict__.update(shared)
            kid.path, kid._counter = path, 0
            kids.append(kid)
        return kids

    def child(self, i: int) -> Draw:
        """An independent stream for sub-op ``i`` (same keys and seed)."""
        return self._siblings([self.path + (int(i),)])[0]

    CHILD_WORDS = 8  # words per child that ``children`` hashes ahead

    def children(self, m: int, words: int | None = None) -> list[Draw]:
        """``[child(0), ..., child(m - 1)]`` with their first ``words`` (default ``CHILD_WORDS``)
        words made in one batched call.

        What a pipeline hands its ops: a constant number of calls for any number of ops (each
        op's first draws are views of the block), the same values as ``child(i)``.
        """
        kids = self._siblings([self.path + (i,) for i in range(m)])
        if m == 0:
            return kids
        block, base = self._children_block(m, self.CHILD_WORDS if words is None else words)  # (m, words, n), (m, n) or None
        uniform = _uniforms_np(block) if self._np else _uniforms_t(block)
        for i, kid in enumerate(kids):
            kid._block, kid._uniform = block[i], uniform[i]
            if base is not None:
                kid._base_v = base[i]
        return kids

    def _children_block(self, m: int, words: int) -> tuple[Any, Any]:
        if self._np:
            streams, c = _children_words(self.path, m, words)
            base = fmix32_np(self._root[None, :] ^ streams)  # (m, n)
            return fmix32_np(base[:, None, :] + c), base
        st = torch.tensor([_i32(_stream_word(self.path + (i,))) for i in range(m)], dtype=torch.int32).to(self.device, non_blocking=True)
        base_t = fmix32_(self._root[None, :] ^ st[:, None])  # (m, n)
        ct = torch.arange(1, words + 1, dtype=torch.int32, device=self.device).mul_(_i32(_GOLDEN))  # (words,), wraps
        return fmix32_(base_t[:, None, :] + ct[None, :, None]), base_t

    # the first words, hashed ahead by ``children``: (words, n) uint32 / float32 arrays on the
    # NumPy path, int32 / float32 tensors elsewhere
    _block: Any = None
    _uniform: Any = None  # the same words as uniforms
    _arrays = False  # NumPy path only: hand out NumPy arrays, not tensors (see ``arrays``)

    def arrays(self) -> Draw:
        """This stream (same counter), handing out NumPy arrays instead of tensors, on the NumPy
        path: for ops whose ``sample`` is marked ``@array_api`` (a tiny array op costs a
        fraction of a torch dispatch). Elsewhere the Draw itself."""
        if self._np:
            self._arrays = True
        return self

    @property
    def on_host(self) -> bool:
        """Whether this Draw hashes with NumPy (CPU keys)."""
        return self._np

    def _out(self, a: np.ndarray) -> Any:
        return a if self._arrays else torch.from_numpy(a)

    def _prefetched(self, k: int, block: Any) -> Any:
        if block is None or self._counter + k > block.shape[0]:
            return None
        out = block[self._counter : self._counter + k]
        self._counter += k
        return out

    def _raw(self, k: int) -> Any:
        """(k, n) hash words: uint32 numpy on the CPU, int32 tensor elsewhere."""
        pre = self._prefetched(k, self._block)
        return pre if pre is not None else self._fresh(k)

    def _fresh(self, k: int) -> Any:
        """The next ``k`` words past the prefetched block, hashed."""
        c0 = self._counter
        self._counter += k
        if self._np:
            c = (np.arange(c0 + 1, c0 + k + 1, dtype=np.uint64) * np.uint64(_GOLDEN)).astype(np.uint32)
            return fmix32_np(self._base[None, :] + c[:, None])
        c_t = torch.arange(c0 + 1, c0 + k + 1, dtype=torch.int64, device=self.device)
        step = _as_i32((c_t * _GOLDEN) & _MASK)  # (k,)
        return fmix32_(self._base[None, :] + step[:, None])  # (k, n) int32, wraps

    def words(self, k: int) -> Tensor:
        """(k, n) int32: the next ``k`` hash words of each sample (uniform 32-bit patterns)."""
        w = self._raw(k)
        return self._out(w.view(np.int32)) if self._np else w

    def rand(self, k: int) -> Tensor:
        """(k, n) float32 uniforms in [0, 1): the top 24 bits of ``words(k)`` over 2**24."""
        pre = self._prefetched(k, self._uniform)
        if pre is not None:
            return self._out(pre) if self._np else pre
        w = self._raw(k)
        return self._out(_uniforms_np(w)) if self._np else _uniforms_t(w)

    def integers(self, low: int, high: int) -> Tensor:
        """(n,) int64 uniform in [low, high) for a small range (high - low <= 2**16)."""
        if not 0 < high - low <= 1 << 16:
            raise ValueError(f"integers needs 0 < high - low <= 65536, got [{low}, {high})")
        if self._np:
            wn = self._raw(1)[0].astype(np.int64)  # (n,) in [0, 2**32)
            return self._out(low + (wn * (high - low)) // (1 << 32))
        w = self._raw(1)[0].to(torch.int64) & _MASK
        return low + (w * (high - low)) // (1 << 32)

    def bits31(self) -> Tensor:
        """(n,) int64 uniform in [0, 2**31): e.g. the seed of a noise field."""
        if self._np:
            return self._out(self._raw(1)[0].astype(np.int64) & 0x7FFFFFFF)
        return self._raw(1)[0].to(torch.int64) & 0x7FFFFFFF


def _uniforms_np(w: np.ndarray) -> np.ndarray:
    return (w >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)


def _uniforms_t(w: Tensor) -> Tensor:
    return torch.bitwise_right_shift(w, 8).bitwise_and_(0xFFFFFF).float().mul_(2.0**-24)


class GeneratorDraw(Draw):
    """``Draw``'s streams with words taken from a ``torch.Generator`` instead of keyed hashes.

    What a plain call (no keys) uses: reproducible from the generator's state and the order of
    draws (a seeded pipeline repeats itself), not per sample key, and cheaper: one generator call
    per block of words instead of four hash passes. Words and uniforms relate as in ``Draw``.
    """

    _SHARED = ("gen", "_n", "_np")
    CHILD_WORDS = 3  # what most ops draw (flips 1, Zoom and Contrast 2, the noise 3); an op that wants more draws them after

    def __init__(self, n: int, generator: torch.Generator, *, numpy: bool | None = None) -> None:
        self.gen, self._n, self.path, self._counter = generator, int(n), (), 0
        self._np = generator.device.type == "cpu" if numpy is None else numpy

    @property
    def n(self) -> int:
        return self._n

    @property
    def device(self) -> torch.device:
        return self.gen.device

    def _words_t(self, shape: tuple[int, ...]) -> Tensor:
        return torch.randint(-(2**31), 2**31, shape, dtype=torch.int32, generator=self.gen, device=self.gen.device)

    def _fresh(self, k: int) -> Any:
        self._counter += k
        w = self._words_t((k, self._n))
        return w.numpy().view(np.uint32) if self._np else w

    def _children_block(self, m: int, words: int) -> tuple[Any, Any]:
        w = self._words_t((m, words, self._n))
        return (w.numpy().view(np.uint32) if self._np else w), None


def item_keys(base: int, index: Tensor) -> Tensor:
    """(n,) int64 keys in [0, 2**63) of items ``index`` (n,) under ``base`` (e.g. ``sample_key(seed, epoch)``).

    Vectorized and device-agnostic: the batched loaders key a whole batch of dataset indices
    in one call, the per-image path one index, and both get the same keys.
    """
    w = Draw(index.to(torch.int64), seed=base).words(2).to(torch.int64) & _MASK  # (2, n)
    return ((w[0] & 0x7FFFFFFF) << 32) | w[1]
