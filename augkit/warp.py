"""Pure tensor kernels for geometric resampling: image + matrix in, image out. No state, no RNG.

``inv`` is the (B, 2, 3) float32 map from OUTPUT to INPUT pixel coordinates (pixel centres at
integers; ``geometry.inverse_2x3``). Sampling uses ``torch.grid_sampler_2d`` (the kernel Kornia's
``warp_affine`` calls) with ``align_corners=False``, on a grid built from ``inv`` directly
(no ``affine_grid``): two scaled ramps when the map is axis-aligned, a (B, H, W) plane otherwise.
The grid is stored as x and y planes, (B, 2, H, W), and read through a (B, H, W, 2) view: both
planes are one broadcast add along contiguous rows, 2 to 9 times cheaper to write on the CPU than
the interleaved layout; ``grid_sampler_2d`` reads it up to 7% slower, far less than the write saves.

Borders: "constant" reads 0 (the caller shifts values so that 0 means its fill), "replicate"
clamps coordinates to the image, "reflect" mirrors them about the edges (-0.5 and W - 0.5, as
NumPy's ``symmetric`` and OpenCV's ``BORDER_REFLECT``). A ragged batch (images of mixed sizes
padded into one tensor) passes ``hw`` (B, 2): coordinates are then clamped or mirrored per
sample in the grid, and the padding itself must hold the constant border's value (0).

Antialiasing (``area_resample``): an axis-aligned run applies ``F.interpolate(antialias=True)``'s
own filter (a triangle as wide as the shrink, bilinear when enlarging) as two per-sample weight
matrices, so a crop then resize equals ``F.interpolate`` on the crop. Crops clip the taps to
their box (``clip``) in the grid path too: output pixels near a crop edge repeat the edge, as
``F.interpolate`` does, instead of reading past the box.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = ["warp", "warp_centred", "inverse_centred", "area_resample", "BORDER_MODES", "INTERPOLATION_MODES"]

BORDER_MODES = {"constant": 0, "replicate": 1, "reflect": 2}  # grid_sampler padding_mode
INTERPOLATION_MODES = {"bilinear": 0, "nearest": 1}


@functools.lru_cache(maxsize=32)
def _ramp(n: int, device: torch.device) -> Tensor:
    return torch.arange(n, dtype=torch.float32, device=device)


@functools.lru_cache(maxsize=32)
def _centred_ramps(out_hw: tuple[int, int], in_hw: tuple[int, int], device: torch.device) -> Tensor:
    """(2, L) float32, L = max(H, W) of ``out_hw``: row 0 the output columns' offsets from the
    output centre in the input's grid units (2 / W_in per pixel), row 1 the rows' (2 / H_in)."""
    n = max(out_hw)
    j = torch.arange(n, dtype=torch.float64)
    rows = [(j - (out_hw[1] - 1) / 2) * (2 / in_hw[1]), (j - (out_hw[0] - 1) / 2) * (2 / in_hw[0])]
    return torch.stack(rows).to(device=device, dtype=torch.float32)


@functools.lru_cache(maxsize=8)
def _axis_units(device: torch.device) -> tuple[Tensor, Tensor]:
    """(1, 2, 1, 1) float32 [1, 0] and [0, 1]: a coordinate times one is its plane's term."""
    e = torch.eye(2, dtype=torch.float32, device=device)
    return e[0].view(1, 2, 1, 1), e[1].view(1, 2, 1, 1)


@functools.lru_cache(maxsize=32)
def _plane_ramps(out_hw: tuple[int, int], in_hw: tuple[int, int], device: torch.device) -> tuple[Tensor, Tensor]:
    """``_centred_ramps``' two rows as grid-plane terms: (1, 2, 1, W) [x ramp, 0] and (1, 2, H, 1) [0, y ramp]."""
    ramps = _centred_ramps(out_hw, in_hw, device)
    ex, ey = _axis_units(device)
    h, w = out_hw
    return ramps[0, :w].reshape(1, 1, 1, w) * ex, ramps[1, :h].reshape(1, 1, h, 1) * ey


