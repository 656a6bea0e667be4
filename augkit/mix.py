"""Batch mixing: MixUp and CutMix (torchvision v2 semantics, per-sample lambda), with soft labels.

``x, y = mix(x, labels)``: ``x`` (B, C, H, W) float, ``labels`` (B,) int in [0, num_classes) or
(B, K) soft labels -> mixed images and (B, K) float32 soft labels. Sample b is mixed with sample
``index[b]`` of a seeded permutation of the batch, with its own lambda ~ Beta(alpha, alpha):
MixUp blends whole images, CutMix pastes a box of the partner and sets lambda to the share of
the image left unpasted (torchvision's clipped-box correction). Params (``lam``, ``index``,
CutMix's ``center``) come back with ``return_params=True`` and replay with ``params=``.

Beta draws are counter-based like every augkit param (``augkit.random.Draw``): Gamma variates
by Marsaglia-Tsang with a fixed number of vectorized rounds, in log space so tiny alphas do not
underflow; no Python loop over samples.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .ops.base import check_number, check_p
from .random import KEY_HIGH, Draw

__all__ = ["MixUp", "CutMix", "sample_beta"]

_ROUNDS = 12  # Marsaglia-Tsang rounds: acceptance >= 0.95 per round, so all rejecting is < 1e-15


def _normals(rng: Draw, k: int) -> Tensor:
    """(k, n) standard normals by Box-Muller from 2k uniforms."""
    u = rng.rand(2 * k)
    r = torch.sqrt(-2.0 * torch.log1p(-u[:k]))  # 1 - u in (0, 1]
    return r * torch.cos(2 * math.pi * u[k:])


def _log_gamma_variate(shape: float, rng: Draw) -> Tensor:
    """(n,) log of Gamma(shape, 1) draws (Marsaglia-Tsang; shape < 1 boosted by U^(1/shape))."""
    boost = shape < 1.0
    d = (shape + 1.0 if boost else shape) - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    z = _normals(rng, _ROUNDS)  # (R, n)
    u = rng.rand(_ROUNDS)
    v = (1.0 + c * z) ** 3
    ok = (v > 0) & (torch.log1p(-u) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp(min=1e-30)))
    first = torch.where(ok, torch.arange(_ROUNDS, device=z.device)[:, None], _ROUNDS).amin(0)  # (n,)
    v_acc = v.gather(0, first.clamp(max=_ROUNDS - 1)[None])[0]
    v_acc = torch.where(first < _ROUNDS, v_acc, 1.0)  # never in practice: the mode
    log_g = math.log(d) + torch.log(v_acc)
    if boost:
        log_g = log_g + torch.log1p(-rng.rand(1)[0]) / shape
    return log_g


def sample_beta(alpha: float, beta: float, rng: Draw) -> Tensor:
    """(n,) float32 Beta(alpha, beta) draws, keyed per sample by ``rng``."""
    lx = _log_gamma_variate(alpha, rng.child(0))
    ly = _log_gamma_variate(beta, rng.child(1))
    return torch.sigmoid(lx - ly).float()  # x / (x + y)


class _Mix:
    """Shared checks, randomness and label handling of MixUp and CutMix."""

    name = "Mix"

    def __init__(self, alpha: float, num_classes: int, *, p: float = 1.0, seed: int | None = None) -> None:
        self.alpha = check_number(f"{self.name}.alpha", alpha, low=1e-3, high=1e3)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"{self.name}.num_classes must be an int >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.p = check_p(self.name, p)
        if seed is None:
            seed = int(torch.randint(0, 2**31, ()).item())
        self.seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}

    def __repr__(self) -> str:
        return f"{self.name}(alpha={self.alpha}, num_classes={self.num_classes}, p={self.p}, seed={self.seed})"

    def generator(self, device: torch.device | str = "cpu") -> torch.Generator:
        device = torch.device(device)
        g = self._generators.get(device)
        if g is None:
            g = self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return g

    def sample(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Params for a batch of ``n``: ``index`` (n,) a permutation, ``lam`` (n,) (1 where not applied), ..."""
        g = generator if generator is not None else self.generator(device)
        keys = torch.randint(0, KEY_HIGH - 1, (n,), generator=g, device=g.device)
        index = torch.randperm(n, generator=g, device=g.device)
        rng = Draw(keys)
        apply = rng.rand(1)[0] < self.p
        lam = torch.where(apply, sample_beta(self.alpha, self.alpha, rng.child(0)), 1.0)
        return {"apply": apply, "lam": lam, "index": index, **self._extra(rng)}

    def _extra(self, rng: Draw) -> dict[str, Tensor]:
        return {}

    def _mix(self, x: Tensor, params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(mixed images, (B,) share of each image that is its own)."""
        raise NotImplementedError

    def _check(self, x: Any, labels: Any) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 4 or not x.dtype.is_floating_point:
            got = f"shape {tuple(x.shape)} dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{self.name}: x must be a (B, C, H, W) float tensor (after augmentation), got {got}")
        if not isinstance(labels, Tensor) or labels.shape[:1] != x.shape[:1]:
            got = f"shape {tuple(labels.shape)}" if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(f"{self.name}: labels must be a tensor with the batch size {x.shape[0]} of x, got {got}")
        k = self.num_classes
        if labels.dim() == 1 and not labels.dtype.is_floating_point and labels.dtype != torch.bool:
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
                raise ValueError(f"{self.name}: labels must be ints in [0, {k}), got min {int(labels.min())} max {int(labels.max())}")
            return torch.nn.functional.one_hot(labels.long(), k).to(torch.float32)
        if labels.dim() == 2 and labels.dtype.is_floating_point and labels.shape[1] == k:
            return labels.float()
        raise ValueError(f"{self.name}: labels must be (B,) ints or (B, {k}) soft labels, got shape {tuple(labels.shape)} dtype {labels.dtype}")

    def __call__(self, x: Tensor, labels: Tensor, *, params: dict[str, Tensor] | None = None,
                 return_params: bool = False, generator: torch.Generator | None = None) -> Any:
        soft = self._check(x, labels)
        if params is None:
            params = self.sample(x.shape[0], x.device, generator)
        params = {k: v.to(x.device) for k, v in params.items()}
        if params["index"].shape != (x.shape[0],):
            raise ValueError(f"{self.name}: params are for a batch of {len(params['index'])}, x has {x.shape[0]}")
        y, lam = self._mix(x, params)  # lam: (B,) the share of each image that is its own
        lam = lam.to(soft.dtype)[:, None]
        mixed = lam * soft + (1 - lam) * soft[params["index"]]
        return (y, mixed, params) if return_params else (y, mixed)


class MixUp(_Mix):
    """out_b = lam_b x_b + (1 - lam_b) x_index[b], labels alike; lam_b ~ Beta(alpha, alpha) per sample."""

    name = "MixUp"

    def __init__(self, alpha: float = 0.2, num_classes: int = 10, *, p: float = 1.0, seed: int | None = None) -> None:
        super().__init__(alpha, num_classes, p=p, seed=seed)

    def _mix(self, x: Tensor, params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        lam = params["lam"].to(x.dtype)
        w = lam.view(-1, 1, 1, 1)
        return torch.lerp(x[params["index"]], x, w), lam


def cutmix_boxes(lam: Tensor, center: Tensor, h: int, w: int) -> Tensor:
    """torchvision CutMix boxes (B, 4) int64 (x1, y1, x2, y2): centre (floor(u W), floor(u H)),
    half sides int(r W), int(r H) with r = sqrt(1 - lam) / 2, clipped to the image."""
    rx = torch.floor(center[:, 0] * w).long()
    ry = torch.floor(center[:, 1] * h).long()
    r = 0.5 * torch.sqrt((1.0 - lam.double()).clamp(min=0))
    hw_, hh = torch.floor(r * w).long(), torch.floor(r * h).long()
    x1, y1 = (rx - hw_).clamp(min=0), (ry - hh).clamp(min=0)
    x2, y2 = (rx + hw_).clamp(max=w), (ry + hh).clamp(max=h)
    return torch.stack((x1, y1, x2, y2), 1)


class CutMix(_Mix):
    """Paste the box of x_index[b] into x_b; lam_b = 1 - box area / image area (after clipping)."""

    name = "CutMix"

    def __init__(self, alpha: float = 1.0, num_classes: int = 10, *, p: float = 1.0, seed: int | None = None) -> None:
        super().__init__(alpha, num_classes, p=p, seed=seed)

    def _extra(self, rng: Draw) -> dict[str, Tensor]:
        return {"center": rng.child(1).rand(2).T.contiguous()}  # (n, 2) uniforms: (x, y)

    def _mix(self, x: Tensor, params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        _, _, h, w = x.shape
        lam = torch.where(params["apply"], params["lam"], 1.0)
        x1, y1, x2, y2 = cutmix_boxes(lam, params["center"], h, w).unbind(1)
        ys = torch.arange(h, device=x.device)[None]
        xs = torch.arange(w, device=x.device)[None]
        rows = (ys >= y1[:, None]) & (ys < y2[:, None])  # (B, H)
        cols = (xs >= x1[:, None]) & (xs < x2[:, None])  # (B, W)
        inside = (rows[:, :, None] & cols[:, None, :])[:, None]  # (B, 1, H, W)
        out = torch.where(inside, x[params["index"]], x)
        area = ((x2 - x1) * (y2 - y1)).double() / (h * w)
        return out, (1.0 - area).float()
