"""Matrices of geometric ops: pure torch, no state. The one place geometry is defined.

Conventions (as Kornia's ``warp_affine``): pixel centres at integer coordinates, x to the
right, y down. A matrix M (B, 3, 3) float32 maps INPUT pixel coordinates to OUTPUT pixel
coordinates: output pixel (x, y) reads the input at ``M^-1 (x, y, 1)``.

A run is composed in *centred* coordinates, u = (x, y) - (size - 1) / 2 of the image at that
point of the run, where every op is u_out = L u_in + t with a plain L: flips and Zoom scale
(t = 0), Translate shifts, a crop or resize shifts its box centre to 0 then scales, Rotate,
Affine and Rot90 turn (Rot90 with t = 0). While a run is axis-aligned, L is two per-axis factors,
(B, 2) vectors composed by a few elementwise ops per op; the 2x2 is built only once a run
rotates, shears or quarter-turns, and inverted in closed form (no ``linalg``). The pixel-space
matrices are made only when asked for (``RunMap.matrix``, ``RunMap.inverse``).

API:
    compose(ops, params, hw) -> RunMap         a run composed: the centred map, output size, crop box
    run_matrix(ops, params, hw) -> (M, out_hw)
        ops: a run of consecutive geometric ops; params: their values (one dict per op, as in
        ``Params``); hw: the input size, (H, W) ints for a uniform batch or a (B, 2) int64
        tensor per sample (a ragged batch). M: (B, 3, 3) float32, input -> output pixels.
        out_hw: (H, W) ints, the output size (the last sizing op's ``size``, else the input's).
    run_output_size(ops, hw) -> (H, W)         the output size alone, static; raises on bad runs
    run_clip(ops, params, hw) -> (B, 4) | None  the crop box (input pixels) taps are clamped to
    inverse_2x3(M) -> (B, 2, 3) float32        output -> input, for warps (closed form)
    op_matrix(op, values, hw) -> (M, hw_out)   one op; hw, hw_out (B, 2) float32 per sample
    rotates(ops) -> bool                       whether a matrix of the run can rotate or shear
    run_style(ops) -> (border, fill, interpolation, antialias)   how the run resamples
    split_runs(ops) -> list of index tuples     consecutive geometric ops that share one style

Precision: float32 on the params' device (on an accelerator each op is a launch; float64 would
add conversions and is slow on most GPUs). Centred coordinates keep the numbers small (offsets
from the centre, not from the corner), so a composed map is exact to float32 rounding of
coordinates of the image's size: entries in {-1, 0, 1} and half-integer centres of flips and
quarter turns are exact, so ``perm`` gathers stay exact. Crop boxes are whole pixels (exact in
float32 below 2^24); the one float64 computation left is ``RandomResizedCrop.sample_sized``,
whose ``round(sqrt(...))`` must land on the integer torchvision's Python floats give.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .ops import (
    Affine,
    CenterCrop,
    HorizontalFlip,
    Op,
    RandomCrop,
    RandomResizedCrop,
    Resize,
    Rot90,
    Rotate,
    SizingOp,
    Translate,
    VerticalFlip,
    Zoom,
)
from .warp import inverse_centred

__all__ = [
    "compose",
    "RunMap",
    "run_matrix",
    "run_output_size",
    "inverse_2x3",
    "run_clip",
    "op_matrix",
    "rotates",
    "run_style",
    "split_runs",
    "Style",
]

Style = tuple[str, float, str, bool]  # (border, fill, interpolation, antialias)
Size = tuple[float, float] | Tensor  # (W, H) in x, y order: Python numbers for every sample, or (B, 2) float32


@functools.lru_cache(maxsize=256)
def _const(values: tuple[float, ...], device: torch.device) -> Tensor:
    """A cached float32 vector on ``device`` (no host-to-device copy per call)."""
    return torch.tensor(values, dtype=torch.float32, device=device)


@functools.lru_cache(maxsize=8)
def _quarter_turns(device: torch.device) -> Tensor:
    """(4, 2, 2) float32: k counter-clockwise quarter turns in centred coordinates (y down)."""
    return torch.tensor([[[1, 0], [0, 1]], [[0, 1], [-1, 0]], [[-1, 0], [0, -1]], [[0, -1], [1, 0]]], dtype=torch.float32, device=device)


def _vec(v: Size, device: torch.device) -> Tensor:
    """A size or centre as something that broadcasts against (B, 2): a cached (2,) or the (B, 2) itself."""
    return v if isinstance(v, Tensor) else _const((float(v[0]), float(v[1])), device)


def _points(v: Size, device: torch.device) -> Tensor:
    """``_vec`` broadcasting against points (B, k, 2)."""
    return v[:, None, :] if isinstance(v, Tensor) else _vec(v, device)


def _centre(wh: Size) -> Size:
    if isinstance(wh, Tensor):
        return (wh - 1) * 0.5
    return ((wh[0] - 1) / 2, (wh[1] - 1) / 2)


class _Acc:
    """The composition so far, in centred coordinates: u = L u0 + t.

    L is ``s`` (B, 2) or (B, 1) per-axis factors while the run is axis-aligned, else ``lin``
    (B, 2, 2); None stands for the identity (and t for 0) and costs no op.
    """

    def __init__(self) -> None:
        self.s: Tensor | None = None
        self.lin: Tensor | None = None
        self.t: Tensor | None = None

    def scale(self, m: Tensor) -> None:
        """Then u -> m u, m (B, 2) or (B, 1)."""
        if self.lin is not None:
            self.lin = self.lin * m[:, :, None]  # diag(m) @ L: rows scaled
        else:
            self.s = m if self.s is None else self.s * m
        if self.t is not None:
            self.t = self.t * m

    def move(self, d: Tensor) -> None:
        """Then u -> u + d, d (B, 2)."""
        self.t = d if self.t is None else self.t + d

    def turn(self, r: Tensor) -> None:
        """Then u -> r u, r (B, 2, 2)."""
        if self.lin is not None:
            self.lin = torch.bmm(r, self.lin)
        elif self.s is not None:
            self.lin = r * self.s[:, None, :]  # r @ diag(s): columns scaled
        else:
            self.lin = r
        self.s = None
        if self.t is not None:
            self.t = torch.bmm(r, self.t[:, :, None])[:, :, 0]

    def back(self, u: Tensor) -> Tensor:
        """Points u (B, ..., 2) of the current image back to u0 (axis-aligned only)."""
        assert self.lin is None
        if self.t is not None:
            u = u - self.t[:, None, :]
        return u if self.s is None else u / self.s[:, None, :]


@dataclass(frozen=True)
class RunMap:
    """A run composed (``compose``): u_out = L u_in + t in centred coordinates (x, y order).

    ``scale`` (B, 2): L = diag(scale) (an axis-aligned run); else ``lin`` (B, 2, 2); both None: the
    identity. ``shift`` (B, 2) t, None for 0. ``wh_in`` the input (W, H); ``out_hw`` the output
    (H, W); ``clip`` (B, 4) float32 (x0, y0, x1, y1) or None: the crop box in input pixels (see
    ``run_clip``). Everything float32 on the params' device.
    """

    scale: Tensor | None
    lin: Tensor | None
    shift: Tensor | None
    wh_in: Size
    out_hw: tuple[int, int]
    clip: Tensor | None
    batch: int
    device: torch.device
    applies: Tensor  # (B, n) bool: each op's apply mask

    @property
    def moved(self) -> Tensor:
        """(B,) bool: whether any op of the run applies to the sample (else it is left as it was)."""
        return self.applies[:, 0] if self.applies.shape[1] == 1 else self.applies.any(1)

    @property
    def separable(self) -> bool:
        """Whether L is diagonal (two per-axis maps: a separable grid)."""
        return self.lin is None

    def centred_inverse(self) -> tuple[Tensor | None, Tensor | None]:
        """(a, q) with u_in = a * u_out + q (a (B, 2), a separable map) or a @ u_out + q (a (B, 2, 2));
        a None: 1, q None: 0. Closed form: 1 / s per axis, or the 2x2 adjugate over the determinant."""
        t = self.shift
        if self.lin is not None:
            return inverse_centred(self.lin, t)
        a = None if self.scale is None else self.scale.reciprocal()
        if t is None:
            return a, None
        return a, (-t if a is None else torch.mul(t, a).neg_())

    def _pixel(self, lin: Tensor | None, off_lin: Tensor | None, shift: Tensor | None, c_from: Size, c_to: Size) -> Tensor:
        """(B, 2, 3) of x_to = lin (x_from - c_from) + shift + c_to (lin (B, 2) diagonal or (B, 2, 2))."""
        b, dev = self.batch, self.device
        cf, ct = _vec(c_from, dev), _vec(c_to, dev)
        if lin is None:
            lin2 = torch.eye(2, dtype=torch.float32, device=dev).expand(b, 2, 2)
            off = (ct - cf).expand(b, 2)
        else:
            lin2 = torch.diag_embed(lin) if off_lin is None else lin
            off = ct - (lin * cf if off_lin is None else torch.matmul(lin, cf.expand(b, 2)[:, :, None])[:, :, 0])
        if shift is not None:
            off = off + shift
        return torch.cat([lin2, off[:, :, None]], 2)

    def matrix(self) -> Tensor:
        """(B, 3, 3) float32, input -> output pixel coordinates."""
        c_out = _centre((self.out_hw[1], self.out_hw[0]))
        lin = self.scale if self.lin is None else self.lin
        top = self._pixel(lin, self.lin, self.shift, _centre(self.wh_in), c_out)
        row = _const((0.0, 0.0, 1.0), self.device).expand(self.batch, 1, 3)
        return torch.cat([top, row], 1)

    def inverse(self) -> Tensor:
        """(B, 2, 3) float32, output -> input pixel coordinates (what a warp samples with)."""
        a, q = self.centred_inverse()
        c_out = _centre((self.out_hw[1], self.out_hw[0]))
        return self._pixel(a, None if a is None or a.dim() == 2 else a, q, c_out, _centre(self.wh_in))


def _flip_group(acc: _Acc, ops: Sequence[Op], bits: Tensor, dev: torch.device) -> None:
    """Push consecutive flips with their applies ``bits`` (B, k): one (B, 2) sign vector, one op
    for a horizontal-then-vertical pair (the applies are adjacent columns of one stack)."""
    hs = [k for k, op in enumerate(ops) if isinstance(op, HorizontalFlip)]
    vs = [k for k, op in enumerate(ops) if isinstance(op, VerticalFlip)]

    def parity(cols: list[int]) -> Tensor:  # an odd number of flips of one axis flips it
        return bits[:, cols[0]] if len(cols) == 1 else bits[:, cols].sum(1).remainder_(2).bool()

    one = _const((1.0,), dev)
    if hs and vs:
        pair = bits[:, hs[0] : hs[0] + 2] if hs == [vs[0] - 1] and len(vs) == 1 else torch.stack([parity(hs), parity(vs)], 1)
        acc.scale(torch.where(pair, _const((-1.0,), dev), one))
    else:
        sign = _const((-1.0, 1.0) if hs else (1.0, -1.0), dev)
        acc.scale(torch.where(parity(hs or vs)[:, None], sign, one))


def _apply_op(acc: _Acc, op: Op, v: dict[str, Tensor], apply: Tensor, cur: Size, b: int, dev: torch.device) -> Size:
    """Push one op (``apply`` (B,) its mask) onto ``acc``; returns the size (W, H) after it."""
    one, zero = _const((1.0,), dev), _const((0.0,), dev)
    if isinstance(op, (HorizontalFlip, VerticalFlip)):
        _flip_group(acc, [op], apply[:, None], dev)
        return cur
    if isinstance(op, Zoom):
        acc.scale(torch.where(apply, v["scale"], one)[:, None])
        return cur
    if isinstance(op, Translate) or (isinstance(op, Affine) and not op.rotates):
        if isinstance(op, Affine):
            acc.scale(torch.where(apply, v["scale"], one)[:, None])
        acc.move(torch.where(apply[:, None], v["translate"] * _vec(cur, dev), zero))
        return cur
    if isinstance(op, Rotate):
        if op.rotates:
            rad = torch.where(apply, v["angle"], zero).mul_(math.pi / 180)
            cos, sin = torch.cos(rad), torch.sin(rad)
            acc.turn(torch.stack([cos, sin, -sin, cos], 1).view(b, 2, 2))
        return cur
    if isinstance(op, Affine):  # T(t) R(angle) Sh(shear) S(scale) about the centre, shear x' = x - tan(shear) y
        deg = torch.where(apply[:, None], torch.stack([v["angle"], v["shear"]], 1), zero).mul_(math.pi / 180)
        cos, sin, sh = torch.cos(deg[:, 0]), torch.sin(deg[:, 0]), torch.tan(deg[:, 1])
        r = torch.stack([cos, torch.addcmul(sin, cos, sh, value=-1), -sin, torch.addcmul(cos, sin, sh)], 1)
        acc.turn(r.mul_(torch.where(apply, v["scale"], one)[:, None]).view(b, 2, 2))
        acc.move(torch.where(apply[:, None], v["translate"] * _vec(cur, dev), zero))
        return cur
    if isinstance(op, Rot90):
        k = (v["k"] * apply).remainder_(4)  # 0 turns where not applied
        acc.turn(_quarter_turns(dev)[k])
        if not isinstance(cur, Tensor) and cur[0] == cur[1]:
            return cur
        wh = _vec(cur, dev).expand(b, 2)
        return torch.where((k % 2 == 1)[:, None], wh.flip(1), wh)
    if isinstance(op, SizingOp):
        size = (float(op.size[1]), float(op.size[0]))  # (W, H)
        if isinstance(op, Resize):
            acc.scale(_const(size, dev) / _vec(cur, dev) if isinstance(cur, Tensor) else _const((size[0] / cur[0], size[1] / cur[1]), dev).expand(b, 2))
            return size
        box = _box(op, v, cur, b, dev).view(b, 2, 2).flip(-1)  # [[left, top], [w, h]]
        lt, bwh = box[:, 0], box[:, 1]
        acc.move(torch.sub(_vec(_half(cur), dev), torch.add(lt, bwh, alpha=0.5)))  # the box centre to 0
        acc.scale(_const(size, dev) / bwh)
        return size
    raise TypeError(f"{type(op).__name__} is not a geometric op")


def _half(wh: Size) -> Size:
    return wh * 0.5 if isinstance(wh, Tensor) else (wh[0] / 2, wh[1] / 2)


def _box(op: SizingOp, v: dict[str, Tensor], cur: Size, b: int, dev: torch.device) -> Tensor:
    """A crop's (B, 4) float32 box (top, left, height, width); drawn from the size if not given yet."""
    box = v.get("box")
    if box is None:
        hw = _vec(cur, dev).expand(b, 2).flip(1).round().long()  # (B, 2) (H, W)
        box = op.sample_sized(v, hw)["box"]
    return box.float()


