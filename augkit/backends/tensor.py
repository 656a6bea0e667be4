"""Batched execution on torch tensors, any device.

The plan, made once per pipeline: every run of consecutive geometric ops becomes one
3x3 matrix per sample and one warp (a flip-only run is one gather, no warp); each
photometric op is one elementwise pass. Values are carried as ``true = a * w + b`` with
python floats ``a, b`` so the uint8 -> [0, 1] scale and a fill offset fold into the next
pass instead of costing their own. On CPU the batch runs in blocks of samples (8 MiB of
float32 each) so that the passes after the warp read and write cache, not memory; a block is
a tiling of the batch, every sample's result is the same whatever the block. Scratch buffers
are reused between calls; on CPU the output buffer is reused too once the caller has dropped
every reference to it, since page faults on fresh 224x224 outputs cost more than the arithmetic.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import functional as F
from ..buffers import OutputPool
from ..ops import Contrast, GaussianNoise, HorizontalFlip, Normalize, Op, Zoom
from ..params import Params
from . import tensor_color

__all__ = ["TensorBackend"]


@dataclass(frozen=True)
class _Step:
    kind: str  # "flip" | "warp" | "contrast" | "noise" | "normalize"
    indices: tuple[int, ...]  # positions in the pipeline


def plan(ops: list[Op]) -> list[_Step]:
    """Group consecutive geometric ops (split where Zoom fills differ) into one step each."""
    steps: list[_Step] = []
    run: list[int] = []

    def close() -> None:
        if run:
            warp = any(isinstance(ops[i], Zoom) for i in run)
            steps.append(_Step("warp" if warp else "flip", tuple(run)))
            run.clear()

    fill = None
    for i, op in enumerate(ops):
        if op.kind == "geometric":
            if isinstance(op, Zoom):
                if fill is not None and op.fill != fill:
                    close()
                fill = op.fill
            run.append(i)
            continue
        close()
        fill = None
        kind = {Contrast: "contrast", GaussianNoise: "noise", Normalize: "normalize"}.get(type(op))
        if kind is None and type(op) in tensor_color.STEPS:
            kind = "color"
        if kind is None:
            raise TypeError(f"the tensor backend has no kernel for {type(op).__name__}")
        steps.append(_Step(kind, (i,)))
    close()
    return steps


class _Workspace:
    """Scratch buffers keyed by name, shape, dtype and device; reused across calls."""

    MAX_BUFFERS = 32  # a stream of ever-new shapes must not grow memory without bound

    def __init__(self) -> None:
        self._bufs: OrderedDict[tuple, Tensor] = OrderedDict()
        self._outputs = OutputPool()

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
        key = (name, shape, dtype, device)
        buf = self._bufs.get(key)
        if buf is None:
            buf = self._bufs[key] = torch.empty(shape, dtype=dtype, device=device)
            if len(self._bufs) > self.MAX_BUFFERS:
                self._bufs.popitem(last=False)
        self._bufs.move_to_end(key)
        return buf

    def output(self, shape: tuple[int, ...], device: torch.device) -> Tensor:
        """A float32 tensor for the caller (on CPU, a previous one nobody holds any more)."""
        return self._outputs.get(shape, device)


@dataclass
class _Value:
    """The batch between steps: true values are ``a * w + b``; ``mine`` if ``w`` may be overwritten."""

    w: Tensor
    a: float
    b: float
    mine: bool = False  # our scratch or a fresh tensor, not the caller's input


class TensorBackend:
    """Runs a list of ops on (B, C, H, W) tensors with given params."""

    def __init__(self, ops: list[Op]) -> None:
        self.ops = list(ops)
        self.steps = plan(self.ops)
        self._ws = _Workspace()

    def __call__(self, x: Tensor, params: Params) -> Tensor:
        """x: (B, C, H, W) uint8 or float in [0, 1] (checked by the caller) -> float32."""
        out = self._ws.output(tuple(x.shape), x.device)
        if x.numel() == 0:
            return out
        rows = _block_rows(x) if x.device.type == "cpu" else len(x)
        for i in range(0, len(x), rows):  # on CPU, blocks of samples whose passes stay in cache
            self._run(x[i : i + rows], params.select(slice(i, i + rows)) if rows < len(x) else params, out[i : i + rows])
        return out

    def _run(self, x: Tensor, params: Params, out: Tensor) -> None:
        v = _Value(x, 1.0 / 255 if x.dtype == torch.uint8 else 1.0, 0.0)
        for n, step in enumerate(self.steps):
            if step.kind != "flip" and v.w.dtype != torch.float32:  # convert by copy: mixed-dtype math is slow on CPU
                v = _Value(self._ws.get("in", tuple(x.shape), torch.float32, x.device).copy_(v.w), v.a, v.b, mine=True)
            v = getattr(self, "_" + step.kind)(step, v, params, out if n == len(self.steps) - 1 else None)
        if v.w is not out:
            _affine(v.w, v.a, v.b, out)  # a scale/offset is left (or no step ran)

    def _dst(self, v: _Value, out: Tensor | None) -> _Value:
        """Where an elementwise step writes: ``out`` if last, else in place if we may."""
        if out is not None:
            return _Value(out, 1.0, 0.0, mine=True)
        if v.mine:
            return _Value(v.w, 1.0, 0.0, mine=True)
        return _Value(self._ws.get("a", tuple(v.w.shape), torch.float32, v.w.device), 1.0, 0.0, mine=True)

    def _flip(self, step: _Step, v: _Value, params: Params, out: Tensor | None) -> _Value:
        hflip = vflip = torch.zeros(v.w.shape[0], dtype=torch.bool, device=v.w.device)
        for i in step.indices:  # two flips of one axis cancel
            if isinstance(self.ops[i], HorizontalFlip):
                hflip = hflip ^ params[i]["apply"]
            else:
                vflip = vflip ^ params[i]["apply"]
        # a gather cannot run in place; uint8 stays uint8 (4x less traffic than floats)
        name = "flip" if v.w is not self._ws.get("flip", tuple(v.w.shape), v.w.dtype, v.w.device) else "flip2"
        dst = self._ws.get(name, tuple(v.w.shape), v.w.dtype, v.w.device)
        return _Value(F.flip_gather(v.w, hflip, vflip, dst), v.a, v.b, mine=True)

    def _warp(self, step: _Step, v: _Value, params: Params, out: Tensor | None) -> _Value:
        w = v.w
        bsz, _, h, wd = w.shape
        # every geometric op here fixes the image centre, so the run's matrix is one factor
        # per axis and composing ops multiplies factors
        ax = ay = None  # None: factor 1
        fill = 0.0
        for i in step.indices:
            op, p = self.ops[i], params[i]
            if isinstance(op, Zoom):
                s = F.zoom_factor(p["scale"], p["apply"])
                ax, ay, fill = _times(ax, s), _times(ay, s), op.fill
            elif isinstance(op, HorizontalFlip):
                ax = _times(ax, F.flip_factor(p["apply"]))
            else:
                ay = _times(ay, F.flip_factor(p["apply"]))
        moved = params[step.indices[0]]["apply"]  # which samples any op of the run changed
        for i in step.indices[1:]:
            moved = moved | params[i]["apply"]
        one = torch.ones(bsz, device=w.device) if ax is None or ay is None else None
        ax, ay = (one if ax is None else ax), (one if ay is None else ay)
        # outside the image must read as ``fill``: shift values so fill sits at 0 in w-units
        c = (fill - v.b) / v.a
        src = w
        if c != 0.0:
            src = w if v.mine else self._ws.get("a", tuple(w.shape), torch.float32, w.device)
            torch.sub(w, c, out=src)
        grid = self._ws.get("grid", (bsz, h, wd, 2), torch.float32, w.device)
        if _host_selects(w.device):  # selection is free on the host: warp only moved samples
            idx = moved.nonzero().squeeze(1)
            if len(idx) == bsz:
                warped = F.warp_centred(src, ax, ay, grid)
            else:
                warped = src.clone()
                if len(idx):
                    warped.index_copy_(0, idx, F.warp_centred(src[idx], ax[idx], ay[idx], grid[: len(idx)]))
        else:  # no host sync: warp all, keep unmoved samples bit-exact
            warped = torch.where(moved[:, None, None, None], F.warp_centred(src, ax, ay, grid), src)
        return _Value(warped, v.a, v.b + v.a * c, mine=True)

    def _contrast(self, step: _Step, v: _Value, params: Params, out: Tensor | None) -> _Value:
        p = params[step.indices[0]]
        m = F.grey_mean(v.w).mul_(v.a)  # (B,) mean grey in [0, 1], before dst may overwrite w
        if v.b:
            m.add_(v.b)
        f = torch.where(p["apply"], p["factor"].float(), 1.0)
        scale = (f * v.a)[:, None, None, None]
        shift = m.mul_(1 - f)  # true = f * (a w + b) + m (1 - f)
        if v.b:
            shift.add_(f * v.b)
        shift = shift[:, None, None, None]
        d = self._dst(v, out)
        _affine(v.w, scale, shift, d.w).clamp_(0.0, 1.0)
        return d

    def _noise(self, step: _Step, v: _Value, params: Params, out: Tensor | None) -> _Value:
        p = params[step.indices[0]]
        bsz, n = v.w.shape[0], v.w[0].numel()
        half = (n + 1) // 2
        rows = min(bsz, F.noise_block_rows(n))
        work = tuple(
            self._ws.get(name, (rows, half), dt, v.w.device)
            for name, dt in (("nz_h", torch.int32), ("nz_t", torch.int32), ("nz_r", torch.float32))
        )
        std = torch.where(p["apply"], p["std"].float(), 0.0)
        d = self._dst(v, out)
        if d.w is v.w:  # in place: the field needs its own buffer
            field = self._ws.get("field", tuple(v.w.shape), torch.float32, v.w.device)
            F.normal_field(p["seed"], std, field.view(bsz, n), work)
            if v.a != 1.0:
                d.w.mul_(v.a)
            d.w.add_(field)
        else:
            F.normal_field(p["seed"], std, d.w.view(bsz, n), work)
            d.w.add_(v.w, alpha=v.a)
        if v.b:
            d.w.add_(v.b)
        d.w.clamp_(0.0, 1.0)
        return d

    def _color(self, step: _Step, v: _Value, params: Params, out: Tensor | None) -> _Value:
        """An op of ``tensor_color.STEPS``: true values into the destination, then its kernel in place."""
        d = self._dst(v, out)
        if d.w is not v.w or v.a != 1.0 or v.b != 0.0:
            _affine(v.w, v.a, v.b, d.w)
        i = step.indices[0]
        tensor_color.run(self.ops[i], params[i], d.w)
        return d

    def _normalize(self, step: _Step, v: _Value, params: Params, out: Tensor | None) -> _Value:
        op = self.ops[step.indices[0]]
        c = v.w.shape[1]
        mean = torch.tensor(op.mean, device=v.w.device).expand(c)
        std = torch.tensor(op.std, device=v.w.device).expand(c)
        d = self._dst(v, out)
        _affine(v.w, (v.a / std)[None, :, None, None], ((v.b - mean) / std)[None, :, None, None], d.w)
        return d


BLOCK_BYTES = 1 << 23  # float32 bytes of the samples one CPU block holds (8 MiB: 13 samples at 3x224x224)


def _block_rows(x: Tensor) -> int:
    return max(1, BLOCK_BYTES // (4 * x[0].numel()))


def _times(a: Tensor | None, b: Tensor) -> Tensor:
    return b if a is None else a * b


def _host_selects(device: torch.device) -> bool:
    """Whether picking samples by a mask is free (no device sync): on the CPU."""
    return device.type == "cpu"


def _affine(w: Tensor, scale: Tensor | float, shift: Tensor | float, out: Tensor) -> Tensor:
    """out = w * scale + shift, in one pass where possible."""
    if w.dtype != out.dtype:
        w = out.copy_(w)  # convert by copy: mixed-dtype arithmetic is slow on CPU
    if isinstance(scale, Tensor) and isinstance(shift, Tensor):
        return torch.addcmul(shift, w, scale, out=out)
    torch.mul(w, scale, out=out)
    if isinstance(shift, Tensor) or shift:
        out.add_(shift)
    return out