@functools.lru_cache(maxsize=32)
def _grid_units(in_hw: tuple[int, int], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """(2 / W, 2 / H): grid units per input pixel; and for (x0, y0, x1, y1) pixel boxes the (4,)
    scale and offset into grid units (g = (2 x + 1) / n - 1)."""
    k = [2 / in_hw[1], 2 / in_hw[0]]
    o = [1 / in_hw[1] - 1, 1 / in_hw[0] - 1]
    return tuple(torch.tensor(v, dtype=torch.float32, device=device) for v in (k, k + k, o + o))  # type: ignore[return-value]


def grid_planes(cols: Tensor, rows: Tensor, grid: Tensor) -> Tensor:
    """``grid`` (B, 2, H, W), x and y planes, = ``cols`` (B, 2, 1, W) + ``rows`` (B, 2, H, 1) in
    one broadcast add; returns the (B, H, W, 2) view ``grid_sampler_2d`` reads."""
    return torch.add(cols, rows, out=grid).permute(0, 2, 3, 1)


def _axes_grid(gx: Tensor, gy: Tensor, grid: Tensor) -> Tensor:
    """The grid of a separable map: x = ``gx`` (B, W) along every row, y = ``gy`` (B, H) down every column."""
    b, w, h = gx.shape[0], gx.shape[-1], gy.shape[-1]
    ex, ey = _axis_units(gx.device)
    return grid_planes(gx.reshape(b, 1, 1, w) * ex, gy.reshape(b, 1, h, 1) * ey, grid)


def _grid_buffer(grid: Tensor | None, b: int, out_hw: tuple[int, int], device: torch.device) -> Tensor:
    return torch.empty(b, 2, *out_hw, dtype=torch.float32, device=device) if grid is None else grid


def warp_centred(
    img: Tensor,
    lin: Tensor | None,
    shift: Tensor | None,
    out_hw: tuple[int, int],
    *,
    border: str = "constant",
    interpolation: str = "bilinear",
    clip: Tensor | None = None,
    grid: Tensor | None = None,
) -> Tensor:
    """Resample ``img`` by a map given forward in centred coordinates (``geometry.RunMap``).

    u = pixel - (size - 1) / 2, x/y order; output pixel u_out reads the input at u_in where
    u_out = lin u_in + shift. ``lin`` (B, 2): per-axis factors (a separable grid: two ramps,
    solved by a division) or (B, 2, 2) (inverted in closed form; the grid is the sum of a
    column term and a row term); None for 1. ``shift`` (B, 2) or None for 0. ``clip`` (B, 4)
    (separable only): (x0, y0, x1, y1) input pixels the taps may read.
    Shape: img (B, C, Hi, Wi) float32 -> (B, C, H, W), (H, W) = ``out_hw``; ``grid`` an optional
    (B, 2, H, W) float32 buffer (x and y planes). A handful of small ops and one grid write, whatever B.
    """
    b, _, hi, wi = img.shape
    h, w = out_hw
    dev = img.device
    grid = _grid_buffer(grid, b, out_hw, dev)
    per, kbox, obox = _grid_units((hi, wi), dev)
    if shift is None and clip is None and lin is not None and lin.dim() == 2:  # flips and zooms: each ramp over its factor
        rx, ry = _plane_ramps(out_hw, (hi, wi), dev)
        f = lin.view(b, 2, 1, 1)
        g = grid_planes(rx / f, ry / f, grid)  # 0 / f is 0: each plane gets only its own axis' ramp
    elif lin is None or lin.dim() == 2:  # separable: g = (ramp - K t) / s per axis
        ramps = _centred_ramps(out_hw, (hi, wi), dev)  # (2, L)
        g = ramps.expand(b, *ramps.shape) if shift is None else ramps - (shift * per)[:, :, None]
        if lin is not None:
            g = torch.div(g, lin[:, :, None], out=None if shift is None else g)
        if clip is not None:
            lim = torch.addcmul(obox, clip, kbox).view(b, 2, 2)  # [[x0, y0], [x1, y1]] in grid units
            g = torch.clamp(g, lim[:, 0, :, None], lim[:, 1, :, None])
        g = _axes_grid(g[:, 0, :w], g[:, 1, :h], grid)
    else:
        if clip is not None:
            raise ValueError("clip needs a separable map (lin of shape (B, 2))")
        a, q = inverse_centred(lin, shift)
        rows = a * per[None, :, None]  # (B, 2, 2): row k in grid units of input axis k
        xs = _ramp_centred(w, dev).view(1, 1, 1, w)
        ys = _ramp_centred(h, dev).view(1, 1, h, 1)
        gx = xs * rows[:, :, 0, None, None]  # (B, 2, 1, W)
        col = rows[:, :, 1, None, None]  # (B, 2, 1, 1)
        gy = ys * col if q is None else torch.addcmul((q * per)[:, :, None, None], ys, col)  # (B, 2, H, 1)
        g = grid_planes(gx, gy, grid)
    return torch.grid_sampler_2d(img, g, INTERPOLATION_MODES[interpolation], BORDER_MODES[border], False)


def inverse_centred(lin: Tensor, shift: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """The inverse of u -> lin u + shift for (B, 2, 2) ``lin``: (a, q) with u_in = a u_out + q.

    Closed form: the adjugate over the determinant (no ``linalg``: a few elementwise ops).
    """
    b = lin.shape[0]
    m = lin.reshape(b, 4)  # (a, b, c, d) row-major
    det = torch.mul(m[:, 0], m[:, 3]).addcmul_(m[:, 1], m[:, 2], value=-1)
    adj = m[:, [3, 1, 2, 0]] * _signs(lin.device)
    a = (adj / det[:, None]).view(b, 2, 2)
    if shift is None:
        return a, None
    return a, torch.bmm(a, shift[:, :, None])[:, :, 0].neg_()


@functools.lru_cache(maxsize=8)
def _signs(device: torch.device) -> Tensor:
    return torch.tensor([1.0, -1.0, -1.0, 1.0], device=device)


@functools.lru_cache(maxsize=32)
def _ramp_centred(n: int, device: torch.device) -> Tensor:
    """j - (n - 1) / 2 for j < n, float32."""
    return (torch.arange(n, dtype=torch.float64) - (n - 1) / 2).to(device=device, dtype=torch.float32)


def _fold(u: Tensor, size: Tensor, border: str) -> Tensor:
    """Per-sample border for ragged batches: coordinates (B, ...) into [0, size - 1] (size (B, 1...))."""
    if border == "reflect":  # mirror about -0.5 and size - 0.5, period 2 size
        period = 2 * size
        u = torch.remainder(u + 0.5, period)
        u = torch.where(u >= size, period - u, u) - 0.5
    return torch.minimum(u.clamp_min(0), size - 1)


def _grid_axis(a: Tensor, b: Tensor, n_out: int, n_in: int, size: Tensor | None, border: str, clip: Tensor | None = None) -> Tensor:
    """grid_sample units of input coordinate a * j + b for output index j < n_out: (B, n_out).

    ``clip`` (B, 2): first and last pixel a tap may read (a crop box): coordinates clamp to it.
    """
    u = a[:, None] * _ramp(n_out, a.device)[None] + b[:, None]  # input pixel coordinates
    if clip is not None:
        u = torch.minimum(torch.maximum(u, clip[:, 0:1]), clip[:, 1:2])
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
    clip: Tensor | None = None,
) -> Tensor:
    """Resample ``img`` so that output pixel (x, y) reads input ``inv @ (x, y, 1)``.

    ``separable``: ``inv`` is axis-aligned (no rotation, shear or swap), so the grid is two
    ramps. ``hw`` (B, 2): each sample's own (H, W) inside a padded ragged batch. ``clip`` (B, 4)
    (separable only): (x0, y0, x1, y1), the pixels a tap may read (``geometry.run_clip``).
    Shape: img (B, C, Hi, Wi) float32 -> (B, C, H, W) with (H, W) = ``out_hw``; ``grid`` an
    optional (B, 2, H, W) float32 buffer (x and y planes).
    """
    b, _, hi, wi = img.shape
    h, w = out_hw
    grid = _grid_buffer(grid, b, out_hw, img.device)
    sw = sh = None
    if hw is not None:
        sh, sw = hw[:, 0].to(torch.float32), hw[:, 1].to(torch.float32)
    if separable:
        cx = None if clip is None else clip[:, [0, 2]]
        cy = None if clip is None else clip[:, [1, 3]]
        gx = _grid_axis(inv[:, 0, 0], inv[:, 0, 2], w, wi, sw, border, cx)  # (B, W)
        gy = _grid_axis(inv[:, 1, 1], inv[:, 1, 2], h, hi, sh, border, cy)  # (B, H)
        g = _axes_grid(gx, gy, grid)
    else:
        xs, ys = _ramp(w, img.device)[None, None, :], _ramp(h, img.device)[None, :, None]
        for k, (size, n_in) in enumerate(((sw, wi), (sh, hi))):
            c = inv[:, k, :, None, None]  # (B, 3, 1, 1)
            u = c[:, 0] * xs + c[:, 1] * ys + c[:, 2]  # (B, H, W) input pixel coordinates
            if size is not None and border != "constant":
                u = _fold(u, size[:, None, None], border)
            torch.mul(u, 2 / n_in, out=grid[:, k]).add_(1 / n_in - 1)
        g = grid.permute(0, 2, 3, 1)
    mode = 0 if hw is not None else BORDER_MODES[border]  # ragged: folded above, padding reads 0
    return torch.grid_sampler_2d(img, g, INTERPOLATION_MODES[interpolation], mode, False)


def _area_weights(a: Tensor, b: Tensor, n_out: int, n_in: int, size: Tensor, border: str, clip: Tensor | None) -> Tensor:
    """(B, n_out, n_in) weights of one axis of ``area_resample``: ``F.interpolate``'s antialias filter.

    Output j is centred on input c = a j + b; pixel i weighs max(0, 1 - |i - c| / s), s = max(|a|, 1)
    (a triangle as wide as the shrink; at s = 1, bilinear). Pixels outside ``clip`` (B, 2) (first,
    last pixel: the crop box) and outside the image (``size``) are dropped and the rest
    renormalised, as ``F.interpolate`` does at a tensor's edges; with the "constant" border,
    pixels outside the image count in the normalisation (they read the fill, 0).
    """
    s = a.abs().clamp(min=1.0)[:, None, None]  # (B, 1, 1)
    centre = (a[:, None] * _ramp(n_out, a.device)[None] + b[:, None])[..., None]  # (B, n_out, 1)
    i = _ramp(n_in, a.device)[None, None, :]
    w = (1 - (i - centre).abs() / s).clamp_(min=0)  # (B, n_out, n_in)
    if clip is not None:
        w *= (i >= clip[:, None, 0:1]) & (i <= clip[:, None, 1:2])
    w *= i < size[:, None, None]
    if border == "constant":  # the full triangle's sum: taps outside the image read 0
        # every position within n_in of the image (no host sync to size it; a shrink by more
        # than the image's width would lose some taps of the sum)
        taps = torch.arange(-n_in, 2 * n_in, dtype=torch.float32, device=a.device)[None, None, :]
        full = (1 - (taps - centre).abs() / s).clamp_(min=0)
        if clip is not None:
            full *= (taps >= clip[:, None, 0:1]) & (taps <= clip[:, None, 1:2])
        norm = full.sum(-1, keepdim=True)
    else:
        norm = w.sum(-1, keepdim=True)
    return w.div_(norm.clamp_(min=1e-12))


def area_resample(
    img: Tensor, inv: Tensor, out_hw: tuple[int, int], *, border: str = "replicate", hw: Tensor | None = None, clip: Tensor | None = None
) -> Tensor:
    """Antialiased resample for an axis-aligned ``inv``: ``F.interpolate(antialias=True)``'s filter
    as per-sample weight matrices, two matmuls (see ``_area_weights``).

    ``clip`` (B, 4) = (x0, y0, x1, y1): the first and last input pixels the taps may read (the
    crop box of the run), so that a crop then resize equals ``F.interpolate`` on the crop.
    Shape: img (B, C, Hi, Wi) float32 -> (B, C, H, W).
    """
    b, _, hi, wi = img.shape
    if hw is None:
        hw = torch.tensor([hi, wi], device=img.device).expand(b, 2)
    hw = hw.to(torch.float32)
    cx = None if clip is None else clip[:, [0, 2]]
    cy = None if clip is None else clip[:, [1, 3]]
    wx = _area_weights(inv[:, 0, 0], inv[:, 0, 2], out_hw[1], wi, hw[:, 1], border, cx)  # (B, W, Wi)
    wy = _area_weights(inv[:, 1, 1], inv[:, 1, 2], out_hw[0], hi, hw[:, 0], border, cy)  # (B, H, Hi)
    if out_hw[1] * hi * (wi + out_hw[0]) <= out_hw[0] * wi * (hi + out_hw[1]):  # the cheaper order
        return torch.matmul(wy[:, None], torch.matmul(img, wx.transpose(1, 2)[:, None]))  # (B, C, H, W)
    return torch.matmul(torch.matmul(wy[:, None], img), wx.transpose(1, 2)[:, None])
