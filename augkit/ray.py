"""augkit on Ray Data: ``ds.map_batches(ak.ray.Augment, fn_constructor_kwargs=dict(pipe=pipe), ...)``.

Imported only when used (``ak.ray`` or ``import augkit.ray``); Ray itself is never imported here,
so the class also runs on plain numpy batches. See docs/scale.md.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from .data.datasets import sample_key, to_chw_uint8
from .data.expand import to_uint8
from .data.expand_ray import expand_ray
from .device import resolve_device
from .ops import Normalize
from .params import Params
from .pipeline import Pipeline

__all__ = ["Augment", "row_key", "augment_keyed", "expand_ray"]

_RAY_STREAM = -3  # sample_key tag: keys of Augment rows never meet the loaders' or expand's
_INT, _STR, _BYTES = 0, 1, 2


def augment_keyed(pipe: Pipeline, images: list[torch.Tensor], keys: list[int], dev: torch.device) -> tuple[np.ndarray, Params]:
    """Same-size (C, H, W) uint8 images -> (B, H, W, C) uint8 numpy ((B, H, W) if C = 1) and the params.

    Row i is augmented with ``pipe.sample_keyed(keys)[i]`` on ``dev`` and rounded as ``expand`` rounds
    (``to_uint8``): it depends on ``keys[i]`` only.
    """
    x = torch.stack(images).to(dev, non_blocking=True)  # (B, C, H, W) uint8
    params = pipe.sample_keyed(keys)
    y = to_uint8(pipe(x, params=params)).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, C)
    return (y[..., 0] if y.shape[-1] == 1 else y), params


def row_key(value: Any, seed: int, epoch: int = 0) -> int:
    """The key (an int in [0, 2**63)) of a row whose key column holds ``value``: stable across
    processes and machines. Ints (within int64) and strings/bytes (blake2b) are accepted."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"key values must be ints or strings, got a bool ({value!r})")
    if isinstance(value, (int, np.integer)) and -(2**63) <= int(value) < 2**63:
        return sample_key(_RAY_STREAM, seed, epoch, _INT, int(value))
    if isinstance(value, (int, np.integer)):
        kind, raw = _STR, str(int(value)).encode()
    elif isinstance(value, str):  # np.str_ is a str
        kind, raw = _STR, value.encode("utf-8")
    elif isinstance(value, bytes):  # np.bytes_ is bytes
        kind, raw = _BYTES, value
    else:
        raise TypeError(f"key values must be ints or strings, got {type(value).__name__} ({value!r})")
    h = int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little", signed=True)
    return sample_key(_RAY_STREAM, seed, epoch, kind, h)


class Augment:
    """A callable class for ``Dataset.map_batches``: augments a uint8 image column on the actor's device.

    Each row's params are ``pipe.sample_keyed([row_key(row[key_column], pipe.seed, epoch)])``, so a
    row's output depends on its key value only: not on block boundaries, batch size, order or the
    number of actors. Rows of different image sizes may share a batch (they run in per-size groups).

    Args:
        pipe: the pipeline (one copy per actor); a final Normalize is not allowed (images stay uint8).
        image_column: numpy uint8 images, (H, W, C) or (H, W) per row; replaced by the augmented ones.
        key_column: ints or strings that name each row (e.g. a file path or an id).
        device: "auto" (the GPU Ray gave the actor, else CPU), "cpu" or "cuda[:i]"; resolved on the actor.
        epoch: mixed into every key; pass the epoch to get new augmentations each epoch.

    Shape:
        Input batch: ``{image_column: (B, H, W, C) uint8, or B arrays (H_i, W_i[, C_i]) uint8, key_column: (B,)}``.
        Output batch: the same columns, ``image_column`` holding arrays of the same shapes.
    """

    def __init__(self, pipe: Pipeline, image_column: str = "image", key_column: str = "id", device: str = "auto", epoch: int = 0) -> None:
        if not isinstance(pipe, Pipeline):
            raise TypeError(f"pipe must be an ak.Pipeline, got {type(pipe).__name__}")
        if pipe.ops and isinstance(pipe.ops[-1], Normalize):
            raise ValueError("pipe must not end in Normalize: Augment writes uint8 images back; normalize in the training loop")
        for name, value in (("image_column", image_column), ("key_column", key_column)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a column name (str), got {value!r}")
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise TypeError(f"epoch must be an int, got {epoch!r}")
        self.pipe, self.image_column, self.key_column, self.epoch = pipe, image_column, key_column, epoch
        self.device = resolve_device(device)

    def __repr__(self) -> str:
        return f"Augment(image_column={self.image_column!r}, key_column={self.key_column!r}, device={str(self.device)!r}, epoch={self.epoch})"

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        for name in ("image_column", "key_column"):
            column = getattr(self, name)
            if column not in batch:
                raise KeyError(f"the batch has no {name} {column!r}; its columns are {sorted(batch)}; pass {name}=")
        images, values = batch[self.image_column], batch[self.key_column]
        if len(images) != len(values):
            raise ValueError(f"columns {self.image_column!r} and {self.key_column!r} differ in length: {len(images)} vs {len(values)}")
        if len(images) == 0:
            return dict(batch)
        keys = [row_key(v.item() if isinstance(v, np.generic) else v, self.pipe.seed, self.epoch) for v in values]
        done: dict[int, np.ndarray] = {}
        groups: dict[tuple[int, ...], list[int]] = {}  # rows of one (H, W[, C]) shape run as one batch
        chws: list[torch.Tensor] = []
        for i, img in enumerate(images):
            img = np.asarray(img)
            chws.append(to_chw_uint8(img, f"{self.image_column} of row {i}"))
            groups.setdefault(img.shape, []).append(i)
        for shape, rows in groups.items():
            y, _ = augment_keyed(self.pipe, [chws[i] for i in rows], [keys[i] for i in rows], self.device)
            y = y.reshape(len(rows), *shape)  # (B, H, W, 1) keeps its channel axis; (H, W) stays 2-D
            for j, i in enumerate(rows):
                done[i] = y[j]
        out = [done[i] for i in range(len(images))]
        if len(groups) == 1:
            result: np.ndarray = np.stack(out)  # (B, H, W[, C]) uint8
        else:
            result = np.empty(len(out), dtype=object)  # ragged: one array per row
            for i, y in enumerate(out):
                result[i] = y
        return {**batch, self.image_column: result}
