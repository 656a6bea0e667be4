"""Batched execution on torch tensors, any device.

The plan, made once per pipeline: every run of consecutive geometric ops (``geometry.split_runs``)
becomes one 3x3 matrix per sample (``geometry.run_matrix``) and one resample (``augkit.warp``):
a flip-only run is one gather, flips and quarter turns of square images one permuting gather,
an axis-aligned run a grid of two ramps, a rotating run a full grid; antialiased crops and
resizes use ``F.interpolate``'s filter (per sample on the CPU, two batched matmuls elsewhere).
A ragged list of images runs per sample on the CPU and padded into one batch elsewhere. Each
photometric op is one elementwise pass. Values are carried as ``true = a * w + b`` with
python floats ``a, b`` so the uint8 -> [0, 1] scale and a fill offset fold into the next
pass instead of costing their own. On CPU the batch runs in blocks of samples (8 MiB of
float32 each) so that the passes after the warp read and write cache, not memory; a block is
a tiling of the batch, every sample's result is the same whatever the block. Scratch buffers
are reused between calls; on CPU the output buffer is reused too once the caller has dropped
every reference to it, since page faults on fresh 224x224 outputs cost more than the arithmetic.

Off the CPU the whole batch runs at once, so the number of ops per call does not grow with the
batch, and a run (a geometric step and the pointwise steps after it) whose ops all have a fused
form runs as one or two Triton launches (``augkit.backends.fused``); any other run takes the
torch path below, which is also the reference. Scratch is per thread and, on CUDA, per stream:
one pipeline may be called from several threads or streams at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import functional as F
from .. import geometry as G
from .. import warp as W
from ..buffers import OutputPool
from ..ops import Contrast, GaussianNoise, HorizontalFlip, Normalize, Op, Rot90, SizingOp, VerticalFlip
from ..params import Params
from . import fused as fz
from . import tensor_color

__all__ = ["TensorBackend", "FUSED_MODES"]

FUSED_MODES = ("auto", "always", "never")  # auto: fused runs on CUDA when Triton imports


@dataclass(frozen=True)
class _Step:
    kind: str  # "flip" | "perm" | "warp" | "contrast" | "noise" | "normalize"
    indices: tuple[int, ...]  # positions in the pipeline
    style: G.Style | None = None  # warp: (border, fill, interpolation, antialias)
    separable: bool = True  # warp: every matrix is axis-aligned (two ramps, no plane)
    sized: bool = False  # warp: the run has a sizing op


def plan(ops: list[Op]) -> list[_Step]:
    """One step per run of geometric ops (``geometry.split_runs``) and per photometric op.

    A run of flips only is a gather ("flip"); flips and Rot90 only, a permuting gather ("perm");
    anything else one resample ("warp").
    """
    runs = {r[0]: r for r in G.split_runs(ops)}
    steps: list[_Step] = []
    for i, op in enumerate(ops):
        if i in runs:
            run = [ops[j] for j in runs[i]]
            if all(isinstance(o, (HorizontalFlip, VerticalFlip)) for o in run):
                steps.append(_Step("flip", runs[i]))
            elif all(isinstance(o, (HorizontalFlip, VerticalFlip, Rot90)) for o in run):
                steps.append(_Step("perm", runs[i]))
            else:
                steps.append(_Step("warp", runs[i], G.run_style(run), not G.rotates(run), any(isinstance(o, SizingOp) for o in run)))
        if op.kind == "geometric":
            continue
        kind = {Contrast: "contrast", GaussianNoise: "noise", Normalize: "normalize"}.get(type(op))
        if kind is None and type(op) in tensor_color.STEPS:
            kind = "color"
        if kind is None:
            raise TypeError(f"the tensor backend has no kernel for {type(op).__name__}")
        steps.append(_Step(kind, (i,)))
    return steps


def output_size(ops: list[Op], steps: list[_Step], hw: tuple[int, int] | None) -> tuple[int, int]:
    """The output (H, W) for inputs of size ``hw`` (None: a ragged batch); raises on bad runs."""
    for step in steps:
        if step.kind in ("flip", "perm", "warp"):
            hw = G.run_output_size([ops[i] for i in step.indices], hw)
    if hw is None:  # mixed sizes and no sizing op
        return G.run_output_size([], None)  # raises
    return hw


def segments(steps: list[_Step]) -> list[tuple[int, ...]]:
    """Split the plan into runs: each geometric step starts a run, the pointwise steps after it join it."""
    runs: list[list[int]] = []
    for n, step in enumerate(steps):
        if step.kind in ("flip", "perm", "warp") or not runs:
            runs.append([])
        runs[-1].append(n)
    return [tuple(r) for r in runs]


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

    def __init__(self, ops: list[Op], fused: str = "auto") -> None:
        if fused not in FUSED_MODES:
            raise ValueError(f"fused must be one of {list(FUSED_MODES)}, got {fused!r}")
        self.ops = list(ops)
        self.steps = plan(self.ops)
        self.runs = segments(self.steps)
        self.fused = fused
        self._fused_runs: dict[int, fz.FusedRun] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._workspaces: dict[tuple, _Workspace] = {}
        self._consts: dict[tuple, tuple[Tensor, Tensor]] = {}
        self._sizes: dict[tuple[int, int] | None, tuple[int, int]] = {}

    def __getstate__(self) -> dict:
        # scratch, outputs and thread-local state stay behind (they are caches)
        return {"ops": self.ops, "fused": self.fused}

    def __setstate__(self, state: dict) -> None:
        TensorBackend.__init__(self, state["ops"], state["fused"])

    @property
    def _ws(self) -> _Workspace:
        """The calling thread's workspace for the call in progress."""
        return self._local.ws

    def _workspace(self, device: torch.device) -> _Workspace:
        """Scratch for this thread (and this CUDA stream): calls from two threads or streams never share."""
        stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else None
        key = (threading.get_ident(), device, stream)
        ws = self._workspaces.get(key)
        if ws is None:
            with self._lock:
                alive = {t.ident for t in threading.enumerate()}
                for k in [k for k in self._workspaces if k[0] not in alive]:  # threads that ended
                    del self._workspaces[k]
                ws = self._workspaces[key] = _Workspace()
        return ws

    def _fused_use(self, x: Tensor) -> bool:
        """Whether this call may use fused runs (each run still checks that it is covered)."""
        if self.fused == "never":
            return False
        if self.fused == "auto":
            return x.device.type == "cuda" and fz.available()
        if not fz.available() and not fz.recording():
            raise RuntimeError("fused='always' needs Triton (pip install 'augkit[cuda]'; on a CPU set TRITON_INTERPRET=1)")
        return True

    def __call__(self, x: Tensor | list[Tensor], params: Params) -> Tensor:
        """x: (B, C, H, W) uint8 or float in [0, 1] (checked by the caller), or a list of
        (C, Hi, Wi) images of mixed sizes when the first geometric run sets the size -> float32.
        """
        bsz = len(x)
        if isinstance(x, list):
            c, hw, device, per_in = x[0].shape[0], None, x[0].device, 0  # a ragged list is read one image at a time
        else:
            c, hw, device = x.shape[1], (x.shape[2], x.shape[3]), x.device
            per_in = c * hw[0] * hw[1]
        ws = self._local.ws = self._workspace(device)
        ho, wo = self._output_size(hw)
        out = ws.output((bsz, c, ho, wo), device)
        if out.numel() == 0:
            return out
        if isinstance(x, list) and device.type != "cpu":  # the GPU path: one padded batch, per-sample sizes in the grid
            sizes = torch.tensor([t.shape[1:] for t in x], device=device)
            self._run(_pad(x), params, out, sizes)
            return out
        fused = not isinstance(x, list) and self._fused_use(x)
        per = max(c * ho * wo, per_in)
        rows = max(1, BLOCK_BYTES // (4 * per)) if device.type == "cpu" and not fused else bsz
        if rows >= bsz:  # one block: no slicing (each view is a dispatch)
            self._run(x, params, out, None, fused)
            return out
        for i in range(0, bsz, rows):  # on CPU, blocks of samples whose passes stay in cache
            self._run(x[i : i + rows], params.select(slice(i, i + rows)), out[i : i + rows], None, fused)
        return out

    def _output_size(self, hw: tuple[int, int] | None) -> tuple[int, int]:
        got = self._sizes.get(hw)
        if got is None:
            got = output_size(self.ops, self.steps, hw)  # raises on bad runs (never cached)
            if len(self._sizes) < 64:
                self._sizes[hw] = got
        return got

    def _run(self, x: Tensor | list[Tensor], params: Params, out: Tensor, sizes: Tensor | None, fused: bool = False) -> None:
        first = x[0] if isinstance(x, list) else x
        self._local.ws = self._workspace(first.device)
        v = _Value(x, 1.0 / 255 if first.dtype == torch.uint8 else 1.0, 0.0)  # type: ignore[arg-type]
        last = len(self.steps) - 1
        for k, run in enumerate(self.runs):
            geo = self._geometry(k, v, params) if fused else None  # a Geometry only for a run it checked is covered
            if fused and (geo is not None or self._covered(run, v.w)):
                size = tuple(geo.size) if geo is not None else tuple(v.w.shape[2:])
                shape = (v.w.shape[0], v.w.shape[1], *size)
                dst = out if run[-1] == last else self._ws.get(f"fused{k % 2}", shape, torch.float32, out.device)
                part = lambda shape, d=out.device: self._ws.get("partials", shape, torch.float32, d)  # noqa: E731
                v = _Value(self._fused_run(k)(v.w, v.a, v.b, params, dst, part, geo), 1.0, 0.0, mine=True)
                continue
            for n in run:
                step = self.steps[n]
                if step.kind not in ("flip", "perm", "warp") and v.w.dtype != torch.float32:  # convert by copy: mixed-dtype math is slow on CPU
                    v = _Value(self._ws.get("in", tuple(v.w.shape), torch.float32, v.w.device).copy_(v.w), v.a, v.b, mine=True)
                v = getattr(self, "_" + step.kind)(step, v, params, out if n == last else None, sizes)
                sizes = None
        if v.w is not out:
            _affine(v.w, v.a, v.b, out)  # a scale/offset is left (or no step ran)

    def _covered(self, run: tuple[int, ...], w: Tensor, matrix: bool = False) -> bool:
        return fz.covers([self.ops[i] for n in run for i in self.steps[n].indices], w.shape[1], w.dtype, matrix)

    def _geometry(self, k: int, v: _Value, params: Params) -> fz.Geometry | None:
        """Run ``k``'s output -> input matrices and output size from the torch side, for geometric ops
        the kernel cannot compose itself (``fz.GEOMETRIC``); None when the kernel composes them, the
        run has none, or the fused kernel cannot resample it (a crop's clip box, antialiasing):
        then the run takes the torch path.
        """
        step = self.steps[self.runs[k][0]]
        if step.kind not in ("perm", "warp") or isinstance(v.w, list):
            return None
        ops = [self.ops[i] for i in step.indices]
        if step.kind == "perm":  # flips and quarter turns: integer source pixels, read exactly
            border, fill, interp = "constant", 0.0, "nearest"
        else:
            assert step.style is not None
            border, fill, interp, antialias = step.style
            if all(type(op) in fz.GEOMETRIC for op in ops) or (antialias and step.separable):
                return None
        run_ops = [self.ops[i] for n in self.runs[k] for i in self.steps[n].indices]
        if not fz.covers(run_ops, v.w.shape[1], v.w.dtype, matrix=True):
            return None
        rm = G.compose(ops, [params[i] for i in step.indices], (v.w.shape[2], v.w.shape[3]), clip=step.separable)
        if rm.clip is not None:  # taps clamped to a crop box: not in the kernel
            return None
        return fz.Geometry(rm.inverse(), rm.out_hw, border, fill, interp)

    def _fused_run(self, k: int) -> fz.FusedRun:
        got = self._fused_runs.get(k)
        if got is None:
            indices = tuple(i for n in self.runs[k] for i in self.steps[n].indices)
            got = self._fused_runs[k] = fz.FusedRun(self.ops, indices)
        return got

    def _normalize_consts(self, step: _Step, c: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Normalize's mean and std as (C,) float32 on ``device``, made once (no host copy per call)."""
        key = (step.indices[0], c, device)
        got = self._consts.get(key)
        if got is None:
            op = self.ops[step.indices[0]]
            assert isinstance(op, Normalize)
            mean = torch.tensor(op.mean, dtype=torch.float32).expand(c).contiguous().to(device)
            std = torch.tensor(op.std, dtype=torch.float32).expand(c).contiguous().to(device)
            got = self._consts[key] = (mean, std)
        return got

    def _dst(self, v: _Value, out: Tensor | None) -> _Value:
        """Where an elementwise step writes: ``out`` if last, else in place if we may."""
        if out is not None:
            return _Value(out, 1.0, 0.0, mine=True)
        if v.mine:
            return _Value(v.w, 1.0, 0.0, mine=True)
        return _Value(self._ws.get("a", tuple(v.w.shape), torch.float32, v.w.device), 1.0, 0.0, mine=True)

    def _flip(self, step: _Step, v: _Value, params: Params, out: Tensor | None, sizes: Tensor | None = None) -> _Value:
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

    def _perm(self, step: _Step, v: _Value, params: Params, out: Tensor | None, sizes: Tensor | None = None) -> _Value:
        """Flips and quarter turns of square images: one exact gather (any dtype)."""
        w = v.w
        rm = G.compose([self.ops[i] for i in step.indices], [params[i] for i in step.indices], (w.shape[2], w.shape[3]), clip=False)
        inv = rm.inverse().round_().long()  # entries in {-1, 0, 1} and integer shifts
        dst = self._ws.get("perm", tuple(w.shape), w.dtype, w.device)
        return _Value(F.permute_gather(w, inv, dst), v.a, v.b, mine=True)

    def _warp(self, step: _Step, v: _Value, params: Params, out: Tensor | None, sizes: Tensor | None = None) -> _Value:
        """One resample for a run: its ops composed (``geometry.compose``), then one grid."""
        assert step.style is not None
        border, fill, interp, antialias = step.style
        ops = [self.ops[i] for i in step.indices]
        vals = [params[i] for i in step.indices]
        w = v.w
        ragged = isinstance(w, list)
        if ragged:
            in_hw: tuple[int, int] | Tensor = torch.tensor([t.shape[1:] for t in w], device=w[0].device)
        elif sizes is not None:
            in_hw = sizes
        else:
            in_hw = (w.shape[2], w.shape[3])
        rm = G.compose(ops, vals, in_hw, clip=step.separable)  # the clip: a crop's taps stay in its box
        out_hw, clip = rm.out_hw, rm.clip
        # outside the image must read as ``fill``: shift values so fill sits at 0 in w-units
        c = (fill - v.b) / v.a if border == "constant" else 0.0
        aa = antialias and step.separable
        lin = rm.scale if rm.lin is None else rm.lin
        if ragged or (aa and _host_loops(w.device)):  # per sample, each from its own image (or the part it reads)
            inv = rm.inverse() if aa else None
            dst = self._ws.get("warp", (len(w), w[0].shape[0], *out_hw), torch.float32, w[0].device)
            for b in range(len(w)):
                row = slice(b, b + 1)
                if inv is not None:
                    dst[row] = _warp_one(w[b][None], inv[row], out_hw, border, interp, step.separable, aa, _rows(clip, row), c)
                else:  # the uniform batch's grid formula, on this image alone (its own centre)
                    img = w[b][None].float()
                    dst[row] = W.warp_centred(img - c if c else img, _rows(lin, row), _rows(rm.shift, row), out_hw,
                                              border=border, interpolation=interp, clip=_rows(clip, row))
            return _Value(dst, v.a, v.b + v.a * c, mine=True)
        src = w
        if c != 0.0:
            src = w if v.mine and w.dtype == torch.float32 else self._ws.get("a", tuple(w.shape), torch.float32, w.device)
            torch.sub(w, c, out=src)
            if sizes is not None:  # a padded ragged batch: its padding must read as the fill (0) too
                rows = torch.arange(w.shape[2], device=w.device)[None, :, None] < sizes[:, 0, None, None]
                cols = torch.arange(w.shape[3], device=w.device)[None, None, :] < sizes[:, 1, None, None]
                src.mul_((rows & cols)[:, None])
        elif w.dtype != torch.float32:
            src = self._ws.get("in", tuple(w.shape), torch.float32, w.device).copy_(w)
        bsz = len(w)
        after = v.b + v.a * c
        if aa:  # batched antialiased resample (the GPU path; ragged batches come padded with ``sizes``)
            return _Value(W.area_resample(src, rm.inverse(), out_hw, border=border, hw=sizes, clip=clip), v.a, after, mine=True)
        grid = self._ws.get("grid", (bsz, 2, *out_hw), torch.float32, w.device)  # x and y planes
        if sizes is not None:  # a padded ragged batch: each sample's own borders, in pixels
            warped = W.warp(src, rm.inverse(), out_hw, border=border, interpolation=interp, separable=step.separable, hw=sizes, grid=grid, clip=clip)
            return _Value(warped, v.a, after, mine=True)
        kw: dict[str, Any] = {"border": border, "interpolation": interp}
        if step.sized or out_hw != tuple(w.shape[2:]):
            return _Value(W.warp_centred(src, lin, rm.shift, out_hw, clip=clip, grid=grid, **kw), v.a, after, mine=True)
        moved = rm.moved  # which samples any op of the run changed
        if _host_selects(w.device):  # selection is free on the host: warp only moved samples
            if bool(moved.all()):
                warped = W.warp_centred(src, lin, rm.shift, out_hw, grid=grid, **kw)
            else:
                idx = moved.nonzero().squeeze(1)
                warped = src.clone()
                if len(idx):
                    part = W.warp_centred(src[idx], _rows(lin, idx), _rows(rm.shift, idx), out_hw, grid=grid[: len(idx)], **kw)
                    warped.index_copy_(0, idx, part)
        else:  # no host sync: warp all, keep unmoved samples bit-exact
            warped = torch.where(moved[:, None, None, None], W.warp_centred(src, lin, rm.shift, out_hw, grid=grid, **kw), src)
        return _Value(warped, v.a, after, mine=True)

    def _contrast(self, step: _Step, v: _Value, params: Params, out: Tensor | None, sizes: Tensor | None = None) -> _Value:
        p = params[step.indices[0]]
        b = v.w.shape[0]
        m = F.grey_mean(v.w, v.a)  # (B,) mean grey in [0, 1] less b, before dst may overwrite w
        if v.b:
            m.add_(v.b)
        f = F.masked(p["factor"], p["apply"], 1.0)
        shift = torch.addcmul(m, m, f, value=-1.0)  # true = f * (a w + b) + m (1 - f)
        if v.b:
            shift.add_(f * v.b)
        scale = f * v.a if v.a != 1.0 else f
        d = self._dst(v, out)
        _affine(v.w, scale.view(b, 1, 1, 1), shift.view(b, 1, 1, 1), d.w).clamp_(0.0, 1.0)
        return d

    def _noise(self, step: _Step, v: _Value, params: Params, out: Tensor | None, sizes: Tensor | None = None) -> _Value:
        p = params[step.indices[0]]
        bsz, n = v.w.shape[0], v.w.shape[1] * v.w.shape[2] * v.w.shape[3]
        half = (n + 1) // 2
        rows = min(bsz, F.noise_block_rows(n, v.w.device))
        work = (
            self._ws.get("nz_h", (rows, half), torch.int32, v.w.device),
            self._ws.get("nz_t", (rows, half), torch.int32, v.w.device),
            self._ws.get("nz_r", (rows, half), torch.float32, v.w.device),
        )
        std = F.masked(p["std"], p["apply"], 0.0)
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

    def _color(self, step: _Step, v: _Value, params: Params, out: Tensor | None, sizes: Tensor | None = None) -> _Value:
        """An op of ``tensor_color.STEPS``: true values into the destination, then its kernel in place."""
        d = self._dst(v, out)
        if d.w is not v.w or v.a != 1.0 or v.b != 0.0:
            _affine(v.w, v.a, v.b, d.w)
        i = step.indices[0]
        tensor_color.run(self.ops[i], params[i], d.w)
        return d

    def _normalize(self, step: _Step, v: _Value, params: Params, out: Tensor | None, sizes: Tensor | None = None) -> _Value:
        mean, std = self._normalize_consts(step, v.w.shape[1], v.w.device)
        d = self._dst(v, out)
        _affine(v.w, (v.a / std)[None, :, None, None], ((v.b - mean) / std)[None, :, None, None], d.w)
        return d


BLOCK_BYTES = 1 << 23  # float32 bytes of the samples one CPU block holds (8 MiB: 13 samples at 3x224x224)


def _pad(images: list[Tensor]) -> Tensor:
    """A ragged list (C, Hi, Wi) -> one (B, C, maxH, maxW) batch padded with 0, in one call."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nested tensors are a "prototype" API
        return torch.nested.nested_tensor(images).to_padded_tensor(0)


def _warp_one(
    img: Tensor, inv: Tensor, out_hw: tuple[int, int], border: str, interp: str, separable: bool, aa: bool, clip: Tensor | None,
    shift: float = 0.0,
) -> Tensor:
    """One sample (1, C, H, W) (any dtype; ``img - shift`` is resampled, in float32) on the CPU.

    Antialiased runs read only the part they need; a plain crop-resize (and flips) of a box
    inside the image is ``F.interpolate`` on the crop: the same filter as ``area_resample``
    (equal within float rounding), much cheaper per sample.
    """
    def part(t: Tensor) -> Tensor:
        t = t.float()
        return t.sub_(shift) if shift else t

    if not aa:
        return W.warp(part(img), inv, out_hw, border=border, interpolation=interp, separable=separable, clip=clip)
    h, w = img.shape[2:]
    if clip is not None:
        fast = _crop_resize(img, inv, out_hw, clip, part, shift != 0.0)
        if fast is not None:
            return fast
    # the input rectangle the output reads, plus the widest triangle
    ends = torch.tensor([[-0.5, out_hw[1] - 0.5], [-0.5, out_hw[0] - 0.5]])
    corners = inv[0, [0, 1], [0, 1]][:, None] * ends + inv[0, :, 2:3]  # rows: x ends, y ends
    margin = (inv[0, [0, 1], [0, 1]].abs().clamp(min=1.0) + 2).tolist()
    (x0, x1), (y0, y1) = corners.tolist()
    c0 = max(0, int(min(x0, x1) - margin[0]))
    c1 = min(w, int(max(x0, x1) + margin[0]) + 2)
    r0 = max(0, int(min(y0, y1) - margin[1]))
    r1 = min(h, int(max(y0, y1) + margin[1]) + 2)
    if c1 <= c0 or r1 <= r0 or border == "constant":  # reads nothing of the image, or must see where it ends
        c0, c1, r0, r1 = 0, w, 0, h
    sub = inv.clone()
    sub[0, 0, 2] -= c0
    sub[0, 1, 2] -= r0
    part_clip = None if clip is None else clip - torch.tensor([c0, r0, c0, r0], dtype=clip.dtype)
    hw = torch.tensor([[h - r0, w - c0]])  # the image's far edges, in the part's coordinates
    return W.area_resample(part(img[:, :, r0:r1, c0:c1]), sub, out_hw, border=border, hw=hw, clip=part_clip)


def _crop_resize(
    img: Tensor, inv: Tensor, out_hw: tuple[int, int], clip: Tensor, part: Callable[[Tensor], Tensor], shifts: bool
) -> Tensor | None:
    """``F.interpolate(antialias=True)`` of the integer box ``clip`` (1, 4) when ``inv`` is exactly
    that box resized to ``out_hw`` (flipped or not) and the box lies inside the image; else None.

    A uint8 crop is resized as uint8 (torch's fixed-point SIMD kernel, fastest on channels-last
    memory as photos from HWC arrays come: about 6x float32 on the CPU; levels rounded, within
    one level of the float filter, benchmarks/crop_resize.py).
    """
    x0, y0, x1, y1 = clip[0].tolist()
    h, w = img.shape[2:]
    if not all(float(v).is_integer() for v in (x0, y0, x1, y1)) or x0 < 0 or y0 < 0 or x1 >= w or y1 >= h:
        return None
    flips = []
    for k, (lo, hi, n) in enumerate(((x0, x1, out_hw[1]), (y0, y1, out_hw[0]))):
        scale = (hi - lo + 1) / n
        a, b = float(inv[0, k, k]), float(inv[0, k, 2])
        if abs(a - scale) < 1e-6 * max(1.0, scale) and abs(b - (lo - 0.5 + 0.5 * scale)) < 1e-4:
            flips.append(False)
        elif abs(a + scale) < 1e-6 * max(1.0, scale) and abs(b - (lo - 0.5 + (n - 0.5) * scale)) < 1e-4:
            flips.append(True)
        else:
            return None
    crop = img[:, :, int(y0) : int(y1) + 1, int(x0) : int(x1) + 1]
    if crop.dtype == torch.uint8 and crop.shape[1] <= 4:  # the SIMD kernel's channel counts
        out = torch.nn.functional.interpolate(crop, out_hw, mode="bilinear", align_corners=False, antialias=True)
        out = part(out) if shifts else out  # uint8 goes out as is unless ``part`` shifts: the destination converts it
    else:
        out = torch.nn.functional.interpolate(part(crop), out_hw, mode="bilinear", align_corners=False, antialias=True)
    dims = [d for d, f in zip((3, 2), flips) if f]
    return out.flip(dims) if dims else out


def _rows(t: Tensor | None, idx: Tensor | slice) -> Tensor | None:
    return None if t is None else t[idx]


def _host_loops(device: torch.device) -> bool:
    """Whether a loop over samples is cheap (the CPU: no launches; each sample reads only its part)."""
    return device.type == "cpu"


def _host_selects(device: torch.device) -> bool:
    """Whether picking samples by a mask is free (no device sync): on the CPU."""
    return device.type == "cpu"


def _affine(w: Tensor, scale: Tensor | float, shift: Tensor | float, out: Tensor) -> Tensor:
    """out = w * scale + shift: one ``addcmul`` on accelerators; on the CPU a multiply, then an
    add in place (its broadcast ``addcmul`` is 1.2 to 2 times slower than the two passes)."""
    if w.dtype != out.dtype:
        w = out.copy_(w)  # convert by copy: mixed-dtype arithmetic is slow on CPU
    if isinstance(scale, Tensor) and isinstance(shift, Tensor) and out.device.type != "cpu":
        return torch.addcmul(shift, w, scale, out=out)
    torch.mul(w, scale, out=out)
    if isinstance(shift, Tensor) or shift:
        out.add_(shift)
    return out
