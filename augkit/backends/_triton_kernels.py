"""Triton kernels of the fused path (imported only by ``augkit.backends.fused``, only when used).

One kernel, ``fused_run``, does a whole run: compose the run's geometric ops into one inverse
matrix per sample (output pixel -> input pixel), sample the input (uint8 or float32) at the
mapped position (bilinear or nearest; constant / reflect / replicate border), apply the chain of
pointwise ops, and store float32. A run with Contrast launches it twice: first with ``REDUCE``,
which stops before the Contrast and writes one partial grey sum per (sample, tile), then the full
chain, which sums a sample's partials in a fixed order (no atomics: replay is exact).

Ops are slots chosen by ``tl.constexpr`` codes, so each plan compiles to straight-line code.
Adding a pointwise op: a code below, a branch in ``_pointwise`` (v is (CP, TILE) float32 in
[0, 1] units, channel c on axis 0), and an entry in ``fused.POINTWISE``.
The arithmetic mirrors the torch path (``augkit.functional``); tests compare the two.
"""

from __future__ import annotations

import triton
import triton.language as tl

# geometric op codes (fused.GEOMETRIC)
G_HFLIP = tl.constexpr(1)
G_VFLIP = tl.constexpr(2)
G_ZOOM = tl.constexpr(3)
G_MATRIX = tl.constexpr(4)  # a precomputed (B, 2, 3) output -> input matrix
# pointwise op codes (fused.POINTWISE)
P_CONTRAST = tl.constexpr(1)
P_NOISE = tl.constexpr(2)
P_NORMALIZE = tl.constexpr(3)
# borders and interpolations
B_CONSTANT = tl.constexpr(0)
B_REFLECT = tl.constexpr(1)
B_REPLICATE = tl.constexpr(2)
I_BILINEAR = tl.constexpr(0)
I_NEAREST = tl.constexpr(1)
# murmur3 fmix32 constants and the noise hash's golden-ratio counter multiplier (functional.py)
GOLDEN = tl.constexpr(0x9E3779B9)
M1 = tl.constexpr(0x85EBCA6B)
M2 = tl.constexpr(0xC2B2AE35)
TWO_PI_65536 = tl.constexpr(9.587379924285257e-05)  # 2 pi / 2**16, rounded to float32 as torch does
INV_65536 = tl.constexpr(1.52587890625e-05)  # 2**-16, exact


@triton.jit
def _compose(a0, a1, a2, a3, a4, a5, code: tl.constexpr, P, b, W, H):
    """A := A o inv(op): the inverse of one op, applied first to output coordinates."""
    if code == G_HFLIP:
        on = tl.load(P[0] + b) != 0
        s = tl.where(on, -1.0, 1.0)
        t = tl.where(on, W - 1.0, 0.0)
        a2 = a0 * t + a2
        a5 = a3 * t + a5
        a0 = a0 * s
        a3 = a3 * s
    elif code == G_VFLIP:
        on = tl.load(P[0] + b) != 0
        s = tl.where(on, -1.0, 1.0)
        t = tl.where(on, H - 1.0, 0.0)
        a2 = a1 * t + a2
        a5 = a4 * t + a5
        a1 = a1 * s
        a4 = a4 * s
    elif code == G_ZOOM:  # u -> (u - c) / s + c about the centre c
        on = tl.load(P[0] + b) != 0
        r = 1.0 / tl.where(on, tl.load(P[1] + b).to(tl.float32), 1.0)
        tx = (W - 1.0) * 0.5 * (1.0 - r)
        ty = (H - 1.0) * 0.5 * (1.0 - r)
        a2 = a0 * tx + a1 * ty + a2
        a5 = a3 * tx + a4 * ty + a5
        a0 = a0 * r
        a1 = a1 * r
        a3 = a3 * r
        a4 = a4 * r
    elif code == G_MATRIX:
        m = P[0] + b * 6
        m0 = tl.load(m)
        m1 = tl.load(m + 1)
        m2 = tl.load(m + 2)
        m3 = tl.load(m + 3)
        m4 = tl.load(m + 4)
        m5 = tl.load(m + 5)
        n2 = a0 * m2 + a1 * m5 + a2
        n5 = a3 * m2 + a4 * m5 + a5
        n0 = a0 * m0 + a1 * m3
        n1 = a0 * m1 + a1 * m4
        n3 = a3 * m0 + a4 * m3
        n4 = a3 * m1 + a4 * m4
        a0, a1, a2, a3, a4, a5 = n0, n1, n2, n3, n4, n5
    return a0, a1, a2, a3, a4, a5


