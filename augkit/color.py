"""Pure tensor kernels for the photometric ops: tensors and explicit params in, tensor out.

Every kernel takes ``x`` (B, C, H, W) float32 holding values in [0, 1] and per-sample params
as (B,) tensors, works **in place** on ``x`` (a few passes, no Python loop over samples) and
returns it. Kernels ignore ``apply``: the caller either runs them on the samples that apply
or passes identity params (factor 1, shift 0, ...) for the others. Semantics: docs/ops.md.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as tnf
from torch import Tensor

from .functional import GREY_WEIGHTS

__all__ = [
    "grey",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "adjust_gamma",
    "to_grey",
    "invert",
    "solarize",
    "posterize",
    "equalize",
    "autocontrast",
    "adjust_sharpness",
    "gaussian_kernels",
    "gaussian_blur",
    "erase_boxes",
    "erase",
]


def _col(t: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1, 1) float32 for broadcasting over (B, C, H, W)."""
    return t.float().view(-1, 1, 1, 1)


def grey(x: Tensor) -> Tensor:
    """ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B`` (1 channel: itself). (B, C, H, W) -> (B, 1, H, W)."""
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    out = r * GREY_WEIGHTS[0]
    out.add_(g, alpha=GREY_WEIGHTS[1]).add_(b, alpha=GREY_WEIGHTS[2])
    return out


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """clamp(x * f): torchvision ``adjust_brightness``, PIL ``ImageEnhance.Brightness``."""
    return x.mul_(_col(factor)).clamp_(0.0, 1.0)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """clamp(other + f * (x - other)) in place: f = 0 gives ``other``, 1 gives ``x``."""
    torch.lerp(other.expand_as(x), x, _col(factor), out=x)
    return x.clamp_(0.0, 1.0)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with the per-image mean grey level (as ``ak.Contrast``). Shape: (B, C, H, W)."""
    m = grey(x).mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return _blend(x, m, factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with the grey image (PIL ``ImageEnhance.Color``); 1 channel is left as is."""
    if x.shape[1] == 1:
        return x
    return _blend(x, grey(x), factor)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate hue by ``shift`` (B,) of a full turn in HSV (torchvision ``adjust_hue``); 1 channel as is.

    Hue in sixths: h = off + num / (max - min), (off, num) = (0, g - b), (2, b - r), (4, r - g) where
    the max is r, g, b (first wins). Back to RGB per channel n (R: 5, G: 3, B: 1), elementwise:
    ``max - (max - min) * clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + h) mod 6``.
    """
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0], x[:, 1], x[:, 2]  # (B, H, W)
    v = torch.maximum(r, g)
    torch.maximum(v, b, out=v)
    cr = torch.minimum(r, g)
    torch.minimum(cr, b, out=cr)
    torch.sub(v, cr, out=cr)
    # off * cr + num, then / cr (cr = 0: num = 0 and off * cr = 0, so h = 0)
    h = torch.add(r, g, alpha=-1.0).add_(cr, alpha=4.0)  # max is b: 4 cr + r - g
    torch.where(v == g, torch.sub(b, r).add_(cr, alpha=2.0), h, out=h)
    torch.where(v == r, g - b, h, out=h)
    h.div_(cr.clamp(min=1e-30))
    h.add_(6.0 * shift.float().view(-1, 1, 1))  # in [-4, 8): hue * 6 after the shift
    k = torch.empty_like(h)
    t = torch.empty_like(h)
    for c, n in enumerate((5.0, 3.0, 1.0)):
        torch.add(h, n, out=k)
        torch.mul(k, 1.0 / 6.0, out=t).floor_()
        k.sub_(t.mul_(6.0))  # (n + h) mod 6, in [0, 6)
        torch.add(k, -4.0, out=t).neg_()  # 4 - k
        torch.minimum(k, t, out=k).clamp_(0.0, 1.0)
        torch.sub(v, k.mul_(cr), out=x[:, c])
    return x


def adjust_gamma(x: Tensor, gamma: Tensor) -> Tensor:
    """x ** gamma (torchvision ``adjust_gamma`` with gain 1); stays in [0, 1]."""
    return x.pow_(_col(gamma))


def to_grey(x: Tensor) -> Tensor:
    """Every channel set to the ITU-R 601 luma (PIL ``convert("L")``); the channel count is kept."""
    if x.shape[1] == 1:
        return x
    x.copy_(grey(x).expand_as(x))
    return x


def invert(x: Tensor) -> Tensor:
    """1 - x."""
    return x.neg_().add_(1.0)


def solarize(x: Tensor, threshold: Tensor) -> Tensor:
    """1 - x where x >= t (torchvision ``solarize``, PIL ``ImageOps.solarize`` at 255 t)."""
    return torch.where(x >= _col(threshold), 1.0 - x, x, out=x)


def _levels(x: Tensor) -> Tensor:
    """Values in [0, 1] as uint8 levels 0..255 (round half up), float32."""
    return (x * 255.0).add_(0.5).floor_().clamp_(0.0, 255.0)


def posterize(x: Tensor, bits: Tensor) -> Tensor:
    """Keep the top ``bits`` (B,) of each uint8 level (round(255 x)), as ``ImageOps.posterize``."""
    step = torch.pow(2.0, 8 - bits.float()).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
    v = _levels(x)
    return torch.floor(v.div_(step), out=x).mul_(step).div_(255.0)


def equalize(x: Tensor) -> Tensor:
    """Histogram equalization of each channel's uint8 levels, PIL ``ImageOps.equalize``'s rule.

    Per channel: ``step = (N - count of the top level) // 255``; level i maps to
    ``(step // 2 + #pixels below i) // step`` (capped at 255); step 0 leaves it as is.
    All histograms in one ``scatter_add_`` over (sample, channel) offsets.
    """
    b, c, h, w = x.shape
    v = _levels(x).view(b * c, h * w).long()  # (BC, HW)
    offs = torch.arange(b * c, device=x.device)[:, None] * 256
    hist = torch.zeros(b * c * 256, dtype=torch.int64, device=x.device)  # scatter_add: no host sync (bincount has one)
    hist.scatter_add_(0, (v + offs).view(-1), torch.ones(1, dtype=torch.int64, device=x.device).expand(v.numel()))
    hist = hist.view(b * c, 256)
    top = v.amax(dim=1, keepdim=True)  # (BC, 1) the largest level present
    step = (h * w - hist.gather(1, top)) // 255  # (BC, 1)
    below = hist.cumsum(1) - hist  # pixels strictly below each level
    safe = torch.where(step > 0, step, 1)
    lut = torch.div(step // 2 + below, safe, rounding_mode="floor").clamp_(max=255)
    lut = torch.where(step > 0, lut, torch.arange(256, device=x.device))  # (BC, 256)
    out = lut.gather(1, v).to(torch.float32).div_(255.0)
    return x.copy_(out.view(b, c, h, w))


def autocontrast(x: Tensor) -> Tensor:
    """Stretch each channel to [0, 1]: (x - min) / (max - min); a flat channel is left as is."""
    lo = x.amin(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    hi = x.amax(dim=(2, 3), keepdim=True)
    flat = hi <= lo
    scale = torch.where(flat, 1.0, 1.0 / torch.where(flat, 1.0, hi - lo))
    lo = torch.where(flat, 0.0, lo)
    return x.sub_(lo).mul_(scale).clamp_(0.0, 1.0)


@functools.lru_cache(maxsize=8)
def _smooth_weight(c: int, device: torch.device) -> Tensor:
    k = torch.ones(3, 3, device=device)
    k[1, 1] = 5.0
    return (k / 13.0).expand(c, 1, 3, 3).contiguous()


def adjust_sharpness(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with PIL's SMOOTH-filtered image ([[1,1,1],[1,5,1],[1,1,1]] / 13, border pixels kept).

    f = 0 gives the smoothed image, 1 the input, > 1 sharpens (PIL ``ImageEnhance.Sharpness``,
    torchvision ``adjust_sharpness``). Images smaller than 3x3 are left as is.
    """
    b, c, h, w = x.shape
    if h < 3 or w < 3:
        return x
    deg = tnf.conv2d(x, _smooth_weight(c, x.device), groups=c)  # (B, C, H-2, W-2)
    inner = x[:, :, 1:-1, 1:-1]
    torch.lerp(deg, inner, _col(factor), out=deg)
    inner.copy_(deg.clamp_(0.0, 1.0))
    return x


def gaussian_kernels(sigma: Tensor, size: int) -> Tensor:
    """(B, size) normalized 1-D Gaussians sampled at integer offsets; sigma 0 is a delta."""
    r = size // 2
    k = torch.arange(-r, r + 1, dtype=torch.float32, device=sigma.device)
    s = sigma.float().clamp(min=1e-6)[:, None]
    g = torch.exp(-0.5 * (k[None, :] / s) ** 2)
    return g / g.sum(1, keepdim=True)


def gaussian_blur(x: Tensor, sigma: Tensor, size: int) -> Tensor:
    """Separable Gaussian blur with per-sample ``sigma`` (B,), kernel ``size`` (odd), in one batched call.

    Borders reflect without repeating the edge (``d c b | a b c d``: OpenCV's default, SciPy's
    ``mode="mirror"``). The kernel radius is capped at ``min(H, W) - 1`` (renormalized).
    Each direction is one depthwise conv over (1, B*C) channels with each sample's own taps.
    """
    b, c, h, w = x.shape
    r = min(size // 2, h - 1, w - 1)
    if r <= 0:
        return x
    g = gaussian_kernels(sigma, 2 * r + 1)  # (B, K)
    wt = g.repeat_interleave(c, dim=0)  # (B*C, K)
    flat = x.reshape(1, b * c, h, w)
    y = tnf.conv2d(tnf.pad(flat, (r, r, 0, 0), mode="reflect"), wt[:, None, None, :], groups=b * c)
    y = tnf.conv2d(tnf.pad(y, (0, 0, r, r), mode="reflect"), wt[:, None, :, None], groups=b * c)
    return x.copy_(y.view(b, c, h, w))


def erase_boxes(area: Tensor, log_ratio: Tensor, u_top: Tensor, u_left: Tensor, h: int, w: int) -> Tensor:
    """torchvision ``RandomErasing.get_params`` for a batch: (B, 4) int64 (top, left, height, width).

    ``area`` and ``log_ratio`` (B, A) are the attempts' erase fractions and log aspect ratios;
    the first attempt whose box ``round(sqrt(a H W r)) x round(sqrt(a H W / r))`` fits strictly
    inside the image wins; its position is ``floor(u (H - bh + 1))``. No fitting attempt: height 0.
    """
    hw = float(h * w)
    ratio = torch.exp(log_ratio.float())
    bh = torch.round(torch.sqrt(area.float() * hw * ratio)).long()  # (B, A)
    bw = torch.round(torch.sqrt(area.float() * hw / ratio)).long()
    ok = (bh < h) & (bw < w)
    first = torch.where(ok, torch.arange(ok.shape[1], device=ok.device), ok.shape[1]).amin(dim=1)  # (B,)
    found = first < ok.shape[1]
    pick = first.clamp(max=ok.shape[1] - 1)[:, None]
    bh = torch.where(found, bh.gather(1, pick)[:, 0], 0)
    bw = torch.where(found, bw.gather(1, pick)[:, 0], 0)
    top = torch.floor(u_top.float() * (h - bh + 1).float()).long().clamp_(min=0)
    left = torch.floor(u_left.float() * (w - bw + 1).float()).long().clamp_(min=0)
    return torch.stack((top, left, bh, bw), dim=1)


def erase(x: Tensor, boxes: Tensor, value: float) -> Tensor:
    """Set the (top, left, height, width) box of each sample to ``value``, via row/column masks."""
    _, _, h, w = x.shape
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    top, left, bh, bw = boxes.unbind(1)
    rows = (ys >= top[:, None]) & (ys < (top + bh)[:, None])  # (B, H)
    cols = (xs >= left[:, None]) & (xs < (left + bw)[:, None])  # (B, W)
    inside = (rows[:, :, None] & cols[:, None, :])[:, None]  # (B, 1, H, W)
    return x.masked_fill_(inside, value)