def _clip(acc: _Acc, op: SizingOp, v: dict[str, Tensor], cur: Size, wh_in: Size, b: int, dev: torch.device) -> Tensor:
    """The box of sizing op ``op`` (in the current image) mapped back to input pixels: (B, 4) (x0, y0, x1, y1)."""
    if isinstance(op, Resize):
        lo, hi = _const((0.0, 0.0), dev).expand(b, 2), (_vec(cur, dev) - 1).expand(b, 2)
    else:
        box = _box(op, v, cur, b, dev).view(b, 2, 2).flip(-1)  # [[left, top], [w, h]]
        lo = box[:, 0]
        hi = torch.add(lo, box[:, 1]).sub_(1)
    if acc.s is None and acc.t is None:  # nothing before the box: its pixels are the input's
        return torch.cat([lo, hi], 1)
    corners = torch.stack([lo, hi], 1) - _points(_centre(cur), dev)  # (B, 2, 2) centred
    xy = acc.back(corners) + _points(_centre(wh_in), dev)
    return torch.cat([xy.amin(1), xy.amax(1)], 1)


def _size_tensor(hw: tuple[int, int] | Tensor, b: int, device: torch.device) -> Size:
    """(H, W) ints -> (W, H) floats; a (B, 2) (H, W) tensor -> (B, 2) float32 (W, H)."""
    if isinstance(hw, Tensor):
        if hw.shape != (b, 2):
            raise ValueError(f"hw must be (H, W) or a ({b}, 2) tensor, got shape {tuple(hw.shape)}")
        return hw.to(device=device, dtype=torch.float32).flip(1)
    return (float(hw[1]), float(hw[0]))


