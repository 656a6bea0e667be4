"""Targets through the geometric matrices: masks, boxes and keypoints, one function per kind.

Every run of geometric ops is one (B, 3, 3) matrix per sample mapping input pixel coordinates
to output pixel coordinates (pixel centres at integers, x right, y down) plus an output size;
photometric ops leave targets alone (an op's ``kind`` says which it is). So a target needs one
kernel per kind, never one per op:

- ``warp_masks``: nearest-neighbour (class ids are never blended), any integer/bool dtype,
  outside the input reads ``fill`` (or the run's replicate/reflect border, as the image).
- ``map_boxes``: ``xyxy`` in pixel-EDGE coordinates (the image spans [0, W] x [0, H],
  Albumentations' ``pascal_voc``): the axis-aligned box around the four transformed corners,
  clipped to the output, dropped when its visible fraction (clipped area over unclipped area)
  falls below ``min_visibility`` or nothing is left.
- ``map_keypoints``: ``xy`` in the same edge coordinates; moved, never dropped; visible when
  inside [0, W) x [0, H) of the output.

Edge coordinate u is pixel-centre coordinate u - 0.5, so points are shifted by half a pixel on
the way into the matrices and back. Ragged batches (Ni boxes in sample i) are concatenated with
a sample-id vector: each point is transformed by its sample's matrix in one batched call and
split back, with no Python loop over samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .geometry import run_matrix, run_style, split_runs
from .ops import Op
from .params import Params
from .warp import BORDER_MODES, INTERPOLATION_MODES, grid_planes

__all__ = [
    "TARGET_KEYS",
    "pipeline_matrix",
    "pipeline_runs",
    "warp_masks",
    "map_boxes",
    "enclose_boxes",
    "map_keypoints",
    "check_targets",
    "transform_targets",
    "Ragged",
    "check_min_visibility",
]

TARGET_KEYS = ("masks", "boxes", "keypoints", "labels")
MIN_SIDE = 1e-3  # px: a clipped box must be wider and taller than this (float32 rounding leaves slivers)
Run = tuple[Tensor, tuple[int, int], str]  # one resampling run: (M, out_hw, border)


# ragged lists -------------------------------------------------------------------------
@dataclass(frozen=True)
class Ragged:
    """A list of B tensors (Ni, ...) as one (N, ...) tensor plus a (N,) sample-id vector."""

    values: Tensor  # (N, ...)
    sample: Tensor  # (N,) int64: which sample each row belongs to
    counts: tuple[int, ...]  # Ni per sample (host ints: the list lengths we were given)

    @staticmethod
    def from_list(parts: Sequence[Tensor], device: torch.device) -> Ragged:
        counts = tuple(int(p.shape[0]) for p in parts)
        if not parts:
            values = torch.empty(0, device=device)
        elif len({p.device for p in parts}) == 1:  # one cat where they are, one move: no per-sample copies
            values = torch.cat(list(parts)).to(device)
        else:
            values = torch.cat([p.to(device) for p in parts])
        # output_size: no device sync to size the result
        sample = torch.repeat_interleave(torch.arange(len(parts), device=device), torch.tensor(counts, device=device), output_size=sum(counts))
        return Ragged(values, sample, counts)

    def split(self, values: Tensor, keep: Tensor | None = None) -> list[Tensor]:
        """``values`` (N, ...) row-aligned with ours -> B tensors, rows where ``keep`` (N,) only."""
        if keep is None:
            return list(torch.split(values, list(self.counts)))
        counts = torch.bincount(self.sample[keep], minlength=len(self.counts)).tolist()  # one host sync
        return list(torch.split(values[keep], counts))

    def local_index(self) -> Tensor:
        """(N,) int64: each row's index inside its own sample."""
        starts = torch.tensor((0, *self.counts[:-1]), device=self.values.device).cumsum(0) if self.counts else self.sample
        return torch.arange(self.values.shape[0], device=self.values.device) - starts[self.sample]


