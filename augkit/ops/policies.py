"""Automatic policies: RandAugment and TrivialAugment (torchvision's op lists and magnitude tables).

Per sample: each of ``num_ops`` slots picks one op of the list uniformly (Identity included),
a magnitude (RandAugment: the fixed bin ``magnitude``; TrivialAugment: a uniform bin) and, for
signed ops, a random sign. A policy is a container: every slot holds the same leaves (two
``Affine`` for the geometric entries, then Brightness, Saturation (torchvision's "Color"),
Contrast, Sharpness, Posterize, Solarize, AutoContrast, Equalize) whose ``apply`` masks are
exclusive within the slot, and ``sample`` writes each leaf's params from the table. The
geometric leaves of a slot are one run, so a slot costs one warp on the tensor backend.

Differences from torchvision, by design: shears are about the image centre (torchvision shears
about the top-left corner, which also shifts the image); resampling is bilinear (torchvision:
nearest); TrivialAugment's translation of up to 32 pixels is 32/224 of the size (equal at 224).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from ..random import Draw
from .base import Op
from .compose import Container
from .filters import Sharpness
from .geometric import Affine
from .photometric import AutoContrast, Brightness, Contrast, Equalize, Posterize, Saturation, Solarize

__all__ = ["RandAugment", "TrivialAugment", "POLICY_OPS"]

# torchvision's op order (``_augmentation_space``): the index each sample's ``<slot>.op`` holds
POLICY_OPS = (
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
    "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
)
SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}
_FACTOR_LEAVES = {"Brightness": "Brightness", "Color": "Saturation", "Contrast": "Contrast", "Sharpness": "Sharpness"}


def _linspace(hi: float, bins: int, lo: float = 0.0) -> list[float]:
    return torch.linspace(lo, hi, bins, dtype=torch.float64).tolist()


def _posterize_bits(bins: int, span: int) -> list[float]:
    # torchvision: 8 - (arange(bins) / ((bins - 1) / span)).round().int(); one bin: 8 bits
    if bins == 1:
        return [8.0]
    return (8 - (torch.arange(bins, dtype=torch.float32) / ((bins - 1) / span)).round()).tolist()


def _check_int(name: str, v: object, low: int, high: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}], got {v!r}")
    return v


@dataclass(frozen=True)
class _Policy(Container):
    """A policy: ``slots`` slots, each one op of ``POLICY_OPS`` per sample, magnitudes from ``table``."""

    def _slots(self) -> int:
        return 1

    def table(self) -> dict[str, list[float]]:
        """Magnitude per bin for each op with one (torchvision's units: shear tan, translate fraction, degrees, ...)."""
        raise NotImplementedError

    def _bins(self, rng: Draw) -> Tensor:
        raise NotImplementedError

    @cached_property
    def _leaf_ops(self) -> list[tuple[str, Op]]:
        """(name, leaf op) of one slot, built once per policy."""
        t = self.table()
        f = max(max(t[k]) for k in _FACTOR_LEAVES)
        deg = max(max(t["Rotate"]), 90.0)
        shear = math.degrees(math.atan(max(t["ShearX"])))
        move = max(t["TranslateX"])
        return [
            ("g0", Affine(rotate=(90.0, 90.0), shear=(-1.0, 1.0))),  # the quarter turn that makes ShearY of ShearX
            ("g1", Affine(rotate=(-deg, deg), translate=(-move, move), shear=(-shear, shear))),
            ("Brightness", Brightness((1 - f, 1 + f))),
            ("Color", Saturation((1 - f, 1 + f))),
            ("Contrast", Contrast((1 - f, 1 + f))),
            ("Sharpness", Sharpness((1 - f, 1 + f))),
            ("Posterize", Posterize((int(min(t["Posterize"])), 8))),
            ("Solarize", Solarize((0.0, 1.0))),
            ("AutoContrast", AutoContrast(p=1.0)),
            ("Equalize", Equalize(p=1.0)),
        ]

    def branches(self) -> list[tuple[str, Op]]:
        return [(f"{s}.{name}", op) for s in range(self._slots()) for name, op in self._leaf_ops]

    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        apply = rng.rand(1)[0] < self.p
        table = {k: torch.tensor(v, device=rng.device) for k, v in self.table().items()}
        signed = torch.tensor([name in SIGNED for name in POLICY_OPS], device=rng.device)
        out: dict[str, Tensor] = {"apply": apply}
        zero = torch.zeros(n, device=rng.device)
        for s in range(self._slots()):
            r = rng.child(s)
            op = torch.where(apply, r.integers(0, len(POLICY_OPS)), -1)  # (n,)
            bins = self._bins(r)  # (n,) int64
            sign = torch.where(r.rand(1)[0] < 0.5, -1.0, 1.0)
            sign = torch.where(signed[op.clamp(min=0)], sign, 1.0)
            mag = zero.clone()
            for j, name in enumerate(POLICY_OPS):
                if name in table:
                    mag = torch.where(op == j, table[name][bins].float(), mag)
            mag = mag * sign
            out[f"{s}.op"], out[f"{s}.magnitude"] = op, mag
            on = {name: op == j for j, name in enumerate(POLICY_OPS)}
            is_shear = on["ShearX"] | on["ShearY"]
            g1 = on["ShearX"] | on["ShearY"] | on["TranslateX"] | on["TranslateY"] | on["Rotate"]
            angle = torch.where(on["Rotate"], mag, torch.where(on["ShearY"], -90.0, 0.0))
            tx = torch.where(on["TranslateX"], mag, 0.0)
            ty = torch.where(on["TranslateY"], mag, 0.0)
            shear = torch.where(is_shear, torch.rad2deg(torch.atan(mag)), 0.0)
            one = torch.ones(n, device=rng.device)
            leaf = {
                "g0": {"apply": on["ShearY"], "scale": one, "angle": one * 90.0, "translate": torch.zeros(n, 2, device=rng.device), "shear": zero},
                "g1": {"apply": g1, "scale": one, "angle": angle, "translate": torch.stack((tx, ty), 1), "shear": shear},
                "Posterize": {"apply": on["Posterize"], "bits": torch.where(on["Posterize"], mag, 8.0).long()},
                "Solarize": {"apply": on["Solarize"], "threshold": torch.where(on["Solarize"], mag, 1.0)},
                "AutoContrast": {"apply": on["AutoContrast"]},
                "Equalize": {"apply": on["Equalize"]},
            }
            for name in _FACTOR_LEAVES:
                leaf[name] = {"apply": on[name], "factor": torch.where(on[name], 1.0 + mag, 1.0)}
            for name, _ in self._leaf_ops:
                out |= {f"{s}.{name}.{k}": v for k, v in leaf[name].items()}
        return out


@dataclass(frozen=True)
class RandAugment(_Policy):
    """torchvision ``RandAugment``: ``num_ops`` ops per sample, each uniform over the 14, at bin ``magnitude``.

    Magnitude tables (``num_magnitude_bins`` bins from 0): shear tan 0..0.3, translate 0..150/331
    of the size, rotate 0..30 degrees, brightness/color/contrast/sharpness factor 1 +- 0..0.9,
    posterize 8 - round(4 i / (bins - 1)) bits, solarize threshold 1..0. Params: ``apply``, per
    slot s ``"<s>.op"`` (index into ``POLICY_OPS``, -1 if not applied), ``"<s>.magnitude"`` (signed)
    and the leaves' params under ``"<s>.<leaf>.<key>"``.
    """

    num_ops: int = 2
    magnitude: int = 9
    num_magnitude_bins: int = 31

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_int("RandAugment.num_ops", self.num_ops, 0, 16)
        _check_int("RandAugment.num_magnitude_bins", self.num_magnitude_bins, 1, 1024)
        _check_int("RandAugment.magnitude", self.magnitude, 0, self.num_magnitude_bins - 1)
        object.__setattr__(self, "kind", "container")

    def _slots(self) -> int:
        return self.num_ops

    def table(self) -> dict[str, list[float]]:
        b = self.num_magnitude_bins
        factor = _linspace(0.9, b)
        return {
            "ShearX": _linspace(0.3, b), "ShearY": _linspace(0.3, b),
            "TranslateX": _linspace(150.0 / 331.0, b), "TranslateY": _linspace(150.0 / 331.0, b),
            "Rotate": _linspace(30.0, b),
            "Brightness": factor, "Color": factor, "Contrast": factor, "Sharpness": factor,
            "Posterize": _posterize_bits(b, 4), "Solarize": _linspace(0.0, b, lo=1.0),
        }

    def _bins(self, rng: Draw) -> Tensor:
        return torch.full((rng.n,), self.magnitude, dtype=torch.int64, device=rng.device)


@dataclass(frozen=True)
class TrivialAugment(_Policy):
    """torchvision ``TrivialAugmentWide``: one op per sample, uniform over the 14, at a uniform bin.

    Magnitude tables (``num_magnitude_bins`` bins from 0): shear tan 0..0.99, translate 0..32/224
    of the size (torchvision: 0..32 pixels), rotate 0..135 degrees, brightness/color/contrast/
    sharpness factor 1 +- 0..0.99, posterize 8 - round(6 i / (bins - 1)) bits, solarize threshold
    1..0. Params as ``RandAugment``'s with one slot.
    """

    num_magnitude_bins: int = 31

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_int("TrivialAugment.num_magnitude_bins", self.num_magnitude_bins, 1, 1024)
        object.__setattr__(self, "kind", "container")

    def table(self) -> dict[str, list[float]]:
        b = self.num_magnitude_bins
        factor = _linspace(0.99, b)
        return {
            "ShearX": _linspace(0.99, b), "ShearY": _linspace(0.99, b),
            "TranslateX": _linspace(32.0 / 224.0, b), "TranslateY": _linspace(32.0 / 224.0, b),
            "Rotate": _linspace(135.0, b),
            "Brightness": factor, "Color": factor, "Contrast": factor, "Sharpness": factor,
            "Posterize": _posterize_bits(b, 6), "Solarize": _linspace(0.0, b, lo=1.0),
        }

    def _bins(self, rng: Draw) -> Tensor:
        return rng.integers(0, self.num_magnitude_bins)
