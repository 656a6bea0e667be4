"""Pure tensor kernels for geometric resampling: image + matrix in, image out. No state, no RNG.

``inv`` is the (B, 2, 3) float32 map from OUTPUT to INPUT pixel coordinates (pixel centres at
integers; ``geometry.inverse_2x3``). Sampling uses ``torch.grid_sampler_2d`` (the kernel Kornia's
``warp_affine`` calls) with ``align_corners=False``, on a grid built from ``inv`` directly
(no ``affine_grid``): two scaled ramps when the map is axis-aligned, a (B, H, W) plane otherwise.

Borders: "constant" reads 0 (the caller shifts values so that 0 means its fill), "replicate"
clamps coordinates to the image, "reflect" mirrors them about the edges (-0.5 and W - 0.5, as
NumPy's ``symmetric`` and OpenCV's ``BORDER_REFLECT``). A ragged batch (images of mixed sizes
padded into one tensor) passes ``hw`` (B, 2): coordinates are then clamped or mirrored per
sample in the grid, and the padding itself must hold the constant border's value (0).

Antialiasing (``area_resample``): an axis-aligned shrink by s reads, per axis, the integral of
the piecewise-constant image over a box of width f = sqrt(2 s^2 - 1) about each output centre,
from a cumulative sum (two bilinear reads per output). Its kernel, box(f) * box(1), has the
variance s^2 / 6 of ``F.interpolate(antialias=True)``'s triangle, and at s = 1 it is bilinear.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = ["warp", "area_resample", "BORDER_MODES", "INTERPOLATION_MODES"]

BORDER_MODES = {"constant": 0, "replicate": 1, "reflect": 2}  # grid_sampler padding_mode
INTERPOLATION_MODES = {"bilinear": 0, "nearest": 1}


@functools.lru_cache(maxsize=32)
def _ramp(n: int, device: torch.device) -> Tensor:
    return torch.arange(n, dtype=torch.float32, device=device)


def _fold(u: Tensor, size: Tensor, border: str) -> Tensor:
    """Per-sample border for ragged batches: coordinates (B, ...) into [0, size - 1] (size (B, 1...))."""
    if border == "reflect":  # mirror about -0.5 and size - 0.5, period 2 size
        period = 2 * size
        u = torch.remainder(u + 0.5, period)
        u = torch.where(u >= size, period - u, u) - 0.5
    return torch.minimum(u.clamp_min(0), size - 1)


def _grid_axis(a: Tensor, b: Tensor, n_out: int, n_in: int, size: Tensor | None, border: str) -> Tensor:
    """grid_sample units of input coordinate a * j + b for output index j < n_out: (B, n_out)."""
    u = a[:, None] * _ramp(n_out, a.device)[None] + b[:, None]  # input pixel coordinates
    if size is not None and border != "constant":
        u = _fold(u, size[:, None], border)
    return (2 * u + 1) / n_in - 1


def warp(
    img: Tensor,
    inv: Tensor,
    out_hw: tuple[int, int],
    *,
    border: str = "constant",
    interpolation: str = "bilinear",
    separable: bool = False,
    hw: Tensor | None = None,
    grid: Tensor | None = None,
) -> Tensor:
    """Resample ``img`` so that output pixel (x, y) reads input ``inv @ (x, y, 1)``.

    ``separable``: ``inv`` is axis-aligned (no rotation, shear or swap), so the grid is two
    ramps. ``hw`` (B, 2): each sample's own (H, W) inside a padded ragged batch.
    Shape: img (B, C, Hi, Wi) float32 -> (B, C, H, W) with (H, W) = ``out_hw``; ``grid`` an
    optional (B, H, W, 2) float32 buffer.
    """
    b, _, hi, wi = img.shape
    h, w = out_hw
    if grid is None:
        grid = torch.empty(b, h, w, 2, dtype=torch.float32, device=img.device)
    sw = sh = None
    if hw is not None:
        sh, sw = hw[:, 0].to(torch.float32), hw[:, 1].to(torch.float32)
    if separable:
        gx = _grid_axis(inv[:, 0, 0], inv[:, 0, 2], w, wi, sw, border)  # (B, W)
        gy = _grid_axis(inv[:, 1, 1], inv[:, 1, 2], h, hi, sh, border)  # (B, H)
        torch.stack((gx[:, None, :].expand(b, h, w), gy[:, :, None].expand(b, h, w)), dim=-1, out=grid)
    else:
        xs, ys = _ramp(w, img.device)[None, None, :], _ramp(h, img.device)[None, :, None]
        for k, (size, n_in) in enumerate(((sw, wi), (sh, hi))):
            c = inv[:, k, :, None, None]  # (B, 3, 1, 1)
            u = c[:, 0] * xs + c[:, 1] * ys + c[:, 2]  # (B, H, W) input pixel coordinates
            if size is not None and border != "constant":
                u = _fold(u, size[:, None, None], border)
            torch.mul(u, 2 / n_in, out=grid[..., k]).add_(1 / n_in - 1)
    mode = 0 if hw is not None else BORDER_MODES[border]  # ragged: folded above, padding reads 0
    return torch.grid_sampler_2d(img, grid, INTERPOLATION_MODES[interpolation], mode, False)


def _area_axis(img: Tensor, a: Tensor, b: Tensor, n_out: int, size: Tensor, border: str) -> Tensor:
    """One axis (the last) of ``area_resample``: (B, C, R, n_in) -> (B, C, R, n_out)."""
    bsz, c, r, n_in = img.shape
    cum = torch.zeros(bsz, c, r, n_in + 1, dtype=torch.float32, device=img.device)
    torch.cumsum(img, -1, out=cum[..., 1:])  # cum[p] = sum of pixels < p: pixel i spans [i - 0.5, i + 0.5)
    s = a.abs()
    f = torch.sqrt(torch.clamp(2 * s * s - 1, min=1.0))  # (B,) box width in input pixels
    centre = a[:, None] * _ramp(n_out, img.device)[None] + b[:, None] + 0.5  # (B, n_out) in boundary units
    lo = (centre - f[:, None] / 2).clamp(min=0)
    hi = torch.minimum(centre + f[:, None] / 2, size[:, None])
    hi = torch.maximum(hi, lo)
    p = torch.stack((lo, hi), -1).reshape(bsz, 1, 2 * n_out)  # grid x, in [0, size]
    gx = (2 * p + 1) / (n_in + 1) - 1
    gy = ((2 * _ramp(r, img.device) + 1) / r - 1)[None, :, None].expand(bsz, r, 2 * n_out)
    grid = torch.stack((gx.expand(bsz, r, 2 * n_out), gy), -1)
    ends = torch.grid_sampler_2d(cum.reshape(bsz, c, r, n_in + 1), grid, 0, 1, False).view(bsz, c, r, n_out, 2)
    width = (hi - lo) if border != "constant" else f[:, None].expand(bsz, n_out)  # renormalise at edges unless a fill
    out = ends[..., 1] - ends[..., 0]
    return out.div_(width.clamp_min(1e-6)[:, None, None, :])


def area_resample(img: Tensor, inv: Tensor, out_hw: tuple[int, int], *, border: str = "replicate", hw: Tensor | None = None) -> Tensor:
    """Antialiased resample for an axis-aligned ``inv`` (see the module docstring).

    Box footprints are cut at each sample's image edges and renormalised (``border`` constant:
    not renormalised, so edges blend with 0). Shape: img (B, C, Hi, Wi) float32 -> (B, C, H, W).
    """
    b, _, hi, wi = img.shape
    if hw is None:
        hw = torch.tensor([hi, wi], device=img.device).expand(b, 2)
    hw = hw.to(torch.float32)
    x = _area_axis(img, inv[:, 0, 0], inv[:, 0, 2], out_hw[1], hw[:, 1], border)  # (B, C, Hi, W)
    y = _area_axis(x.transpose(2, 3), inv[:, 1, 1], inv[:, 1, 2], out_hw[0], hw[:, 0], border)  # (B, C, W, H)
    return y.transpose(2, 3).contiguous()