# the matrices -------------------------------------------------------------------------
def pipeline_runs(
    ops: Sequence[Op], params: Params, hw: tuple[int, int], batch: int | None = None, device: torch.device | str = "cpu"
) -> tuple[list[Run], Tensor, tuple[int, int]]:
    """Each resampling run's (M, out_hw, border) and the whole pipeline's (M, out_hw).

    Runs are ``geometry.split_runs``: consecutive geometric ops that resample alike (the image
    is warped once per run); photometric ops move nothing, so the runs compose across them into
    one input -> output matrix (B, 3, 3) (float64 where the device has it). The identity when
    there is no geometric op (``batch`` of them on ``device``; default: the params' size and device).
    """
    runs = []
    m: Tensor | None = None
    for idx in split_runs(ops):
        run_ops = [ops[i] for i in idx]
        mr, hw_out = run_matrix(run_ops, [params[i] for i in idx], hw)
        mr = mr.to(_exact(mr.device))
        runs.append((mr, hw_out, run_style(run_ops)[0]))
        m, hw = (mr if m is None else mr @ m), hw_out
    if m is None:
        dev = params[0]["apply"].device if len(params) else torch.device(device)
        b = params.batch_size if batch is None else batch
        m = torch.eye(3, dtype=_exact(dev), device=dev).expand(b, 3, 3)
    return runs, m, hw


def pipeline_matrix(
    ops: Sequence[Op], params: Params, hw: tuple[int, int], batch: int | None = None, device: torch.device | str = "cpu"
) -> tuple[Tensor, tuple[int, int]]:
    """(M, out_hw): the whole pipeline's input -> output matrix (B, 3, 3) and output size."""
    _, m, hw = pipeline_runs(ops, params, hw, batch, device)
    return m, hw


# kernels ------------------------------------------------------------------------------
SAMPLER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.bool)  # exact in float32: sampled as values
MASK_BLOCK = 1 << 16  # output pixels per thread and block on CPU: the grid and the float copies stay in cache
NEAREST = INTERPOLATION_MODES["nearest"]  # grid_sampler interpolation_mode


