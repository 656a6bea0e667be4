"""Matrices of geometric ops: pure torch, no state. The one place geometry is defined.

Conventions (as Kornia's ``warp_affine``): pixel centres at integer coordinates, x to the
right, y down. A matrix M (B, 3, 3) float32 maps INPUT pixel coordinates to OUTPUT pixel
coordinates: output pixel (x, y) reads the input at ``M^-1 (x, y, 1)``.

API:
    run_matrix(ops, params, hw) -> (M, out_hw)
        ops: a run of consecutive geometric ops; params: their values (one dict per op, as in
        ``Params``); hw: the input size, (H, W) ints for a uniform batch or a (B, 2) int64
        tensor per sample (a ragged batch). M: (B, 3, 3) float32, input -> output pixels.
        out_hw: (H, W) ints, the output size (the last sizing op's ``size``, else the input's).
    run_output_size(ops, hw) -> (H, W)         the output size alone, static; raises on bad runs
    run_clip(ops, params, hw) -> (B, 4) | None  the crop box (input pixels) taps are clamped to
    inverse_2x3(M) -> (B, 2, 3) float32        output -> input, for warps
    op_matrix(op, values, hw) -> (M, hw_out)   one op; hw, hw_out (B, 2) float64 per sample
    box_matrix(box, size) -> M                 a (top, left, height, width) box resized to size
    rotates(ops) -> bool                       whether a matrix of the run can rotate or shear
    run_style(ops) -> (border, fill, interpolation, antialias)   how the run resamples
    split_runs(ops) -> list of index tuples     consecutive geometric ops that share one style

Every matrix is built in float64 on the params' device and returned as float32.
"""

from __future__ import annotations

from collections.abc import Sequence

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

__all__ = [
    "run_matrix",
    "run_output_size",
    "inverse_2x3",
    "run_clip",
    "op_matrix",
    "box_matrix",
    "rotates",
    "run_style",
    "split_runs",
    "Style",
]

Style = tuple[str, float, str, bool]  # (border, fill, interpolation, antialias)


def _eye(b: int, device: torch.device) -> Tensor:
    return torch.eye(3, dtype=torch.float64, device=device).repeat(b, 1, 1)


def _where(apply: Tensor, m: Tensor) -> Tensor:
    """m where ``apply`` (B,), else the identity."""
    return torch.where(apply[:, None, None], m, _eye(len(m), m.device))


def _centre(hw: Tensor) -> tuple[Tensor, Tensor]:
    return (hw[:, 1] - 1) / 2, (hw[:, 0] - 1) / 2  # (cx, cy)


def affine_about_centre(hw: Tensor, scale: Tensor, angle: Tensor, shear: Tensor, translate: Tensor) -> Tensor:
    """T(c + t) R(angle) Sh(shear) S(scale) T(-c): angle counter-clockwise on screen (degrees),
    shear along x (x' = x - tan(shear) y, as torchvision's), t = (tx W, ty H). All (B,) / (B, 2).
    """
    b = len(hw)
    cx, cy = _centre(hw)
    a = torch.deg2rad(angle.double())
    sh = torch.tan(torch.deg2rad(shear.double()))
    s = scale.double()
    cos, sin = torch.cos(a), torch.sin(a)
    # R = [[cos, sin], [-sin, cos]] (y down: counter-clockwise on screen), Sh = [[1, -sh], [0, 1]]
    m = _eye(b, hw.device)
    m[:, 0, 0], m[:, 0, 1] = s * cos, s * (-cos * sh + sin)
    m[:, 1, 0], m[:, 1, 1] = -s * sin, s * (sin * sh + cos)
    tx = translate[:, 0].double() * hw[:, 1] + cx
    ty = translate[:, 1].double() * hw[:, 0] + cy
    m[:, 0, 2] = tx - m[:, 0, 0] * cx - m[:, 0, 1] * cy
    m[:, 1, 2] = ty - m[:, 1, 0] * cx - m[:, 1, 1] * cy
    return m


def box_matrix(box: Tensor, size: tuple[int, int]) -> Tensor:
    """Input -> output for the box (top, left, height, width) (B, 4) resized to ``size`` = (H, W).

    Output pixel j reads input left - 0.5 + (j + 0.5) w / W (align_corners=False, as
    ``F.interpolate``); a box of the output size is a plain shift.
    """
    box = box.double()
    top, left, h, w = box.unbind(1)
    sy, sx = size[0] / h, size[1] / w
    m = _eye(len(box), box.device)
    m[:, 0, 0], m[:, 0, 2] = sx, (0.5 - left) * sx - 0.5
    m[:, 1, 1], m[:, 1, 2] = sy, (0.5 - top) * sy - 0.5
    return m


def _rot90_matrix(k: Tensor, hw: Tensor) -> Tensor:
    """k counter-clockwise quarter turns (np.rot90): k=1 maps (x, y) -> (y, W - 1 - x)."""
    h, w = hw[:, 0], hw[:, 1]
    b = len(hw)
    m = _eye(b, hw.device)
    k = k % 4
    one, zero = torch.ones_like(h), torch.zeros_like(h)
    # rows of [a, b, c; d, e, f] for k = 0..3, each (B,)
    rows = {
        0: (one, zero, zero, zero, one, zero),
        1: (zero, one, zero, -one, zero, w - 1),
        2: (-one, zero, w - 1, zero, -one, h - 1),
        3: (zero, -one, h - 1, one, zero, zero),
    }
    for kk, (a, b_, c, d, e, f) in rows.items():
        sel = (k == kk)[:, None]
        m[:, 0] = torch.where(sel, torch.stack([a, b_, c], 1), m[:, 0])
        m[:, 1] = torch.where(sel, torch.stack([d, e, f], 1), m[:, 1])
    return m