def compose(ops: Sequence[Op], params: Sequence[dict[str, Tensor]], hw: tuple[int, int] | Tensor, *, clip: bool = True) -> RunMap:
    """Compose a run of geometric ops (see the module docstring) into a ``RunMap``.

    ``hw``: (H, W) ints for a uniform batch or a (B, 2) int tensor per sample. ``clip``: also map
    the last sizing op's box back to input pixels (axis-aligned runs only; see ``run_clip``).
    """
    if len(ops) != len(params) or not ops:
        raise ValueError(f"a run needs one params dict per op, got {len(ops)} ops and {len(params)} dicts")
    apply = params[0]["apply"]
    b, dev = apply.shape[0], apply.device
    wh_in: Size
    last: int | None
    if not isinstance(hw, Tensor) and centre_fixing(ops):  # flips and Zooms on one size: nothing to size or clip
        out_hw, wh_in, last = (int(hw[0]), int(hw[1])), (float(hw[1]), float(hw[0])), None
    else:
        out_hw = run_output_size(ops, None if isinstance(hw, Tensor) else (int(hw[0]), int(hw[1])))
        wh_in = _size_tensor(hw, b, dev)
        last = max((i for i, op in enumerate(ops) if isinstance(op, SizingOp)), default=None)
        if not clip or rotates(ops):
            last = None
    cur = wh_in
    applies = apply[:, None] if len(ops) == 1 else torch.stack([p["apply"] for p in params], 1)  # (B, n)
    acc, box, i = _Acc(), None, 0
    flips = (HorizontalFlip, VerticalFlip)
    while i < len(ops):
        op, values = ops[i], params[i]
        if isinstance(op, flips):  # consecutive flips: one sign vector
            j = i
            while j < len(ops) and isinstance(ops[j], flips):
                j += 1
            _flip_group(acc, ops[i:j], applies[:, i:j], dev)
            i = j
            continue
        if i == last:
            assert isinstance(op, SizingOp)
            box = _clip(acc, op, values, cur, wh_in, b, dev)
        cur = _apply_op(acc, op, values, applies[:, i], cur, b, dev)
        i += 1
    scale = acc.s if acc.s is None or acc.s.shape[1] == 2 else acc.s.expand(b, 2)
    return RunMap(scale, acc.lin, acc.t, wh_in, out_hw, box, b, dev, applies)