def warp_masks(masks: Tensor, m: Tensor, out_hw: tuple[int, int], fill: int | float = 0, border: str = "constant") -> Tensor:
    """Nearest-neighbour warp of masks by input -> output matrices ``m``; exact for any dtype.

    Output pixel (j, i) reads the input pixel nearest to M^-1 (j, i) (``grid_sampler_2d``'s
    nearest rounding). Outside the input: ``fill`` ("constant"), the nearest edge pixel
    ("replicate") or the mirror image about the edges ("reflect": period 2 W, edge pixels
    repeated), as the image warp. The grid is one add of a column and a row term whatever
    the matrix (rotating or not).
    uint8 / int8 / int16 / bool masks are sampled as float32 values (exact for these); wider
    integers sample a plane of flat pixel indices instead and gather by it, exact for any value.
    On CPU the batch goes in blocks of about ``MASK_BLOCK`` output pixels per thread, a whole
    number of samples per thread (cache, not memory: 5x faster than one pass over a batch of 64
    at 224x224); on other devices in one block, so the number of ops does not grow with the batch.
    Shape: masks (B, K, H, W), m (B, 3, 3) affine -> (B, K, oh, ow), masks' dtype.
    """
    b, k, h, w = masks.shape
    oh, ow = out_hw
    dev = masks.device
    wide = masks.dtype not in SAMPLER_DTYPES
    dt = torch.float64 if wide and h * w + 1 >= 2**24 else torch.float32  # flat indices exact in the sampler's dtype
    gx, gy = _grid_terms(_affine_inverse(m.to(device=dev, dtype=_exact(dev))), (h, w), out_hw, dt)
    out = torch.empty(b, k, oh, ow, dtype=masks.dtype, device=dev)
    if b == 0 or out.numel() == 0:
        return out
    per_sample = max(oh * ow, k * h * w)  # the grid's pixels or the float copy's, whichever is more
    step = torch.get_num_threads() * max(1, MASK_BLOCK // per_sample) if dev.type == "cpu" else b
    grid = torch.empty(min(step, b), 2, oh, ow, dtype=dt, device=dev)  # (n, 2, oh, ow): x and y planes
    mode = BORDER_MODES[border]
    if wide:
        plane = torch.arange(1, h * w + 1, dtype=dt, device=dev).view(1, 1, h, w)  # 0 is outside
    else:
        src = torch.empty(min(step, b), k, h, w, dtype=torch.float32, device=dev)
        shift = float(fill) if border == "constant" else 0.0  # the sampler's constant border reads 0
    for gxb, gyb, mb, ob in zip(gx.split(step), gy.split(step), masks.split(step), out.split(step)):
        n = mb.shape[0]
        g = grid_planes(gxb, gyb, grid[:n] if n < step else grid)  # (n, oh, ow, 2), a view of the planes
        if wide:
            idx = torch.grid_sampler_2d(plane.expand(n, 1, h, w), g, NEAREST, mode, False).view(n, 1, oh * ow).long()
            vals = torch.gather(mb.reshape(n, k, h * w), 2, (idx - 1).clamp_(min=0).expand(n, k, oh * ow))
            if border == "constant":
                vals.masked_fill_(idx == 0, fill)
            ob.copy_(vals.view(n, k, oh, ow))
        else:
            f = src.copy_(mb) if n == step else src[:n].copy_(mb)
            if shift:
                f.sub_(shift)
            o = torch.grid_sampler_2d(f, g, NEAREST, mode, False)
            ob.copy_(o.add_(shift) if shift else o)
    return out


def _grid_terms(inv: Tensor, in_hw: tuple[int, int], out_hw: tuple[int, int], dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The sampling grid of output -> input maps ``inv`` (B, 2, 3) as a column and a row term.

    ``grid_sampler_2d`` (align_corners=False) reads input pixel x at g = (2 x + 1) / W - 1, so
    g = A0 j + A1 i + C per coordinate: gx (B, 2, 1, ow) = A0 j + C, gy (B, 2, oh, 1) = A1 i,
    each computed in ``inv``'s precision; their sum is the (B, 2, oh, ow) grid, x and y planes.
    """
    h, w = in_hw
    oh, ow = out_hw
    n = inv.new_tensor([w, h])[None]  # (1, 2): input size along x, y
    a0, a1 = 2 * inv[:, :, 0] / n, 2 * inv[:, :, 1] / n  # (B, 2)
    c = (2 * inv[:, :, 2] + 1) / n - 1
    j = torch.arange(ow, dtype=inv.dtype, device=inv.device)
    i = torch.arange(oh, dtype=inv.dtype, device=inv.device)
    gx = torch.addcmul(c[:, :, None], a0[:, :, None], j).to(dtype)[:, :, None, :]
    gy = (a1[:, :, None] * i).to(dtype)[:, :, :, None]
    return gx, gy


def _affine_inverse(m: Tensor) -> Tensor:
    """(B, 3, 3) affine matrices -> the (B, 2, 3) inverse maps, in closed form (no LU per matrix)."""
    a, b, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    tx, ty = m[:, 0, 2], m[:, 1, 2]
    return torch.stack((torch.stack((ia, ib, -(ia * tx + ib * ty)), 1), torch.stack((ic, id_, -(ic * tx + id_ * ty)), 1)), 1)


def _exact(device: torch.device) -> torch.dtype:
    """float64 for the small coordinate math, where the device has it (MPS does not)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _points(m: Tensor, sample: Tensor, pts: Tensor) -> Tensor:
    """Edge-coordinate points (N, P, 2) -> through their samples' matrices ``m[sample]``."""
    dt = _exact(pts.device)
    a = m.to(device=pts.device, dtype=dt)[sample]  # (N, 3, 3)
    c = pts.to(dt) - 0.5  # edge -> centre coordinates
    out = torch.einsum("nij,npj->npi", a[:, :2, :2], c) + a[:, None, :2, 2]
    return out + 0.5


def enclose_boxes(boxes: Tensor, sample: Tensor, m: Tensor) -> Tensor:
    """The axis-aligned box around each box's 4 corners moved by ``m[sample]``; not clipped.

    Shape: boxes (N, 4) xyxy edge coordinates, sample (N,) int64, m (B, 3, 3) -> (N, 4).
    """
    return _enclose(boxes, m.to(device=boxes.device, dtype=_exact(boxes.device))[sample])


def _enclose(boxes: Tensor, a: Tensor) -> Tensor:
    """``enclose_boxes`` with each box's own matrix ``a`` (N, 3, 3): the moved centre plus and
    minus |A| times the half size (the extent of the moved corners), in ``a``'s precision."""
    b = boxes.to(a.dtype)
    lin = a[:, :2, :2]  # (N, 2, 2)
    centre = torch.baddbmm(a[:, :2, 2:], lin, (b[:, :2] + b[:, 2:])[:, :, None] * 0.5 - 0.5)[:, :, 0] + 0.5
    half = torch.bmm(lin.abs(), (b[:, 2:] - b[:, :2])[:, :, None] * 0.5)[:, :, 0]
    return torch.cat((centre - half, centre + half), 1)


Stage = tuple[Tensor, tuple[int, int]]  # one resample: (M (B, 3, 3) input -> output, output (H, W))


def _clip(boxes: Tensor, hw: tuple[int, int]) -> Tensor:
    limit = boxes.new_tensor([hw[1], hw[0], hw[1], hw[0]])
    return torch.minimum(boxes.clamp_min(0), limit)


def map_boxes(boxes: Tensor, sample: Tensor, stages: Sequence[Stage], min_visibility: float = 0.0) -> tuple[Tensor, Tensor]:
    """Boxes through their samples' matrices: (boxes (N, 4) float32 clipped, keep (N,) bool).

    ``stages``: the resampling runs in order, each (M, out_hw). In each, a box becomes the
    axis-aligned box around its 4 moved corners (exact for flips, scales, translations, crops
    and quarter turns; the enclosing box for rotations and shears) and is clipped to that
    run's output, since what a run leaves outside its frame is gone for the runs after it.
    ``keep`` is False for boxes with no area left (a side under ``MIN_SIDE``) or whose area is
    below ``min_visibility`` times the area of the whole box moved by every run, unclipped.
    Shape: boxes (N, 4) xyxy edge coordinates, sample (N,) int64, each M (B, 3, 3).
    """
    cur = whole = boxes
    for n, (m, hw) in enumerate(stages):
        a = m.to(device=boxes.device, dtype=_exact(boxes.device))[sample]  # (N, 3, 3)
        moved = _enclose(cur, a)
        whole = moved if n == 0 else _enclose(whole, a)  # the first run moves the same boxes
        cur = _clip(moved, hw)
    size = cur[:, 2:] - cur[:, :2]
    area = (whole[:, 2:] - whole[:, :2]).prod(1)
    keep = (size > MIN_SIDE).all(1) & (size.prod(1) >= min_visibility * area)
    return cur.float(), keep


def map_keypoints(points: Tensor, sample: Tensor, stages: Sequence[Stage]) -> tuple[Tensor, Tensor]:
    """Keypoints through their samples' matrices: (points (N, 2) float32, visible (N,) bool).

    Never dropped; ``visible`` is False once a point leaves a run's output [0, W) x [0, H)
    (what a run leaves outside its frame is gone, even if a later run would bring it back).
    Shape: points (N, 2) xy edge coordinates, sample (N,) int64, each M (B, 3, 3).
    """
    cur = points
    visible = torch.ones(points.shape[0], dtype=torch.bool, device=points.device)
    for m, (oh, ow) in stages:
        cur = _points(m, sample, cur[:, None, :])[:, 0]  # (N, 2)
        x, y = cur.unbind(1)
        visible &= (x >= 0) & (x < ow) & (y >= 0) & (y < oh)
    return cur.float(), visible


# checks -------------------------------------------------------------------------------
def _as_rows(t: Any, name: str, cols: int, where: str) -> Tensor:
    """Shape and dtype checks of one sample's (N, cols) rows (metadata only, no device sync)."""
    if not isinstance(t, Tensor):
        try:
            import numpy as np

            t = torch.as_tensor(np.asarray(t, dtype=np.float64))
        except (TypeError, ValueError):
            raise TypeError(f"{name}{where} must be a float tensor (N, {cols}), got {type(t).__name__}") from None
    if t.dim() == 1 and t.numel() == 0:
        t = t.reshape(0, cols)
    if t.dim() != 2 or t.shape[1] != cols:
        raise ValueError(f"{name}{where} must have shape (N, {cols}), got {tuple(t.shape)}")
    if t.dtype == torch.bool or t.dtype.is_complex:
        raise TypeError(f"{name}{where} must hold real numbers, got dtype {t.dtype}")
    return t if t.dtype.is_floating_point else t.float()


def _ragged_rows(parts: list[Any], name: str, cols: int, single: bool, device: torch.device, boxes: bool) -> Ragged:
    """Checked rows of every sample as one ``Ragged``; the value checks are one pass and one sync."""
    rows = [_as_rows(t, name, cols, "" if single else f"[{i}]") for i, t in enumerate(parts)]
    r = Ragged.from_list(rows, device)
    v = r.values.reshape(-1, cols)
    bad = ~torch.isfinite(v).all(1)
    if boxes:
        bad |= (v[:, 2] < v[:, 0]) | (v[:, 3] < v[:, 1])
    if v.shape[0] and bool(bad.any()):  # the one host sync; then find the culprit
        n = int(bad.nonzero()[0, 0])
        sample = int(r.sample[n])
        row = n - sum(r.counts[:sample])
        where = "" if single else f"[{sample}]"
        got = v[n].tolist()
        if not all(math.isfinite(x) for x in got):
            raise ValueError(f"{name}{where} must be finite, got {got} in row {row}")
        raise ValueError(f"{name}{where} must be xyxy with x2 >= x1 and y2 >= y1, got {got} in row {row}")
    return Ragged(v, r.sample, r.counts)


def _check_list(v: Any, name: str, b: int) -> list[Any]:
    if isinstance(v, Tensor) and b == 1 and v.dim() == 2:
        return [v]
    if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) and not isinstance(v, Tensor):
        raise TypeError(f"{name} must be a list of B = {b} tensors (one per sample), got {type(v).__name__}")
    v = list(v)
    if len(v) != b:
        raise ValueError(f"{name} must be a list of B = {b} tensors (one per sample), got a list of length {len(v)}")
    return v


def check_targets(
    b: int,
    hw: tuple[int, int],
    *,
    masks: Any = None,
    boxes: Any = None,
    keypoints: Any = None,
    labels: Any = None,
    single: bool = False,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Validate targets for a batch of ``b`` images of size ``hw``; returns them normalized.

    ``masks`` -> (B, K, H, W) plus whether a K axis was given; ``boxes``/``keypoints`` -> one
    ``Ragged`` each on ``device``; ``labels`` -> a list of B. ``single``: the caller passed one
    image (errors say so, no sample index).
    """
    device = torch.device(device)
    h, w = hw
    out: dict[str, Any] = {}
    if masks is not None:
        name = "mask" if single else "masks"
        if not isinstance(masks, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(masks).__name__}")
        if masks.dtype.is_floating_point or masks.dtype.is_complex:
            raise TypeError(f"{name} must be an integer or bool tensor (class ids; uint8 for probability maps), got dtype {masks.dtype}")
        want = "(H, W) or (K, H, W)" if single else "(B, H, W) or (B, K, H, W)"
        mb = masks[None] if single else masks
        if mb.dim() not in (3, 4) or mb.shape[0] != b:
            raise ValueError(f"{name} must be {want} with B = {b}, got shape {tuple(masks.shape)}")
        if tuple(mb.shape[-2:]) != (h, w):
            raise ValueError(f"{name} must have the image's H, W = {h}, {w}, got shape {tuple(masks.shape)}")
        out["masks"] = (mb[:, None] if mb.dim() == 3 else mb, mb.dim() == 4)
    if boxes is not None:
        parts = [boxes] if single else _check_list(boxes, "boxes", b)
        out["boxes"] = _ragged_rows(parts, "boxes", 4, single, device, boxes=True)
    if keypoints is not None:
        parts = [keypoints] if single else _check_list(keypoints, "keypoints", b)
        out["keypoints"] = _ragged_rows(parts, "keypoints", 2, single, device, boxes=False)
    if labels is not None:
        if boxes is None:
            raise ValueError("labels belong to boxes: pass boxes= with labels=")
        parts = [labels] if single else _check_list(labels, "labels", b)
        checked = []
        for i, (lab, n) in enumerate(zip(parts, out["boxes"].counts)):
            where = "" if single else f"[{i}]"
            shape = tuple(lab.shape) if hasattr(lab, "shape") else (len(lab),) if isinstance(lab, Sequence) and not isinstance(lab, str) else None
            if shape is None or len(shape) != 1 or shape[0] != n:
                got = type(lab).__name__ if shape is None else shape
                raise ValueError(f"labels{where} must have shape ({n},) to match boxes{where}, got {got}")
            checked.append(lab)
        out["labels"] = checked
    return out


# the whole thing ------------------------------------------------------------------------
def transform_targets(
    ops: Sequence[Op],
    params: Params,
    hw: tuple[int, int],
    targets: dict[str, Any],
    *,
    mask_fill: int | float = 0,
    min_visibility: float = 0.0,
    batch: int | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Move checked targets (``check_targets``) with the params the image used.

    Returns the keys given among ``masks`` (B, [K,] oh, ow), ``boxes``, ``labels`` and
    ``box_keep`` (lists of B tensors), ``keypoints`` and ``keypoints_visible`` (lists).
    """
    runs, _, _ = pipeline_runs(ops, params, hw, batch, device)
    stages = [(mr, run_hw) for mr, run_hw, _ in runs]
    out: dict[str, Any] = {}
    if "masks" in targets:  # one nearest warp per run, as the image: a run's border reads its own input
        masks, has_k = targets["masks"]
        for mr, run_hw, border in runs:
            masks = warp_masks(masks, mr, run_hw, mask_fill, border)
        out["masks"] = masks if has_k else masks[:, 0]
    if "boxes" in targets:
        r = targets["boxes"]
        boxes, keep = map_boxes(r.values, r.sample, stages, min_visibility)
        out["boxes"] = r.split(boxes, keep)
        out["box_keep"] = r.split(r.local_index(), keep)
        if "labels" in targets:
            labels = targets["labels"]
            if labels and all(isinstance(lab, Tensor) for lab in labels):
                lr = Ragged.from_list(labels, labels[0].device)
                out["labels"] = lr.split(lr.values, keep.to(lr.values.device))
            else:  # numpy arrays or lists (e.g. class names): index each by its kept rows on the host
                out["labels"] = [_take(lab, k.cpu().numpy()) for lab, k in zip(labels, out["box_keep"])]
    if "keypoints" in targets:
        r = targets["keypoints"]
        pts, visible = map_keypoints(r.values, r.sample, stages)
        out["keypoints"] = r.split(pts)
        out["keypoints_visible"] = r.split(visible)
    return out


def _take(labels: Any, idx: Any) -> Any:
    import numpy as np

    if isinstance(labels, np.ndarray):
        return labels[idx]
    return [labels[int(i)] for i in idx]


def check_min_visibility(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"min_visibility must be a number in [0, 1], got {v!r}")
    return float(v)
