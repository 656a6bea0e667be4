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

import hashlib
import struct

import torch
from torch import Tensor

__all__ = ["Draw", "sample_key", "fmix32", "fmix32_", "KEY_HIGH"]

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


def fmix32_(h: Tensor, tmp: Tensor | None = None) -> Tensor:
    """murmur3 fmix32 in place on an int32 tensor (the bits of uint32 words)."""
    tmp = torch.empty_like(h) if tmp is None else tmp
    for shift, mult in ((16, _i32(_M1)), (13, _i32(_M2)), (16, None)):
        torch.bitwise_right_shift(h, shift, out=tmp)
        tmp.bitwise_and_((1 << (32 - shift)) - 1)
        h.bitwise_xor_(tmp)
        if mult is not None:
            h.mul_(mult)
    return h


def _stream_word(path: tuple[int, ...]) -> int:
    w = 0x5EED
    for i in path:
        w = fmix32(w * _GOLDEN + i + 1)
    return w


class Draw:
    """Random numbers for ``n`` samples keyed by ``keys`` (n,) int64 and ``seed``; one stream.

    ``rand(k)`` returns (k, n) float32 uniforms in [0, 1) (24-bit, exact on every device);
    each call continues the stream, so an op may call it more than once. ``child(i)`` is an
    independent stream for a sub-op (OneOf's children). Ops receive a Draw in ``sample``.
    """

    def __init__(self, keys: Tensor, seed: int = 0, path: tuple[int, ...] = ()) -> None:
        if keys.dim() != 1 or keys.dtype != torch.int64:
            raise ValueError(f"keys must be a (n,) int64 tensor, got shape {tuple(keys.shape)} dtype {keys.dtype}")
        self.keys, self.seed, self.path = keys, int(seed), tuple(path)
        self._counter = 0
        lo, hi = _as_i32(keys & _MASK), _as_i32(keys >> 32)
        s = fmix32(fmix32((self.seed >> 32) + _GOLDEN) ^ (self.seed & _MASK))
        base = fmix32_(fmix32_(hi.bitwise_xor_(_i32(s))).bitwise_xor_(lo))
        self._base = fmix32_(base.bitwise_xor_(_i32(_stream_word(self.path))))  # (n,) int32

    @classmethod
    def from_generator(cls, n: int, generator: torch.Generator, seed: int = 0) -> Draw:
        """A Draw whose ``n`` keys are drawn from ``generator`` (one call, on its device)."""
        keys = torch.randint(0, KEY_HIGH - 1, (n,), generator=generator, device=generator.device)
        return cls(keys, seed)

    @property
    def n(self) -> int:
        return self.keys.shape[0]

    @property
    def device(self) -> torch.device:
        return self.keys.device

    def child(self, i: int) -> Draw:
        """An independent stream for sub-op ``i`` (same keys and seed)."""
        return Draw(self.keys, self.seed, self.path + (int(i),))

    def words(self, k: int) -> Tensor:
        """(k, n) int32: the next ``k`` hash words of each sample (uniform 32-bit patterns)."""
        c = torch.arange(self._counter + 1, self._counter + k + 1, dtype=torch.int64, device=self.device)
        self._counter += k
        step = _as_i32((c * _GOLDEN) & _MASK)  # (k,)
        h = self._base[None, :] + step[:, None]  # (k, n) int32, wraps
        return fmix32_(h)

    def rand(self, k: int) -> Tensor:
        """(k, n) float32 uniforms in [0, 1): the top 24 bits of ``words(k)`` over 2**24."""
        w = self.words(k)
        w = torch.bitwise_right_shift(w, 8).bitwise_and_(0xFFFFFF)
        return w.float().mul_(2.0**-24)

    def integers(self, low: int, high: int) -> Tensor:
        """(n,) int64 uniform in [low, high) for a small range (high - low <= 2**16)."""
        if not 0 < high - low <= 1 << 16:
            raise ValueError(f"integers needs 0 < high - low <= 65536, got [{low}, {high})")
        w = self.words(1)[0].to(torch.int64) & _MASK  # (n,) in [0, 2**32)
        return low + (w * (high - low)) // (1 << 32)

    def bits31(self) -> Tensor:
        """(n,) int64 uniform in [0, 2**31): e.g. the seed of a noise field."""
        return self.words(1)[0].to(torch.int64) & 0x7FFFFFFF
