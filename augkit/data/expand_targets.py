"""Targets for ``augkit expand``: read annotations, move them with each copy, write masks beside images.

Annotations are a JSON Lines file, one object per source image that has targets::

    {"source": "cats/001.jpg", "mask": "masks/001.png", "boxes": [[x1, y1, x2, y2], ...],
     "labels": [...], "keypoints": [[x, y], ...]}

``source`` is the image's path relative to SRC; ``mask`` (a single-channel PNG of class ids,
8 or 16 bit) is relative to the annotations file's folder; boxes and keypoints are in pixel-edge
coordinates (docs/targets.md). Every key but ``source`` is optional. A copy's mask is written as
``<stem>_aug<k>_mask.png`` beside the copy; its boxes, labels, kept-box indices, keypoints and
their visibility go into the copy's manifest line (``targets``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..pipeline import Pipeline
from ..targets import check_targets
from ._expand_files import mask_name

__all__ = ["read_annotations", "mask_name", "augment_with_targets", "to_png_mask"]

KEYS = ("mask", "boxes", "labels", "keypoints")


def read_annotations(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{source: annotation}`` from a JSON Lines file; mask paths made absolute. Errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotations file {str(path)!r} does not exist")
    out: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name} line {n}"
        try:
            a = json.loads(line)
        except ValueError as e:
            raise ValueError(f"{where} is not JSON: {e}") from None
        if not isinstance(a, dict) or not isinstance(a.get("source"), str):
            raise ValueError(f"{where} must be an object with a 'source' path, got {line[:80]!r}")
        unknown = set(a) - {"source", *KEYS}
        if unknown:
            raise ValueError(f"{where} has unknown key(s) {sorted(unknown)}; expected some of {['source', *KEYS]}")
        if a["source"] in out:
            raise ValueError(f"{where}: source {a['source']!r} is annotated twice")
        if "mask" in a:
            a["mask"] = str((path.parent / a["mask"]).resolve())
        try:  # boxes, labels, keypoints checked here, so errors name the line
            check_targets(1, (0, 0), single=True, **{k: a[k] for k in ("boxes", "keypoints", "labels") if k in a})
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where} ({a['source']}): {e}") from None
        out[a["source"]] = a
    return out


def _load_mask(path: str, hw: tuple[int, int], source: str) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        m = np.array(im)
    if m.ndim != 2:
        raise ValueError(f"the mask of {source!r} ({path}) must be a single-channel image of class ids, got shape {m.shape}")
    if m.shape != hw:
        raise ValueError(f"the mask of {source!r} ({path}) must have the image's H, W = {hw}, got {m.shape}")
    return torch.from_numpy(m.astype(np.int32) if m.dtype not in (np.uint8, np.int32) else m)


def augment_with_targets(
    pipe: Pipeline, x: torch.Tensor, params: Any, anns: list[dict[str, Any] | None], sources: list[str]
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Augment the batch ``x`` with every sample's annotation (``None``: no targets).

    Returns the images and per sample ``{"mask": HW array or None, "targets": JSON-ready dict}``.
    The batch holds either masks for every sample or for none (the caller buckets them so).
    """
    hw = (int(x.shape[-2]), int(x.shape[-1]))
    b = len(anns)
    kw: dict[str, Any] = {}
    if any(a and "mask" in a for a in anns):
        kw["masks"] = torch.stack([_load_mask((a or {})["mask"], hw, s) for a, s in zip(anns, sources)]).to(x.device)
    if any(a and "boxes" in a for a in anns):
        kw["boxes"] = [torch.tensor((a or {}).get("boxes", []), dtype=torch.float32).reshape(-1, 4) for a in anns]
        if any(a and "labels" in a for a in anns):
            kw["labels"] = [(a or {}).get("labels", [None] * len(kw["boxes"][i])) for i, a in enumerate(anns)]
    if any(a and "keypoints" in a for a in anns):
        kw["keypoints"] = [torch.tensor((a or {}).get("keypoints", []), dtype=torch.float32).reshape(-1, 2) for a in anns]
    if not kw:
        return pipe(x, params=params), [{"mask": None, "targets": None} for _ in range(b)]
    out = pipe(x, params=params, **kw)
    per = []
    for i, a in enumerate(anns):
        t: dict[str, Any] = {}
        if a and "boxes" in a:
            t.update(boxes=out["boxes"][i].tolist(), box_keep=out["box_keep"][i].tolist())
            if "labels" in out:
                t["labels"] = list(out["labels"][i])
        if a and "keypoints" in a:
            t.update(keypoints=out["keypoints"][i].tolist(), keypoints_visible=out["keypoints_visible"][i].tolist())
        mask = out["masks"][i].cpu().numpy() if "masks" in out else None
        per.append({"mask": mask, "targets": t or None})
    return out["image"], per


def to_png_mask(mask: np.ndarray) -> np.ndarray:
    """Class ids -> uint8 (ids < 256) or uint16 (ids < 65536) for a PNG; larger ids are an error."""
    hi = int(mask.max()) if mask.size else 0
    if int(mask.min() if mask.size else 0) < 0 or hi > 65535:
        raise ValueError(f"mask class ids must lie in [0, 65535] to be written as PNG, got max {hi}")
    return mask.astype(np.uint8 if hi < 256 else np.uint16)