@triton.jit
def _tap(base, xi, yi, W, H, a_in, b_in, fill, mask, BORDER: tl.constexpr):
    """Input values at integer pixel (xi, yi), in [0, 1] units; outside the image per BORDER."""
    if BORDER == B_CONSTANT:
        inside = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
        v = tl.load(base + yi * W + xi, mask=mask & inside, other=0).to(tl.float32) * a_in + b_in
        v = tl.where(inside, v, fill)
    else:
        if BORDER == B_REFLECT:  # mirror about the edge: -1 -> 0, W -> W - 1 (np.pad 'symmetric')
            xi = xi % (2 * W)
            xi = tl.where(xi < 0, xi + 2 * W, xi)
            xi = tl.where(xi >= W, 2 * W - 1 - xi, xi)
            yi = yi % (2 * H)
            yi = tl.where(yi < 0, yi + 2 * H, yi)
            yi = tl.where(yi >= H, 2 * H - 1 - yi, yi)
        else:
            xi = tl.minimum(tl.maximum(xi, 0), W - 1)
            yi = tl.minimum(tl.maximum(yi, 0), H - 1)
        v = tl.load(base + yi * W + xi, mask=mask, other=0).to(tl.float32) * a_in + b_in
    return v


@triton.jit
def _fmix32(h):
    h = h ^ (h >> 16)
    h = h * M1
    h = h ^ (h >> 13)
    h = h * M2
    h = h ^ (h >> 16)
    return h


@triton.jit
def _pointwise(v, code: tl.constexpr, P, b, c, cmask, e, n, part_ptr, T, TB: tl.constexpr, C: tl.constexpr, npix):
    """One pointwise op on v (CP, TILE) float32; c (CP, 1) channel index, e (CP, TILE) element index."""
    if code == P_CONTRAST:
        on = tl.load(P[0] + b) != 0
        f = tl.where(on, tl.load(P[1] + b).to(tl.float32), 1.0)
        k = tl.arange(0, TB)
        m = tl.sum(tl.load(part_ptr + b * T + k, mask=k < T, other=0.0), axis=0) / npix
        v = tl.minimum(tl.maximum(v * f + m * (1.0 - f), 0.0), 1.0)
    elif code == P_NOISE:
        on = tl.load(P[0] + b) != 0
        std = tl.where(on, tl.load(P[1] + b).to(tl.float32), 0.0)
        var2 = -2.0 * (std * std)
        key = tl.load(P[2] + b).to(tl.uint32)
        half = (n + 1) // 2
        first = e < half
        j = tl.where(first, e, e - half).to(tl.uint32)
        h = _fmix32(_fmix32((j + 1) * GOLDEN) + key)
        t = (h & 0xFFFF).to(tl.float32)
        r = tl.sqrt(tl.log((t + 1.0) * INV_65536) * var2)
        s = (h.to(tl.int32, bitcast=True) >> 16).to(tl.float32)
        theta = s * TWO_PI_65536
        z = tl.where(first, tl.cos(theta), tl.sin(theta)) * r
        v = tl.minimum(tl.maximum(v + z, 0.0), 1.0)
    elif code == P_NORMALIZE:
        mean = tl.load(P[0] + c, mask=cmask, other=0.0)
        std = tl.load(P[1] + c, mask=cmask, other=1.0)
        v = (v - mean) / std
    return v


