"""The fused accelerator path: one run of ops -> one or two Triton launches, no other kernel.

A *run* is at most one geometric step followed by pointwise steps (``segments``). When every op
of a run has a fused form (``GEOMETRIC``, ``POINTWISE``) and the input is uint8 or float32 with 1
or 3 channels, the run is one launch of ``fused_run`` (two with Contrast, whose grey mean needs
a reduction first). The kernel reads the raw params (apply masks, factors, seeds) itself, so a
call issues no small torch ops for them. Otherwise the tensor backend runs that run on its torch
path, which stays the reference (tests compare the two with ``TRITON_INTERPRET=1`` on the CPU).

Triton is imported only when a fused run is first built (``pip install augkit[cuda]``); without it
``available()`` is False and the torch path runs.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from ..ops import Contrast, GaussianNoise, HorizontalFlip, Normalize, Op, VerticalFlip, Zoom
from ..params import Params

__all__ = ["available", "covers", "FusedRun", "warp", "compile_for", "Geometry", "GEOMETRIC", "POINTWISE", "record_launches", "recording", "Launch", "TILE"]

TILE = 1024  # output pixels per program (all channels): grid is (B, ceil(H_out * W_out / TILE))

# op -> (kernel code, param keys read by the kernel); codes match _triton_kernels
GEOMETRIC: dict[type[Op], tuple[int, tuple[str, ...]]] = {
    HorizontalFlip: (1, ("apply",)),
    VerticalFlip: (2, ("apply",)),
    Zoom: (3, ("apply", "scale")),
}
POINTWISE: dict[type[Op], tuple[int, tuple[str, ...]]] = {
    Contrast: (1, ("apply", "factor")),
    GaussianNoise: (2, ("apply", "std", "seed")),
    Normalize: (3, ()),  # per-channel constants, cached on the device
}
NEEDS_REDUCTION = (Contrast,)  # a per-image statistic of the value before it: one extra launch
BORDERS = {"constant": 0, "reflect": 1, "replicate": 2}
INTERPOLATIONS = {"bilinear": 0, "nearest": 1}


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether Triton imports (the fused path can run)."""
    try:
        import triton  # noqa: F401
    except Exception:  # not installed, or a broken install: the torch path runs
        return False
    return True


def covers(ops: list[Op], channels: int, dtype: torch.dtype, matrix: bool = False) -> bool:
    """Whether one run of ``ops`` (geometric ops first, then pointwise) has a fused form.

    ``matrix``: the caller supplies the run's ``Geometry``, so any geometric op is covered.
    """
    if channels not in (1, 3) or dtype not in (torch.uint8, torch.float32):
        return False
    if sum(isinstance(op, NEEDS_REDUCTION) for op in ops) > 1:
        return False
    return all(type(op) in POINTWISE or type(op) in GEOMETRIC or (matrix and op.kind == "geometric") for op in ops)


@dataclass(frozen=True)
class Geometry:
    """A geometric run in its general form, computed by the torch side (for ops with no in-kernel matrix).

    ``inv`` (B, 2, 3) float32 maps output pixel coordinates (x, y, 1) to input ones (pixel centres at
    integers, x right, y down); ``size`` is (H_out, W_out); ``border`` one of ``BORDERS``; ``fill`` in
    [0, 1]; ``interpolation`` one of ``INTERPOLATIONS``.
    """

    inv: Tensor
    size: tuple[int, int]
    border: str = "constant"
    fill: float = 0.0
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class Launch:
    """One kernel launch as recorded for accounting: bytes it reads and writes (unique elements)."""

    name: str
    grid: tuple[int, int]
    bytes_read: int
    bytes_written: int


_record = threading.local()


@contextmanager
def record_launches() -> Iterator[list[Launch]]:
    """Record fused launches in this thread instead of running them (works on ``meta`` tensors)."""
    log: list[Launch] = []
    _record.log = log
    try:
        yield log
    finally:
        _record.log = None


def recording() -> bool:
    """Whether launches in this thread are being recorded rather than run."""
    return getattr(_record, "log", None) is not None


def _nbytes(t: Tensor) -> int:
    return t.numel() * t.element_size()


