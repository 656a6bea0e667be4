"""Albumentations target methods for augkit's geometric transforms, from the op's own matrix.

``MatrixTargets`` gives a ``_Seeded`` transform ``apply_to_mask``, ``apply_to_bboxes`` and
``apply_to_keypoints``: the transform's params go back through ``augkit.geometry.run_matrix``
(the matrix the tensor backend warps with) and the per-kind kernels of ``augkit.targets``.
Albumentations' conventions inside a Compose: boxes arrive normalized ([0, 1] edge
coordinates of the input) and leave normalized to the output; clipping and ``min_visibility``
are the Compose's (``BboxParams``); keypoints ``(x, y, z, angle, scale, ...)`` are in pixels with
centres at integers (``A.HorizontalFlip`` sends x to W - 1 - x).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from albumentations.core.type_definitions import Targets

from .. import targets as T
from ..geometry import run_style
from ..ops import Op
from ..params import Params
from ..random import Draw

__all__ = ["MatrixTargets", "op_params"]


def op_params(op: Op, values: dict[str, Any]) -> Params:
    """One sample's host params (``_Seeded.get_params``) back as a batch-of-one ``Params`` for ``op``.

    Keys the op does not draw (Albumentations adds ``shape`` and others) are left out.
    """
    keys = _param_keys(op)
    return Params((type(op).__name__,), ({k: torch.tensor([values[k]]) for k in keys if k in values},))


_KEYS: dict[Op, tuple[str, ...]] = {}


def _param_keys(op: Op) -> tuple[str, ...]:
    keys = _KEYS.get(op)
    if keys is None:
        keys = _KEYS[op] = tuple(op.sample(1, Draw(torch.zeros(1, dtype=torch.int64))))
    return keys


class MatrixTargets:
    """Mixin for a geometric ``_Seeded`` transform: masks, boxes and keypoints from its matrix."""

    _targets = (Targets.IMAGE, Targets.MASK, Targets.BBOXES, Targets.KEYPOINTS)
    op: Op
    mask_fill: int = 0  # set by ``to_compose`` from the pipeline's ``mask_fill``

    def _matrix(self, params: dict[str, Any], hw: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        # the matrix is the identity where ``apply`` is false (a RandomResizedCrop still resizes then)
        m, out_hw = T.pipeline_matrix([self.op], op_params(self.op, params), hw)
        return m, out_hw

    def apply_to_mask(self, mask: np.ndarray, **params: Any) -> np.ndarray:
        m, out_hw = self._matrix(params, mask.shape[:2])
        t = torch.from_numpy(np.ascontiguousarray(mask))
        t = t[None, None] if mask.ndim == 2 else t.permute(2, 0, 1)[None]  # (1, K, H, W)
        out = T.warp_masks(t, m, out_hw, self.mask_fill, run_style([self.op])[0])[0]
        return out[0].numpy() if mask.ndim == 2 else np.ascontiguousarray(out.permute(1, 2, 0).numpy())

    def apply_to_bboxes(self, bboxes: np.ndarray, **params: Any) -> np.ndarray:
        if len(bboxes) == 0:
            return bboxes
        h, w = params["shape"][:2]
        m, (oh, ow) = self._matrix(params, (h, w))
        px = torch.from_numpy(np.asarray(bboxes[:, :4], dtype=np.float64) * [w, h, w, h])
        moved = T.enclose_boxes(px, torch.zeros(len(px), dtype=torch.int64), m).numpy()
        out = bboxes.copy()
        out[:, :4] = moved / [ow, oh, ow, oh]
        return out

    def apply_to_keypoints(self, keypoints: np.ndarray, **params: Any) -> np.ndarray:
        if len(keypoints) == 0:
            return keypoints
        h, w = params["shape"][:2]
        m, _ = self._matrix(params, (h, w))
        xy = torch.from_numpy(np.asarray(keypoints[:, :2], dtype=np.float64) + 0.5)  # centres -> edges
        moved, _ = T.map_keypoints(xy, torch.zeros(len(xy), dtype=torch.int64), [(m, (h, w))])
        out = keypoints.astype(np.float64, copy=True)
        out[:, :2] = moved.double().numpy() - 0.5
        if out.shape[1] >= 5:  # Albumentations' columns x, y, z, angle (radians), scale
            a = m[0, :2, :2].double().numpy()
            d = np.stack((np.cos(out[:, 3]), np.sin(out[:, 3])), 1) @ a.T  # the angle's direction, moved
            out[:, 3] = np.mod(np.arctan2(d[:, 1], d[:, 0]), 2 * math.pi)
            out[:, 4] *= math.sqrt(abs(np.linalg.det(a)))
        return out.astype(keypoints.dtype, copy=False)
