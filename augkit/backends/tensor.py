"""Batched execution on torch tensors, any device.

The plan, made once per pipeline: every run of consecutive geometric ops becomes one
3x3 matrix per sample and one warp (a flip-only run is one gather, no warp); each
photometric op is one elementwise pass. Values are carried as ``true = a * w + b`` with
python floats ``a, b`` so the uint8 -> [0, 1] scale and a fill offset fold into the next
pass instead of costing their own. Scratch buffers are reused between calls; on CPU the
output buffer is reused too once the caller has dropped every reference to it, since page
faults on fresh 224x224 outputs cost more than the arithmetic.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import functional as F
from ..ops import Contrast, GaussianNoise, HorizontalFlip, Normalize, Op, VerticalFlip, Zoom
from ..params import Params

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
        if kind is None:
            raise TypeError(f"the tensor backend has no kernel for {type(op).__name__}")
        steps.append(_Step(kind, (i,)))
    close()
    return steps


class _Workspace:
    """Scratch buffers keyed by name, shape, dtype and device; reused across calls."""

    MAX_BUFFERS = 16  # a stream of ever-new shapes must not grow memory without bound

    def __init__(self) -> None:
        self._bufs: OrderedDict[tuple, Tensor] = OrderedDict()
        self._outs: list[Tensor] = []

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
        """A float32 tensor for the caller. On CPU, a previous output nobody holds any more."""
        if device.type != "cpu":
            return torch.empty(shape, dtype=torch.float32, device=device)
        for i in range(len(self._outs)):
            # free when the only refs are our list and getrefcount's argument, and the only
            # storage users are the tensor and the probe (no view of it survives either)
            if self._outs[i].shape == shape and sys.getrefcount(self._outs[i]) == 2 and _storage_uses(self._outs[i]) == 2:
                return self._outs[i]
        t = torch.empty(shape, dtype=torch.float32, device=device)
        self._outs = [o for o in self._outs if o.shape == shape][-1:] + [t]  # keep at most two
        return t


def _storage_uses(t: Tensor) -> int:
    try:
        return torch._C._storage_Use_Count(t.untyped_storage()._cdata)
    except AttributeError:  # private API gone: never reuse
        return -1


class TensorBackend:
    """Runs a list of ops on (B, C, H, W) tensors with given params."""

    def __init__(self, ops: list[Op]) -> None:
        self.ops = list(ops)
        self.steps = plan(self.ops)
        self._ws = _Workspace()

    def __call__(self, x: Tensor, params: Params) -> Tensor:
        """x: (B, C, H, W) uint8 or float in [0, 1] (checked by the caller) -> float32."""
        shape, dev = tuple(x.shape), x.device
        out = self._ws.output(shape, dev)
        if x.numel() == 0:
            return out
        w = x
        a, b = (1.0 / 255, 0.0) if x.dtype == torch.uint8 else (1.0, 0.0)  # true value = a * w + b
        for n, step in enumerate(self.steps):
            if step.kind != "flip" and w.dtype != torch.float32:
                w = self._scratch(w, shape, dev).copy_(w)  # convert by copy: mixed-dtype math is slow on CPU
            last = n == len(self.steps) - 1
            dst = out if last and step.kind in ("contrast", "noise", "normalize") else self._scratch(w, shape, dev)
            w, a, b = getattr(self, "_" + step.kind)(step, w, a, b, params, dst)
        if w is out:
            return out
        return _affine(w, a, b, out)  # last step left a scale/offset (or no step ran)

    def _scratch(self, w: Tensor, shape: tuple[int, ...], dev: torch.device) -> Tensor:
        """A float32 scratch buffer that is not ``w`` (ping-pong between two)."""
        first = self._ws.get("a", shape, torch.float32, dev)
        return self._ws.get("b", shape, torch.float32, dev) if w is first else first

    def _is_scratch(self, w: Tensor) -> bool:
        return any(w is self._ws.get(k, tuple(w.shape), torch.float32, w.device) for k in ("a", "b"))

    def _flip(self, step: _Step, w: Tensor, a: float, b: float, params: Params, dst: Tensor):
        hflip = vflip = torch.zeros(w.shape[0], dtype=torch.bool, device=w.device)
        for i in step.indices:  # two flips of one axis cancel
            if isinstance(self.ops[i], HorizontalFlip):
                hflip = hflip ^ params[i]["apply"]
            else:
                vflip = vflip ^ params[i]["apply"]
        if w.dtype != torch.float32:  # flip the input's own bytes: 4x less traffic than floats
            dst = self._ws.get("flip", tuple(w.shape), w.dtype, w.device)
        return F.flip_gather(w, hflip, vflip, dst), a, b

    def _warp(self, step: _Step, w: Tensor, a: float, b: float, params: Params, dst: Tensor):
        bsz, _, h, wd = w.shape
        x_map = y_map = None  # the run's matrix, axis by axis: u -> a * u + b, None = identity
        moved = torch.zeros(bsz, dtype=torch.bool, device=w.device)
        fill = 0.0
        for i in step.indices:  # later ops act on the output of earlier ones: compose maps
            op, p = self.ops[i], params[i]
            if not isinstance(op, VerticalFlip):
                m = F.flip_axis(p["apply"], wd) if isinstance(op, HorizontalFlip) else F.zoom_axis(p["scale"], p["apply"], wd)
                x_map = _then(x_map, m)
            if not isinstance(op, HorizontalFlip):
                m = F.flip_axis(p["apply"], h) if isinstance(op, VerticalFlip) else F.zoom_axis(p["scale"], p["apply"], h)
                y_map = _then(y_map, m)
            if isinstance(op, Zoom):
                fill = op.fill
            moved |= p["apply"]
        one = torch.ones(bsz, device=w.device)
        ax, bx = x_map or (one, one - 1)
        ay, by = y_map or (one, one - 1)
        # outside the image must read as ``fill``: shift values so fill sits at 0 in w-units
        c = (fill - b) / a
        src = w
        if c != 0.0:
            src = w if self._is_scratch(w) else self._ws.get("warp_in", tuple(w.shape), torch.float32, w.device)
            torch.sub(w, c, out=src)
        grid = self._ws.get("grid", (bsz, h, wd, 2), torch.float32, w.device)
        if _host_selects(w.device):  # selection is free on the host: warp only moved samples
            idx = moved.nonzero().squeeze(1)
            if len(idx) == bsz:
                dst = F.warp_axis_aligned(src, ax, bx, ay, by, dst, grid)
            else:
                dst.copy_(src)
                if len(idx):
                    sub = torch.empty_like(src[idx])
                    F.warp_axis_aligned(src[idx], ax[idx], bx[idx], ay[idx], by[idx], sub, grid[: len(idx)])
                    dst.index_copy_(0, idx, sub)
        else:  # no host sync: warp all, keep unmoved samples bit-exact
            dst = torch.where(moved[:, None, None, None], F.warp_axis_aligned(src, ax, bx, ay, by, dst, grid), src)
        return dst, a, b + a * c

    def _contrast(self, step: _Step, w: Tensor, a: float, b: float, params: Params, dst: Tensor):
        (i,) = step.indices
        p = params[i]
        m = F.grey_mean(w) * a + b  # (B,) mean grey in [0, 1]
        f = torch.where(p["apply"], p["factor"].float(), 1.0)
        scale = (f * a)[:, None, None, None]
        shift = (f * b + m * (1 - f))[:, None, None, None]
        return _affine(w, scale, shift, dst).clamp_(0.0, 1.0), 1.0, 0.0

    def _noise(self, step: _Step, w: Tensor, a: float, b: float, params: Params, dst: Tensor):
        (i,) = step.indices
        p = params[i]
        bsz = w.shape[0]
        n = w[0].numel()
        half = (n + 1) // 2
        work = tuple(
            self._ws.get(name, (bsz, half), dt, w.device)
            for name, dt in (("nz_h", torch.int32), ("nz_t", torch.int32), ("nz_r", torch.float32))
        )
        std = torch.where(p["apply"], p["std"].float(), 0.0)
        field = F.normal_field(p["seed"], std, dst.view(bsz, n), work).view(w.shape)
        field.add_(w, alpha=a)
        if b:
            field.add_(b)
        return field.clamp_(0.0, 1.0), 1.0, 0.0

    def _normalize(self, step: _Step, w: Tensor, a: float, b: float, params: Params, dst: Tensor):
        (i,) = step.indices
        op = self.ops[i]
        c = w.shape[1]
        mean = torch.tensor(op.mean, device=w.device).expand(c) if len(op.mean) == 1 else torch.tensor(op.mean, device=w.device)
        std = torch.tensor(op.std, device=w.device).expand(c) if len(op.std) == 1 else torch.tensor(op.std, device=w.device)
        scale = (a / std)[None, :, None, None]
        shift = ((b - mean) / std)[None, :, None, None]
        return _affine(w, scale, shift, dst), 1.0, 0.0


def _host_selects(device: torch.device) -> bool:
    """Whether picking samples by a mask is free (no device sync): on the CPU."""
    return device.type == "cpu"


def _then(first: tuple[Tensor, Tensor] | None, then: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Compose axis maps: apply ``first`` (None = identity), then ``then``."""
    if first is None:
        return then
    (a1, b1), (a2, b2) = first, then
    return a2 * a1, a2 * b1 + b2


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