_CENTRE_FIXING = (HorizontalFlip, VerticalFlip, Zoom)


def centre_fixing(ops: Sequence[Op]) -> bool:
    """Whether every op of the run fixes the image centre (flips and Zooms): the run's map is
    then one factor per axis about the centre (``centre_factors``), the output the input's size."""
    return all(type(op) in _CENTRE_FIXING for op in ops)


def centre_factors(ops: Sequence[Op], values: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """One sample's (sx, sy) for a ``centre_fixing`` run from its params as Python values (the
    per-image path): the factors ``compose`` multiplies, in float64."""
    sx = sy = 1.0
    for op, v in zip(ops, values):
        if v["apply"]:
            if type(op) is Zoom:
                sx, sy = sx * v["scale"], sy * v["scale"]
            elif type(op) is HorizontalFlip:
                sx = -sx
            else:
                sy = -sy
    return sx, sy


def run_output_size(ops: Sequence[Op], hw: tuple[int, int] | None) -> tuple[int, int]:
    """The output size of a run on inputs of size ``hw`` (None: a ragged batch of mixed sizes).

    Raises ValueError when the size would differ per sample: a ragged batch whose run has no
    sizing op, or Rot90 on a non-square image with no sizing op after it.
    """
    cur = hw
    for op in ops:
        if isinstance(op, SizingOp):
            cur = op.size
        elif isinstance(op, Rot90) and cur is not None and cur[0] != cur[1]:
            cur = None
            rot = f"Rot90 on a non-square {hw[0]}x{hw[1]} image" if hw is not None else "Rot90"
            if not any(isinstance(o, SizingOp) for o in ops[list(ops).index(op) :]):
                raise ValueError(f"{rot} turns samples to different sizes; add a sizing op after it (e.g. ak.Resize or ak.CenterCrop)")
    if cur is None:
        raise ValueError("images of mixed sizes need a sizing op (ak.RandomResizedCrop, ak.Resize, ak.CenterCrop or ak.RandomCrop) in the pipeline's first geometric run")
    return (int(cur[0]), int(cur[1]))


def run_matrix(ops: Sequence[Op], params: Sequence[dict[str, Tensor]], hw: tuple[int, int] | Tensor) -> tuple[Tensor, tuple[int, int]]:
    """Compose a run of geometric ops into one matrix per sample (see the module docstring).

    Returns M (B, 3, 3) float32, input -> output pixel coordinates, and out_hw (H, W).
    """
    rm = compose(ops, params, hw, clip=False)
    return rm.matrix(), rm.out_hw


def run_clip(ops: Sequence[Op], params: Sequence[dict[str, Tensor]], hw: tuple[int, int] | Tensor) -> Tensor | None:
    """The crop box of an axis-aligned run in INPUT pixels: (B, 4) float32 (x0, y0, x1, y1), the
    first and last pixel centres its taps may read, or None (no sizing op, or the run rotates).

    The box is the last sizing op's (the whole image at that point for ``Resize``), mapped back
    through the ops before it. Warps clamp their taps to it, so a crop then resize reads only
    the crop, as ``F.interpolate`` on the cropped tensor does.
    """
    return compose(ops, params, hw).clip


def op_matrix(op: Op, values: dict[str, Tensor], hw: Tensor) -> tuple[Tensor, Tensor]:
    """One op's (B, 3, 3) float32 matrix and the per-sample output size (B, 2) float32 (H, W).

    ``hw`` (B, 2) is each sample's (H, W) at the op's position.
    """
    b, dev = len(hw), values["apply"].device
    acc, wh = _Acc(), _size_tensor(hw, b, dev)
    cur = _apply_op(acc, op, values, values["apply"], wh, b, dev)
    cur = _vec(cur, dev).expand(b, 2)
    m = RunMap(acc.s.expand(b, 2) if acc.s is not None else None, acc.lin, acc.t, wh, (0, 0), None, b, dev, values["apply"][:, None])
    # out_hw is per sample here: centre the output on ``cur`` directly
    top = m._pixel(m.scale if m.lin is None else m.lin, m.lin, m.shift, _centre(wh), _centre(cur))
    return torch.cat([top, _const((0.0, 0.0, 1.0), dev).expand(b, 1, 3)], 1), cur.flip(1)


def inverse_2x3(m: Tensor) -> Tensor:
    """(B, 3, 3) affine input -> output to the (B, 2, 3) output -> input map a warp samples with.

    Closed form: [A | b]^-1 = [A^-1 | -A^-1 b] (``warp.inverse_centred``), no ``linalg``.
    """
    m = m.float()
    a, q = inverse_centred(m[:, :2, :2], m[:, :2, 2])
    assert q is not None
    return torch.cat([a, q[:, :, None]], 2)


def rotates(ops: Sequence[Op]) -> bool:
    """Whether some matrix of the run may rotate, shear or swap axes (no separable grid)."""
    return any(isinstance(op, Rot90) or getattr(op, "rotates", False) for op in ops)


def _style(op: Op) -> tuple[tuple[str, float] | None, str | None, bool]:
    """(border, fill) or None, interpolation or None, antialias of one op (None: no say)."""
    if isinstance(op, Zoom):
        return ("constant", op.fill), None, False
    if isinstance(op, (Affine, Rotate, Translate)):
        return (op.border, op.fill), op.interpolation, False
    if isinstance(op, RandomCrop):
        return (op.border, op.fill), None, False
    if isinstance(op, CenterCrop):
        return ("constant", 0.0), None, False
    if isinstance(op, (RandomResizedCrop, Resize)):
        return None, "bilinear", op.antialias
    return None, None, False


def split_runs(ops: Sequence[Op]) -> list[tuple[int, ...]]:
    """Indices of consecutive geometric ops grouped into runs that resample alike.

    A run ends at a non-geometric op, or where an op's border/fill or interpolation disagrees
    with an earlier op of the run.
    """
    runs: list[tuple[int, ...]] = []
    run: list[int] = []
    border: tuple[str, float] | None = None
    interp: str | None = None
    for i, op in enumerate(ops):
        if op.kind != "geometric":
            if run:
                runs.append(tuple(run))
            run, border, interp = [], None, None
            continue
        b, it, _ = _style(op)
        if run and ((b is not None and border is not None and b != border) or (it is not None and interp is not None and it != interp)):
            runs.append(tuple(run))
            run, border, interp = [], None, None
        run.append(i)
        border = border if b is None else b
        interp = interp if it is None else it
    if run:
        runs.append(tuple(run))
    return runs


def run_style(ops: Sequence[Op]) -> Style:
    """(border, fill, interpolation, antialias) of a run from ``split_runs``.

    Defaults: bilinear; "replicate" when no op of the run names a border (crops and resizes read
    like ``F.interpolate``, whose taps clamp to the image).
    """
    border, fill, interp, aa = "replicate", 0.0, "bilinear", False
    for op in ops:
        b, it, a = _style(op)
        if b is not None:
            border, fill = b
        if it is not None:
            interp = it
        aa = aa or a
    return border, fill, interp, aa


def shrink(inv: Tensor) -> tuple[Tensor, Tensor]:
    """Input pixels per output pixel along input x and y, (B,) each, from ``inverse_2x3``."""
    return torch.hypot(inv[:, 0, 0], inv[:, 0, 1]), torch.hypot(inv[:, 1, 0], inv[:, 1, 1])


def prefilter_sigma(s: Tensor) -> Tensor:
    """Gaussian sigma (input pixels) that, before a bilinear resample shrinking by ``s``, gives
    the variance of ``F.interpolate(antialias=True)``'s triangle of half-width s: s^2/6 = sigma^2 + 1/6.
    """
    return torch.sqrt(torch.clamp(s.square() - 1, min=0) / 6)