@triton.jit
def fused_run(x_ptr, out_ptr, part_ptr, a_in, b_in, fill,
              GP, GCODES: tl.constexpr, PP, PCODES: tl.constexpr,
              H, W, HO, WO, T,
              C: tl.constexpr, CP: tl.constexpr, BORDER: tl.constexpr, INTERP: tl.constexpr,
              STOP: tl.constexpr, REDUCE: tl.constexpr, TB: tl.constexpr, TILE: tl.constexpr):
    """Program (b, t): output pixels [t * TILE, (t + 1) * TILE) of sample b, every channel."""
    b = tl.program_id(0)
    t = tl.program_id(1)
    npix = HO * WO
    p = t * TILE + tl.arange(0, TILE)  # (TILE,) output pixel index
    pmask = p < npix
    ox = (p % WO).to(tl.float32)
    oy = (p // WO).to(tl.float32)
    Wf = W + 0.0  # float; works too when Triton specialises a size of 1 into a constant
    Hf = H + 0.0
    a0, a1, a2, a3, a4, a5 = 1.0, 0.0, 0.0, 0.0, 1.0, 0.0
    for i in tl.static_range(len(GCODES)):
        a0, a1, a2, a3, a4, a5 = _compose(a0, a1, a2, a3, a4, a5, GCODES[i], GP[i], b, Wf, Hf)
    sx = (a0 * ox + a1 * oy + a2)[None, :]  # (1, TILE) input position
    sy = (a3 * ox + a4 * oy + a5)[None, :]
    c = tl.arange(0, CP)[:, None]  # (CP, 1)
    cmask = c < C
    mask = cmask & pmask[None, :]
    base = x_ptr + b.to(tl.int64) * (C * H * W) + c * (H * W)
    if INTERP == I_NEAREST:  # round half to even, as grid_sample's nearbyint
        rx = tl.floor(sx + 0.5)
        rx = tl.where((rx - sx == 0.5) & (rx % 2 != 0), rx - 1.0, rx)
        ry = tl.floor(sy + 0.5)
        ry = tl.where((ry - sy == 0.5) & (ry % 2 != 0), ry - 1.0, ry)
        v = _tap(base, rx.to(tl.int32), ry.to(tl.int32), W, H, a_in, b_in, fill, mask, BORDER)
    else:
        fx0 = tl.floor(sx)
        fy0 = tl.floor(sy)
        fx = sx - fx0
        fy = sy - fy0
        x0 = fx0.to(tl.int32)
        y0 = fy0.to(tl.int32)
        v = (_tap(base, x0, y0, W, H, a_in, b_in, fill, mask, BORDER) * ((1.0 - fx) * (1.0 - fy))
             + _tap(base, x0 + 1, y0, W, H, a_in, b_in, fill, mask, BORDER) * (fx * (1.0 - fy))
             + _tap(base, x0, y0 + 1, W, H, a_in, b_in, fill, mask, BORDER) * ((1.0 - fx) * fy)
             + _tap(base, x0 + 1, y0 + 1, W, H, a_in, b_in, fill, mask, BORDER) * (fx * fy))
    e = c * npix + p[None, :]  # (CP, TILE) element index within the sample (C, HO, WO)
    for i in tl.static_range(len(PCODES)):
        if (not REDUCE) or (i < STOP):
            v = _pointwise(v, PCODES[i], PP[i], b, c, cmask, e, C * npix, part_ptr, T, TB, C, npix)
    if REDUCE:  # partial grey sum of this tile: ITU-R 601 luma for 3 channels, the channel for 1
        if C == 3:
            wgt = tl.where(c == 0, 0.299, tl.where(c == 1, 0.587, 0.114))
        else:
            wgt = tl.where(c == 0, 1.0, 0.0)
        grey = tl.where(mask, v * wgt, 0.0)
        tl.store(part_ptr + b * T + t, tl.sum(tl.sum(grey, axis=1), axis=0))
    else:
        tl.store(out_ptr + b.to(tl.int64) * (C * npix) + e, v, mask=mask)


@triton.jit
def noise_hash(out_ptr, key, n, BLOCK: tl.constexpr):
    """out[j] = the noise hash of pair j under ``key`` (int32 bits), for tests against functional.py."""
    j = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    h = _fmix32(_fmix32((j.to(tl.uint32) + 1) * GOLDEN) + key.to(tl.uint32))
    tl.store(out_ptr + j, h.to(tl.int32, bitcast=True), mask=j < n)
