"""Geometric ops on the numpy (Albumentations) backend: a run of ops is one matrix, one resample.

``warp_run`` composes a run with the tensor backend's own ``geometry.compose`` (B = 1; a run of
flips and Zooms from the params' Python values, ``geometry.centre_factors``) and resamples once:
``cv2.warpAffine`` (the same input -> output matrix; OpenCV also puts pixel centres at integers),
or, for an antialiased run that shrinks, the tensor backend's box-integral resample on the part
of the image it reads (``cv2`` has no antialiased affine warp; a ``cv2.resize(INTER_AREA)``
would be a different filter, so both backends share one).
Each op is also an Albumentations transform (``AugkitGeometric`` and its named subclasses)
whose params come from the op's own ``sample`` / ``sample_sized``; those warp one op at a time.
"""

from __future__ import annotations

import warnings
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch

from .. import geometry as G
from ..ops import Affine, CenterCrop, Op, RandomCrop, RandomResizedCrop, Resize, Rot90, Rotate, SizingOp, Translate
from .albu import _Seeded, scale_about_centre
from .albu_targets import MatrixTargets

__all__ = [
    "warp_run",
    "AugkitGeometric",
    "AugkitAffine",
    "AugkitRotate",
    "AugkitTranslate",
    "AugkitRot90",
    "AugkitRandomResizedCrop",
    "AugkitResize",
    "AugkitCenterCrop",
    "AugkitRandomCrop",
]

_CV_BORDER = {"constant": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT, "replicate": cv2.BORDER_REPLICATE}
_CV_INTERP = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}
_DTYPES = {"apply": torch.bool, "k": torch.int64}


def tensor_values(values: dict[str, Any]) -> dict[str, torch.Tensor]:
    """One sample's params as Python values (``host_params``) back to (1,) / (1, k) tensors."""
    return {k: torch.tensor([v], dtype=_DTYPES.get(k, torch.float32)) for k, v in values.items()}


def warp_run(img: np.ndarray, ops: list[Op], values: list[dict[str, torch.Tensor]], *, mask: bool = False,
             host: list[dict[str, Any]] | None = None) -> np.ndarray:
    """Resample an HW / HWC image through a run of geometric ops given one sample's params.

    ``mask``: nearest, constant 0, no antialiasing (label maps). ``host``: the same params as
    Python values (``host_params``), if the caller has them: a run of flips and Zooms then builds
    its matrix from them directly, without the batched composition's small torch ops.
    Shape: (H, W[, C]) -> (H', W'[, C]).
    """
    h, w = img.shape[:2]
    if host is not None and not mask and G.centre_fixing(ops):
        sx, sy = G.centre_factors(ops, host)
        if sx == sy == 1.0:  # no op applies: the identity
            return img
        _, fill, interp, _ = G.run_style(ops)  # flips and Zooms: the constant border
        return scale_about_centre(img, sx, sy, _CV_INTERP[interp], fill)
    values = [op.sample_sized(v, torch.tensor([[h, w]])) if isinstance(op, SizingOp) and "box" not in v else v for op, v in zip(ops, values)]
    rm = G.compose(ops, values, (h, w), clip=not mask)  # one composition: matrix, inverse and crop box
    ho, wo = rm.out_hw
    border, fill, interp, antialias = G.run_style(ops)
    if mask:
        border, fill, interp, antialias = "constant", 0.0, "nearest", False
    separable = rm.separable
    inv = rm.inverse() if antialias and separable else None
    if inv is not None and bool(torch.stack(G.shrink(inv)).max() > 1):
        from .tensor import _warp_one

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a read-only array: read here, never written
            x = torch.from_numpy(np.ascontiguousarray(img.reshape(h, w, -1))).permute(2, 0, 1)[None]
        c = fill * 255 if img.dtype == np.uint8 else fill
        c = c if border == "constant" else 0.0
        y = _warp_one(x, inv, (ho, wo), border, interp, separable, True, rm.clip, c)
        if c:
            y += c
        out = y[0].permute(1, 2, 0).numpy()
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8) if img.dtype == np.uint8 else out.astype(np.float32)
        return out.reshape((ho, wo) + img.shape[2:])
    mat = rm.matrix()[0, :2].double().numpy()
    clip = rm.clip
    if clip is not None:  # a crop inside the image: its taps repeat the box edge, as on the tensor backend
        x0, y0, x1, y1 = clip[0].tolist()
        if all(float(v).is_integer() for v in (x0, y0, x1, y1)) and x0 >= 0 and y0 >= 0 and x1 < w and y1 < h:
            img = img[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1]
            mat = mat.copy()
            mat[:, 2] += mat[:, 0] * x0 + mat[:, 1] * y0
            border = "replicate"
    value = fill * 255 if img.dtype == np.uint8 else fill
    ch = 1 if img.ndim == 2 else img.shape[2]
    out = cv2.warpAffine(img, mat, (wo, ho), flags=_CV_INTERP[interp], borderMode=_CV_BORDER[border], borderValue=(value,) * ch)
    return out.reshape((ho, wo) + img.shape[2:])  # OpenCV drops a trailing 1-channel axis


class AugkitGeometric(MatrixTargets, _Seeded, A.DualTransform):
    """Any augkit geometric op as an Albumentations transform: one warp per call; masks, boxes
    and keypoints through the same matrix (``MatrixTargets``).

    Params are the op's own (``op.sample``, then ``sample_sized`` with the image's size).
    """

    def __init__(self, op: Op, salt: int = 0) -> None:
        super().__init__(p=op.p)
        self.op, self.salt = op, salt
        self.set_random_seed(None)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        return {}

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return warp_run(img, [self.op], [self._values(params)])

    def _values(self, params: dict[str, Any]) -> dict[str, torch.Tensor]:
        keys = self.op.sample(1, _probe()).keys() | ({"box"} if "box" in params else set())
        return tensor_values({k: params[k] for k in keys if k in params})

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("op", "salt")


def _probe() -> Any:
    from ..random import Draw

    return Draw(torch.zeros(1, dtype=torch.int64))


class AugkitAffine(AugkitGeometric):
    """``ak.Affine`` on numpy images: one ``cv2.warpAffine``."""


class AugkitRotate(AugkitGeometric):
    """``ak.Rotate`` on numpy images: one ``cv2.warpAffine``."""


class AugkitTranslate(AugkitGeometric):
    """``ak.Translate`` on numpy images: one ``cv2.warpAffine``."""


class AugkitRot90(AugkitGeometric):
    """``ak.Rot90`` on numpy images (exact)."""


class AugkitRandomResizedCrop(AugkitGeometric):
    """``ak.RandomResizedCrop``: torchvision's box, then one resample (antialiased when shrinking)."""


class AugkitResize(AugkitGeometric):
    """``ak.Resize``: one resample (antialiased when shrinking)."""


class AugkitCenterCrop(AugkitGeometric):
    """``ak.CenterCrop``: the central box; outside the image reads 0."""


class AugkitRandomCrop(AugkitGeometric):
    """``ak.RandomCrop``: a uniform integer box of the padded image."""


TRANSFORMS: dict[type[Op], type[AugkitGeometric]] = {
    Affine: AugkitAffine,
    Rotate: AugkitRotate,
    Translate: AugkitTranslate,
    Rot90: AugkitRot90,
    RandomResizedCrop: AugkitRandomResizedCrop,
    Resize: AugkitResize,
    CenterCrop: AugkitCenterCrop,
    RandomCrop: AugkitRandomCrop,
}
