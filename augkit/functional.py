"""Pure tensor kernels: tensors and explicit params in, tensor out. No state, no RNG objects.

Geometric ops are 3x3 matrices in pixel coordinates (pixel centres at integers, x to the
right, y down) mapping input positions to output positions, as Kornia's ``warp_affine``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "hflip_matrix",
    "vflip_matrix",
    "zoom_matrix",
    "flip_gather",
    "warp_axis_aligned",
    "grey_mean",
    "normal_field",
    "GREY_WEIGHTS",
]

GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as PIL's convert("L") and torchvision


def _diag_matrix(ax: Tensor, bx: Tensor, ay: Tensor, by: Tensor) -> Tensor:
    """(B,) scale and shift per axis -> (B, 3, 3) [[ax, 0, bx], [0, ay, by], [0, 0, 1]]."""
    m = torch.zeros(len(ax), 3, 3, dtype=torch.float32, device=ax.device)
    m[:, 0, 0], m[:, 0, 2], m[:, 1, 1], m[:, 1, 2], m[:, 2, 2] = ax, bx, ay, by, 1.0
    return m


def hflip_matrix(apply: Tensor, width: int) -> Tensor:
    """x -> (W - 1) - x for samples where ``apply`` (B,) is true, identity elsewhere."""
    ax = 1.0 - 2.0 * apply.float()  # -1 flipped, +1 kept
    one, zero = torch.ones_like(ax), torch.zeros_like(ax)
    return _diag_matrix(ax, (1.0 - ax) / 2 * (width - 1), one, zero)


def vflip_matrix(apply: Tensor, height: int) -> Tensor:
    """y -> (H - 1) - y for samples where ``apply`` (B,) is true, identity elsewhere."""
    ay = 1.0 - 2.0 * apply.float()
    one, zero = torch.ones_like(ay), torch.zeros_like(ay)
    return _diag_matrix(one, zero, ay, (1.0 - ay) / 2 * (height - 1))


def zoom_matrix(scale: Tensor, apply: Tensor, height: int, width: int) -> Tensor:
    """Scale by ``scale`` (B,) about the centre ((W-1)/2, (H-1)/2); identity where not ``apply``."""
    s = torch.where(apply, scale.float(), torch.ones_like(scale, dtype=torch.float32))
    cx, cy = (width - 1) / 2, (height - 1) / 2
    return _diag_matrix(s, cx * (1 - s), s, cy * (1 - s))


def flip_gather(img: Tensor, hflip: Tensor, vflip: Tensor, out: Tensor) -> Tensor:
    """Flip W where ``hflip`` (B,) and H where ``vflip`` (B,) by one gather; any dtype, exact.

    Shape: img (B, C, H, W) -> out (B, C, H, W).
    """
    b, c, h, w = img.shape
    cols = torch.arange(w, device=img.device)
    rows = torch.arange(h, device=img.device)
    cols = torch.where(hflip[:, None], w - 1 - cols, cols)  # (B, W)
    rows = torch.where(vflip[:, None], h - 1 - rows, rows)  # (B, H)
    flat = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    torch.gather(img.reshape(b, c, h * w), 2, flat, out=out.view(b, c, h * w))
    return out


def warp_axis_aligned(img: Tensor, matrix: Tensor, out: Tensor, grid: Tensor) -> Tensor:
    """Bilinear warp by per-sample axis-aligned matrices; outside the image reads 0.

    ``matrix`` (B, 3, 3) maps input to output pixel coordinates and has no rotation or
    shear, so the sampling grid is built from two 1-D ramps instead of ``affine_grid``.
    Shape: img (B, C, H, W) float -> out (B, C, H, W); grid is a (B, H, W, 2) float buffer.
    """
    b, _, h, w = img.shape
    assert not matrix[:, 0, 1].any() and not matrix[:, 1, 0].any(), "axis-aligned matrices only"
    xs = torch.arange(w, device=img.device, dtype=torch.float32)
    ys = torch.arange(h, device=img.device, dtype=torch.float32)
    # output pixel j reads input (j - b) / a; grid_sample wants (2 * src + 1) / size - 1
    gx = ((xs[None] - matrix[:, 0, 2, None]) / matrix[:, 0, 0, None] * 2 + 1) / w - 1  # (B, W)
    gy = ((ys[None] - matrix[:, 1, 2, None]) / matrix[:, 1, 1, None] * 2 + 1) / h - 1  # (B, H)
    grid[..., 0].copy_(gx[:, None, :])
    grid[..., 1].copy_(gy[:, :, None])
    # bilinear (0), zero padding (0), align_corners=False: the kernel Kornia's warp_affine calls
    return torch.ops.aten.grid_sampler_2d.out(img, grid, 0, 0, False, out=out)


def grey_mean(img: Tensor) -> Tensor:
    """Per-image mean grey level: ITU-R 601 luma for 3 channels, the channel for 1.

    Shape: img (B, C, H, W) any dtype -> (B,) float32, in the units of ``img``.
    """
    b, c = img.shape[:2]
    # float64 sums: the result must not depend on how a reduction is split across threads
    # or on the batch it sits in (offline expansion promises byte-identical outputs)
    means = img.reshape(b, c, -1).sum(-1, dtype=torch.float64) / (img.shape[2] * img.shape[3])  # (B, C)
    if c == 1:
        return means[:, 0].float()
    return (means @ torch.tensor(GREY_WEIGHTS, dtype=torch.float64, device=img.device)).float()


# Counter-based Gaussian noise: each sample's field is a pure function of (seed, element
# index), as JAX's threefry or CUDA's Philox, so it is the same for any batch split and
# replays from a (B,) int64 seed. murmur3's 32-bit finalizer hashes the counter; Box-Muller
# turns the two 16-bit halves of each hash into two normals.
_GOLDEN = 0x9E3779B9 - 2**32  # constants as int32 bit patterns
_M1 = 0x85EBCA6B - 2**32
_M2 = 0xC2B2AE35 - 2**32


def _fmix32_(h: Tensor, tmp: Tensor) -> Tensor:
    """murmur3 fmix32 in place on int32 (shifts made logical by masking)."""
    for shift, mult in ((16, _M1), (13, _M2), (16, None)):
        torch.bitwise_right_shift(h, shift, out=tmp)
        tmp.bitwise_and_((1 << (32 - shift)) - 1)
        h.bitwise_xor_(tmp)
        if mult is not None:
            h.mul_(mult)
    return h


def normal_field(seed: Tensor, std: Tensor, out: Tensor, work: tuple[Tensor, Tensor, Tensor] | None = None) -> Tensor:
    """Fill ``out`` (B, N) with std[b] * N(0, 1) noise keyed by ``seed`` (B,) int64 in [0, 2**31).

    ``work`` optionally holds reusable buffers: two int32 and one float32, each (B, ceil(N/2)).
    Normals are quantized to 16-bit uniforms, so |z| <= 4.7.
    """
    b, n = out.shape
    half = (n + 1) // 2
    dev = out.device
    if work is None:
        work = (
            torch.empty(b, half, dtype=torch.int32, device=dev),
            torch.empty(b, half, dtype=torch.int32, device=dev),
            torch.empty(b, half, dtype=torch.float32, device=dev),
        )
    h, tmp, r = work
    key = _fmix32_((seed.to(torch.int64) & 0x7FFFFFFF).to(torch.int32).mul_(_M2), torch.empty(b, dtype=torch.int32, device=dev))
    counter = torch.arange(half, dtype=torch.int32, device=dev).mul_(_GOLDEN)  # (half,)
    torch.add(counter[None, :], key[:, None], out=h)
    _fmix32_(h, tmp)
    # radius from the low half: u1 in (0, 1]
    torch.bitwise_and(h, 0xFFFF, out=tmp)
    torch.add(tmp, 1, out=r)  # int -> float
    r.mul_(1.0 / 65536).log_().mul_((-2.0 * std.float().square())[:, None]).sqrt_()
    # angle from the high half: u2 in [0, 1)
    h.bitwise_right_shift_(16).bitwise_and_(0xFFFF)
    theta = out[:, :half]
    torch.mul(h, 2 * math.pi / 65536, out=theta)
    rest = n - half
    torch.sin(theta[:, :rest], out=out[:, half:])
    theta.cos_()
    theta.mul_(r)
    out[:, half:].mul_(r[:, :rest])
    return out
