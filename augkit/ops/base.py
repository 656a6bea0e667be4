"""The op base class and the argument checks every op shares. Imports torch and the stdlib only."""

from __future__ import annotations

import dataclasses
import math
import reprlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..random import Draw

__all__ = ["Op", "check_p", "check_range", "check_number", "uniform", "columns", "array_api", "draw_params", "FLOAT32_MAX", "SEED_HIGH"]

SEED_HIGH = 2**31  # noise seeds are drawn in [0, 2**31): exact in float64 and JSON
FLOAT32_MAX = 3.4028234663852886e38


def _short(value: Any) -> str:
    return reprlib.repr(value)


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float))


def check_p(name: str, p: Any) -> float:
    if not _is_number(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}.p must be a number in [0, 1], got {_short(p)}")
    return float(p)


def check_number(name: str, value: Any, *, low: float = -FLOAT32_MAX, high: float = FLOAT32_MAX) -> float:
    """A finite number (in float32 too) within [low, high]."""
    if not _is_number(value) or not (math.isfinite(value) and low <= value <= high and abs(value) <= FLOAT32_MAX):
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {_short(value)}")
    return float(value)


def check_range(
    name: str,
    value: Any,
    *,
    low: float = -FLOAT32_MAX,
    high: float = FLOAT32_MAX,
    strict: bool = False,
    scalar: Callable[[float], tuple[float, float]] | None = None,
    scalar_doc: str = "",
) -> tuple[float, float]:
    """Check a (lo, hi) range with low <(=) lo <= hi <= high, all finite in float32.

    ``strict`` makes the lower bound exclusive. ``scalar`` maps one number to a range, as the
    peers do (torchvision ``RandomRotation(15)`` is (-15, 15)); ``scalar_doc`` says how in errors.
    """
    bound = f"{low:g} {'<' if strict else '<='} lo <= hi <= {high:g}"
    expected = f"(lo, hi) with {bound}" + (f", or one number x meaning {scalar_doc}" if scalar else "")
    if scalar is not None and _is_number(value):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be {expected}, got {_short(value)}")
        value = scalar(float(value))
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2 or not all(_is_number(v) for v in value):
        raise ValueError(f"{name} must be {expected}, got {_short(value)}")
    lo, hi = float(value[0]), float(value[1])
    ok = all(math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in (lo, hi)) and lo <= hi
    ok = ok and (lo > low if strict else lo >= low) and hi <= high
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {_short(value)}")
    return lo, hi


def uniform(u: Tensor, lo: float, hi: float) -> Tensor:
    """Map uniforms in [0, 1) to [lo, hi) (float32; a tensor or a NumPy array, same bits)."""
    return lo + u * (hi - lo)


def columns(u: Any) -> Any:
    """(k, n) draws -> (n, k) contiguous rows, for a tensor or a NumPy array."""
    return u.T.contiguous() if isinstance(u, Tensor) else u.T.copy()


F = Callable[..., dict[str, Any]]


def array_api(sample: F) -> F:
    """Mark an op's ``sample`` as using only what NumPy arrays and tensors share (comparisons,
    arithmetic, slicing, ``uniform``, ``columns``, the Draw's methods): on the CPU it then runs
    on NumPy arrays (``draw_params``), several times cheaper per call than tiny torch ops."""
    sample.array_api = True  # type: ignore[attr-defined]
    return sample


def draw_params(op: Op, n: int, rng: Draw, arrays: bool | None = None) -> dict[str, Tensor]:
    """``op.sample(n, rng)`` as tensors; through NumPy when the Draw and the op allow it
    (``arrays``: whether ``op.sample`` is marked ``@array_api``, when the caller knows already)."""
    if arrays is None:
        arrays = getattr(type(op).sample, "array_api", False)
    if arrays and rng.on_host:
        return {k: torch.from_numpy(v) for k, v in op.sample(n, rng.arrays()).items()}
    return op.sample(n, rng)


@dataclass(frozen=True)
class Op:
    """Base of every op spec. Subclasses set ``kind`` and implement ``sample``.

    ``sample(n, rng)`` draws the params of ``n`` samples from a ``Draw`` (counter-based, keyed
    per sample) in a few vectorized calls: ``apply`` (n,) bool plus the op's values, each (n,)
    or (n, k). Values that depend on the image size are filled in by the pipeline
    (``sample_sized``).
    """

    kind: ClassVar[str] = "photometric"  # "geometric" ops move pixels, "photometric" change values
    p: float = field(default=1.0, kw_only=True)  # keyword-only: Zoom((0.8, 1.2)) sets scale

    def __post_init__(self) -> None:
        object.__setattr__(self, "p", check_p(type(self).__name__, self.p))

    @array_api
    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        """Draw parameters for ``n`` samples: ``apply`` (n,) bool plus op values."""
        return {"apply": self._apply(rng)}

    def _apply(self, rng: Draw) -> Tensor:
        return rng.rand(1)[0] < self.p

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"name": type(self).__name__, **{k: _plain(v) for k, v in d.items()}}


def _plain(v: Any) -> Any:
    if isinstance(v, Op):
        return v.to_dict()
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return v