def op_matrix(op: Op, values: dict[str, Tensor], hw: Tensor) -> tuple[Tensor, Tensor]:
    """One op's (B, 3, 3) float64 matrix and the per-sample output size (B, 2) float64.

    ``hw`` (B, 2) float64 is each sample's (H, W) at the op's position.
    """
    apply = values["apply"]
    b, dev = len(hw), hw.device
    zeros = torch.zeros(b, dtype=torch.float64, device=dev)
    if isinstance(op, HorizontalFlip):
        m = _eye(b, dev)
        m[:, 0, 0], m[:, 0, 2] = -1.0, hw[:, 1] - 1
        return _where(apply, m), hw
    if isinstance(op, VerticalFlip):
        m = _eye(b, dev)
        m[:, 1, 1], m[:, 1, 2] = -1.0, hw[:, 0] - 1
        return _where(apply, m), hw
    if isinstance(op, Zoom):
        return _where(apply, affine_about_centre(hw, values["scale"], zeros, zeros, torch.zeros(b, 2, device=dev))), hw
    if isinstance(op, Affine):
        m = affine_about_centre(hw, values["scale"], values["angle"], values["shear"], values["translate"])
        return _where(apply, m), hw
    if isinstance(op, Rotate):
        m = affine_about_centre(hw, zeros + 1, values["angle"], zeros, torch.zeros(b, 2, device=dev))
        return _where(apply, m), hw
    if isinstance(op, Translate):
        return _where(apply, affine_about_centre(hw, zeros + 1, zeros, zeros, values["translate"])), hw
    if isinstance(op, Rot90):
        k = torch.where(apply, values["k"], 0)
        odd = (k % 2 == 1)[:, None]
        return _rot90_matrix(k, hw), torch.where(odd, hw.flip(1), hw)
    if isinstance(op, SizingOp):
        size = torch.tensor(op.size, dtype=torch.float64, device=dev).expand(b, 2)
        if isinstance(op, Resize):
            box = torch.stack([zeros, zeros, hw[:, 0], hw[:, 1]], 1)
        else:
            box = values.get("box")
            if box is None:
                box = op.sample_sized(values, hw.round().long())["box"]
        return box_matrix(box, op.size), size
    raise TypeError(f"{type(op).__name__} is not a geometric op")


def _hw_tensor(hw: tuple[int, int] | Tensor, b: int, device: torch.device) -> Tensor:
    if isinstance(hw, Tensor):
        if hw.shape != (b, 2):
            raise ValueError(f"hw must be (H, W) or a ({b}, 2) tensor, got shape {tuple(hw.shape)}")
        return hw.to(device=device, dtype=torch.float64)
    return torch.tensor(hw, dtype=torch.float64, device=device).expand(b, 2).clone()


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
    if len(ops) != len(params) or not ops:
        raise ValueError(f"run_matrix needs one params dict per op, got {len(ops)} ops and {len(params)} dicts")
    apply = params[0]["apply"]
    b, dev = len(apply), apply.device
    out_hw = run_output_size(ops, None if isinstance(hw, Tensor) else (int(hw[0]), int(hw[1])))
    cur = _hw_tensor(hw, b, dev)
    m = _eye(b, dev)
    for op, values in zip(ops, params):
        mi, cur = op_matrix(op, values, cur)
        m = mi @ m
    return m.float(), out_hw


def run_clip(ops: Sequence[Op], params: Sequence[dict[str, Tensor]], hw: tuple[int, int] | Tensor) -> Tensor | None:
    """The crop box of an axis-aligned run in INPUT pixels: (B, 4) float32 (x0, y0, x1, y1), the
    first and last pixel centres its taps may read, or None (no sizing op, or the run rotates).

    The box is the last sizing op's (the whole image at that point for ``Resize``), mapped back
    through the ops before it. Warps clamp their taps to it, so a crop then resize reads only
    the crop, as ``F.interpolate`` on the cropped tensor does.
    """
    last = max((i for i, op in enumerate(ops) if isinstance(op, SizingOp)), default=None)
    if last is None or rotates(ops):
        return None
    apply = params[0]["apply"]
    b, dev = len(apply), apply.device
    cur = _hw_tensor(hw, b, dev)
    m = _eye(b, dev)
    for op, values in zip(ops[:last], params[:last]):
        mi, cur = op_matrix(op, values, cur)
        m = mi @ m
    op, values = ops[last], params[last]
    assert isinstance(op, SizingOp)
    if isinstance(op, Resize):
        box = torch.stack([torch.zeros_like(cur[:, 0]), torch.zeros_like(cur[:, 0]), cur[:, 0], cur[:, 1]], 1)
    else:
        given = values.get("box")
        box = op.sample_sized(values, cur.round().long())["box"] if given is None else given
    box = box.double()
    corners = torch.stack([box[:, 1], box[:, 0], box[:, 1] + box[:, 3] - 1, box[:, 0] + box[:, 2] - 1], 1)  # x0 y0 x1 y1
    inv = torch.linalg.inv(m)
    xs = inv[:, 0, 0:1] * corners[:, [0, 2]] + inv[:, 0, 2:3]
    ys = inv[:, 1, 1:2] * corners[:, [1, 3]] + inv[:, 1, 2:3]
    return torch.stack([xs.amin(1), ys.amin(1), xs.amax(1), ys.amax(1)], 1).float()


def inverse_2x3(m: Tensor) -> Tensor:
    """(B, 3, 3) input -> output to the (B, 2, 3) output -> input map a warp samples with."""
    return torch.linalg.inv(m.double())[:, :2].float()


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