class FusedRun:
    """One run of ops (positions ``indices`` in the pipeline) as one or two launches."""

    def __init__(self, ops: list[Op], indices: tuple[int, ...]) -> None:
        self.indices = indices
        run = [ops[i] for i in indices]
        self.geo = [(i, op) for i, op in zip(indices, run) if op.kind == "geometric"]
        self.point = [(i, op) for i, op in zip(indices, run) if op.kind != "geometric"]
        zooms = [op for _, op in self.geo if isinstance(op, Zoom)]
        self.fill = zooms[-1].fill if zooms else 0.0  # the torch plan splits runs where fills differ
        self.border = BORDERS["constant"]
        self.interpolation = INTERPOLATIONS["bilinear"]
        self.stop = next((k for k, (_, op) in enumerate(self.point) if isinstance(op, NEEDS_REDUCTION)), -1)
        self._consts: dict[tuple[int, int, torch.device], tuple[Tensor, Tensor]] = {}
        self._lock = threading.Lock()

    def _normalize_consts(self, op: Normalize, c: int, device: torch.device) -> tuple[Tensor, Tensor]:
        key = (id(op), c, device)
        got = self._consts.get(key)
        if got is None:
            with self._lock:
                mean = torch.tensor(op.mean, dtype=torch.float32).expand(c).contiguous().to(device)
                std = torch.tensor(op.std, dtype=torch.float32).expand(c).contiguous().to(device)
                got = self._consts[key] = (mean, std)
        return got

    def __call__(self, x: Tensor, a: float, b: float, params: Params, out: Tensor,
                 part: Callable[[tuple[int, int]], Tensor], geometry: Geometry | None = None) -> Tensor:
        """out (B, C, HO, WO) float32 <- the run on x (B, C, H, W) uint8/float32 holding a * x + b.

        ``part(shape)`` gives a float32 scratch tensor for the partial sums (from a workspace).
        ``geometry``: the run's matrices and output size made on the torch side; without it the
        kernel composes the run's ``GEOMETRIC`` ops itself.
        """
        bsz, c, h, w = x.shape
        ho, wo = out.shape[2:]
        if not x.is_contiguous():
            x = x.contiguous()
        border, interp, fill = self.border, self.interpolation, self.fill
        gcodes: tuple[int, ...]
        gp: tuple[tuple[Tensor, ...], ...]
        if geometry is not None:
            if tuple(geometry.size) != (ho, wo) or tuple(geometry.inv.shape) != (bsz, 2, 3):
                raise ValueError(f"geometry must have inv (B, 2, 3) and size {(ho, wo)}, got "
                                 f"{tuple(geometry.inv.shape)} and {tuple(geometry.size)}")
            gcodes, gp = (4,), ((geometry.inv.float().contiguous(),),)
            border, interp = BORDERS[geometry.border], INTERPOLATIONS[geometry.interpolation]
            fill = geometry.fill
        else:
            gcodes = tuple(GEOMETRIC[type(op)][0] for _, op in self.geo)
            gp = tuple(tuple(params[i][k].contiguous() for k in GEOMETRIC[type(op)][1]) for i, op in self.geo)
        pcodes: list[int] = []
        pp: list[tuple[Tensor, ...]] = []
        for i, op in self.point:
            pcodes.append(POINTWISE[type(op)][0])
            if isinstance(op, Normalize):
                pp.append(self._normalize_consts(op, c, x.device))
            else:
                pp.append(tuple(params[i][k].contiguous() for k in POINTWISE[type(op)][1]))
        tiles = math.ceil(ho * wo / TILE)
        partials = part((bsz, tiles)) if self.stop >= 0 else out  # unused pointer without Contrast
        grid = (bsz, tiles)
        meta = dict(C=c, CP=4 if c == 3 else 1, BORDER=border, INTERP=interp, STOP=max(self.stop, 0),
                    TB=max(triton_next_pow2(tiles), 2), TILE=TILE)
        args = (x, out, partials, float(a), float(b), float(fill), gp, gcodes, tuple(pp), tuple(pcodes), h, w, ho, wo,
                tiles)
        passes = [True, False] if self.stop >= 0 else [False]
        log = getattr(_record, "log", None)
        if log is not None:
            for reduce in passes:
                written = _nbytes(partials) if reduce else _nbytes(out)
                read = _nbytes(x) + (_nbytes(partials) if self.stop >= 0 and not reduce else 0)
                log.append(Launch("fused_run" + ("[reduce]" if reduce else ""), grid, read, written))
            return out
        from ._triton_kernels import fused_run

        for reduce in passes:
            fused_run[grid](*args, REDUCE=reduce, **meta)
        return out


_TYPES = {torch.bool: "*i1", torch.float32: "*fp32", torch.int64: "*i64", torch.uint8: "*u8"}
_PARAM_DTYPES = {"apply": torch.bool, "seed": torch.int64}  # every other param key is float32


