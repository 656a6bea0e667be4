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

from .geometry import rotates, run_matrix, run_style, split_runs
from .ops import Op
from .params import Params
from .warp import warp

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
Run = tuple[Tensor, tuple[int, int], str, bool]  # one resampling run: (M, out_hw, border, may rotate)


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
    """Each resampling run's (M, out_hw, border, may rotate) and the whole pipeline's (M, out_hw).

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
        runs.append((mr, hw_out, run_style(run_ops)[0], rotates(run_ops)))
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
SAMPLER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.bool)  # exact in float32: one grid_sample


def warp_masks(
    masks: Tensor, m: Tensor, out_hw: tuple[int, int], fill: int | float = 0, border: str = "constant", separable: bool = False
) -> Tensor:
    """Nearest-neighbour warp of masks by input -> output matrices ``m``; exact for any dtype.

    Output pixel (j, i) reads the input pixel nearest to M^-1 (j, i). Outside the input:
    ``fill`` ("constant"), the nearest edge pixel ("replicate") or the mirror image about the
    edges ("reflect": period 2 W, edge pixels repeated), as the image warp. ``separable``: the
    caller knows no matrix rotates or shears (a cheaper grid).
    uint8 / int8 / int16 / bool masks run through the image's own sampler (``augkit.warp.warp``,
    nearest, on float32 copies: exact for these); wider integers gather by index, exact for any
    value (ids past 2**24 included).
    Shape: masks (B, K, H, W), m (B, 3, 3) affine -> (B, K, oh, ow), masks' dtype.
    """
    b, k, h, w = masks.shape
    oh, ow = out_hw
    dev = masks.device
    inv = _affine_inverse(m.to(device=dev, dtype=_exact(dev))).float()  # (B, 2, 3)
    if masks.dtype in SAMPLER_DTYPES:
        f = masks.to(torch.float32)
        shift = float(fill) if border == "constant" else 0.0
        if shift:
            f.sub_(shift)  # the sampler's constant border reads 0: make 0 mean ``fill``
        out = warp(f, inv, out_hw, border=border, interpolation="nearest", separable=separable)
        if shift:
            out.add_(shift)
        return out.to(masks.dtype)
    j = torch.arange(ow, dtype=torch.float32, device=dev)
    i = torch.arange(oh, dtype=torch.float32, device=dev)
    # source x = inv00 j + inv01 i + inv02: ramps (B, ow), (B, oh), rounded as the sampler (half to even)
    xj = torch.addcmul(inv[:, 0, 2, None], inv[:, 0, 0, None], j)
    yi = torch.addcmul(inv[:, 1, 2, None], inv[:, 1, 1, None], i)
    if separable:
        sx, sy = xj.round_()[:, None, :], yi.round_()[:, :, None]  # (B, 1, ow), (B, oh, 1)
    else:
        sx = (xj[:, None, :] + (inv[:, 0, 1, None] * i)[:, :, None]).round_()  # (B, oh, ow)
        sy = (yi[:, :, None] + (inv[:, 1, 0, None] * j)[:, None, :]).round_()
    if border == "reflect":
        sx, sy = _reflect(sx, w), _reflect(sy, h)
    cx, cy = sx.clamp(0, w - 1), sy.clamp(0, h - 1)
    flat = torch.addcmul(cx, cy, torch.tensor(float(w), device=dev)).long()  # exact below 2**24 pixels
    flat = flat.expand(b, oh, ow).reshape(b, 1, oh * ow).expand(b, k, oh * ow)
    out = torch.gather(masks.reshape(b, k, h * w), 2, flat).view(b, k, oh, ow)
    if border != "constant":
        return out
    inside = (cx == sx) & (cy == sy)  # (B, oh, ow), or broadcastable to it
    return out.masked_fill_(~inside[:, None], fill)


def _affine_inverse(m: Tensor) -> Tensor:
    """(B, 3, 3) affine matrices -> the (B, 2, 3) inverse maps, in closed form (no LU per matrix)."""
    a, b, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    tx, ty = m[:, 0, 2], m[:, 1, 2]
    return torch.stack((torch.stack((ia, ib, -(ia * tx + ib * ty)), 1), torch.stack((ic, id_, -(ic * tx + id_ * ty)), 1)), 1)


def _reflect(s: Tensor, n: int) -> Tensor:
    """Integer positions mirrored about -0.5 and n - 0.5 (period 2 n) into [0, n)."""
    s = torch.remainder(s, 2 * n)
    return torch.where(s >= n, 2 * n - 1 - s, s)


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
    x1, y1, x2, y2 = boxes.unbind(1)
    corners = torch.stack((torch.stack((x1, y1), 1), torch.stack((x2, y1), 1), torch.stack((x1, y2), 1), torch.stack((x2, y2), 1)), 1)
    moved = _points(m, sample, corners)  # (N, 4, 2)
    return torch.cat((moved.amin(1), moved.amax(1)), 1)


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
    cur = boxes
    whole = boxes
    for m, hw in stages:
        cur = _clip(enclose_boxes(cur, sample, m), hw)
        whole = enclose_boxes(whole, sample, m)
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
    stages = [(mr, run_hw) for mr, run_hw, _, _ in runs]
    out: dict[str, Any] = {}
    if "masks" in targets:  # one nearest warp per run, as the image: a run's border reads its own input
        masks, has_k = targets["masks"]
        for mr, run_hw, border, turns in runs:
            if masks.device.type == "cpu":  # reading the matrices is free here: trust them, not the ops' ranges
                turns = bool((mr[:, 0, 1] != 0).any() or (mr[:, 1, 0] != 0).any())
            masks = warp_masks(masks, mr, run_hw, mask_fill, border, separable=not turns)
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