def compile_for(run: FusedRun, channels: int, dtype: torch.dtype, reduce: bool, arch: int = 90, tiles: int = 49) -> object:
    """Compile ``run``'s kernel ahead of time for CUDA compute capability ``arch`` (no GPU needed).

    Returns Triton's compiled kernel (``.asm`` holds the PTX and cubin). For tests and the device check.
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from ._triton_kernels import fused_run

    def ptrs(keys: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_TYPES[_PARAM_DTYPES.get(k, torch.float32)] for k in keys)

    gp = tuple(ptrs(GEOMETRIC[type(op)][1]) for _, op in run.geo)
    pp = tuple(("*fp32", "*fp32") if isinstance(op, Normalize) else ptrs(POINTWISE[type(op)][1]) for _, op in run.point)
    const = {"GCODES": tuple(GEOMETRIC[type(op)][0] for _, op in run.geo),
             "PCODES": tuple(POINTWISE[type(op)][0] for _, op in run.point), "C": channels,
             "CP": 4 if channels == 3 else 1, "BORDER": run.border, "INTERP": run.interpolation, "STOP": max(run.stop, 0),
             "REDUCE": reduce, "TB": max(triton_next_pow2(tiles), 2), "TILE": TILE}
    sig = {"x_ptr": _TYPES[dtype], "out_ptr": "*fp32", "part_ptr": "*fp32", "a_in": "fp32", "b_in": "fp32",
           "fill": "fp32", "GP": gp, "PP": pp, "H": "i32", "W": "i32", "HO": "i32", "WO": "i32", "T": "i32"}
    sig.update({k: "constexpr" for k in const})
    names = list(fused_run.arg_names)
    src = ASTSource(fused_run, sig, constexprs={(names.index(k),): v for k, v in const.items()})
    return triton.compile(src, target=GPUTarget("cuda", arch, 32))


def triton_next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def warp(x: Tensor, inv: Tensor, out: Tensor, *, border: str = "constant", fill: float = 0.0,
         interpolation: str = "bilinear", a: float | None = None, b: float = 0.0) -> Tensor:
    """out (B, C, HO, WO) float32 <- x (B, C, H, W) sampled at ``inv`` @ (x_out, y_out, 1), one launch.

    ``inv`` (B, 2, 3) float32 maps output pixel coordinates to input ones (pixel centres at
    integers, x right, y down). ``border``: constant (``fill``, in [0, 1] units), reflect (mirror
    about the edge) or replicate; ``interpolation``: bilinear or nearest (ties to even). Values
    are ``a * x + b`` (``a`` defaults to 1/255 for uint8, 1 for float32). The general form of a
    geometric run, for runs whose ops have no in-kernel matrix.
    """
    if border not in BORDERS:
        raise ValueError(f"border must be one of {list(BORDERS)}, got {border!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {list(INTERPOLATIONS)}, got {interpolation!r}")
    bsz, c = x.shape[:2]
    if inv.shape != (bsz, 2, 3) or out.shape[:2] != (bsz, c) or out.dtype != torch.float32:
        raise ValueError(f"inv must be (B, 2, 3) and out (B, C, HO, WO) float32 for x {tuple(x.shape)}, "
                         f"got inv {tuple(inv.shape)}, out {tuple(out.shape)} {out.dtype}")
    if c not in (1, 3) or x.dtype not in (torch.uint8, torch.float32):
        raise ValueError(f"x must be uint8 or float32 with 1 or 3 channels, got {x.dtype} with {c}")
    if a is None:
        a = 1.0 / 255 if x.dtype == torch.uint8 else 1.0
    ho, wo = out.shape[2:]
    tiles = math.ceil(ho * wo / TILE)
    grid = (bsz, tiles)
    log = getattr(_record, "log", None)
    if log is not None:
        log.append(Launch("fused_run", grid, _nbytes(x), _nbytes(out)))
        return out
    from ._triton_kernels import fused_run

    fused_run[grid](x.contiguous(), out, out, float(a), float(b), float(fill), ((inv.float().contiguous(),),), (4,), (), (),
                    x.shape[2], x.shape[3], ho, wo, tiles, C=c, CP=4 if c == 3 else 1, BORDER=BORDERS[border],
                    INTERP=INTERPOLATIONS[interpolation], STOP=0, REDUCE=False, TB=2, TILE=TILE)
    return out
