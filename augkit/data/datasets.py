"""Dataset side: image conversion, uint8 collation and the per-image augmented dataset.

Items may be images, ``(image, target, ...)`` tuples/lists, or dicts whose ``image_key``
holds the image. Images may be PIL images, numpy HWC/HW uint8 arrays or CHW/HW uint8
tensors. Nothing here converts to float except ``AugmentedDataset``'s final output.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate

from ..imageconv import is_pil, pil_to_array
from ..ops import Normalize, check_channels
from ..params import Params
from ..pipeline import Pipeline
from ..random import item_keys, sample_key

__all__ = ["AugmentedDataset", "collate_uint8", "to_chw_uint8", "to_hwc_uint8", "sample_key", "epoch_base", "split_item", "item_targets", "TARGET_KEYS"]

TARGET_KEYS = ("mask", "boxes", "labels", "keypoints")  # dict items' targets, moved with the image
RAGGED_KEYS = ("boxes", "labels", "keypoints", "box_keep", "keypoints_visible")  # collated as lists



# keys ---------------------------------------------------------------------------------
def current_rank() -> int:
    """The torch.distributed rank when a process group is up, else 0."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


# images -------------------------------------------------------------------------------
def is_image(x: Any) -> bool:
    return isinstance(x, (Tensor, np.ndarray)) or is_pil(x)


def _pil_to_numpy(img: Any, what: str) -> np.ndarray:
    return pil_to_array(img, what, alpha=True)  # (H, W) or (H, W, C) uint8, writable; shared with pipe(PIL)


def to_chw_uint8(img: Any, what: str = "image") -> Tensor:
    """One image -> (C, H, W) uint8 tensor, sharing memory where it can (no float on the way).

    Accepts a PIL image, a numpy (H, W, C) or (H, W) uint8 array, or a (C, H, W) or (H, W)
    uint8 tensor.
    """
    if is_pil(img):
        img = _pil_to_numpy(img, what)
    if isinstance(img, np.ndarray):
        if img.dtype != np.uint8:
            raise TypeError(f"{what} must be uint8, got numpy dtype {img.dtype}; convert with (x * 255).round().astype(np.uint8) for [0, 1] floats")
        if not img.flags.writeable:  # torch wants writable memory
            img = img.copy()
        if img.ndim == 2:
            return torch.from_numpy(np.ascontiguousarray(img))[None]
        if img.ndim != 3:
            raise ValueError(f"{what} must be a numpy (H, W, C) or (H, W) array, got shape {img.shape}")
        if img.shape[2] > 4 and img.shape[0] <= 4:
            raise ValueError(f"{what} of shape {img.shape} looks channels-first; numpy images must be (H, W, C)")
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    if isinstance(img, Tensor):
        if img.dtype != torch.uint8:
            raise TypeError(f"{what} must be uint8, got tensor dtype {img.dtype}; convert with (x * 255).round().to(torch.uint8) for [0, 1] floats")
        if img.dim() == 2:
            return img[None]
        if img.dim() != 3:
            raise ValueError(f"{what} must be a (C, H, W) or (H, W) tensor, got shape {tuple(img.shape)}")
        if img.shape[0] > 4 and img.shape[2] <= 4:
            raise ValueError(f"{what} of shape {tuple(img.shape)} looks channels-last; tensor images must be (C, H, W)")
        return img
    raise TypeError(f"{what} must be a PIL image, a numpy uint8 array or a uint8 tensor, got {type(img).__name__}")


def to_hwc_uint8(img: Any, what: str = "image") -> np.ndarray:
    """One image -> numpy (H, W, C) uint8 (or (H, W) if it came as a 2-D array/PIL "L")."""
    if isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 2:
        return img
    if is_pil(img) and img.mode == "L":
        return np.array(img)
    chw = to_chw_uint8(img, what)
    return np.ascontiguousarray(chw.permute(1, 2, 0).numpy())


# items --------------------------------------------------------------------------------
def item_targets(item: Any) -> dict[str, Any]:
    """The targets a dict item (or dict batch) carries: its ``TARGET_KEYS`` that are not None."""
    if not isinstance(item, Mapping):
        return {}
    return {k: item[k] for k in TARGET_KEYS if item.get(k) is not None}


def _mask_hwk(mask: Any, what: str) -> np.ndarray:
    """A dataset mask (PIL, numpy (H, W) / (H, W, K), tensor (H, W) / (K, H, W)) -> numpy HW / HWK."""
    if is_pil(mask):
        return np.asarray(mask)
    if isinstance(mask, Tensor):
        m = mask.cpu().numpy()
        return m if m.ndim == 2 else m.transpose(1, 2, 0)
    if isinstance(mask, np.ndarray):
        return mask
    raise TypeError(f"{what} must be a PIL image, a numpy array or a tensor, got {type(mask).__name__}")


def _put_targets(item: Mapping, image_key: str, image: Any, out: dict[str, Any], mask_chw: bool) -> dict[str, Any]:
    """The item with its image and targets replaced by the pipeline's ``out`` (numpy -> torch)."""
    new = {**item, image_key: image}
    for k, v in out.items():
        if k == "image":
            continue
        if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
            v = torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1) if k == "mask" and mask_chw and v.ndim == 3 else v))
        new[k] = v
    return new


def split_item(item: Any, image_key: str = "image", where: str = "item") -> tuple[Any, Callable[[Any], Any]]:
    """(image, put) where ``put(new_image)`` rebuilds the item with the image replaced."""
    if isinstance(item, Mapping):
        if image_key not in item:
            raise KeyError(f"{where} is a dict without image_key {image_key!r}; its keys are {list(item)}; pass image_key=")
        return item[image_key], lambda new: {**item, image_key: new}
    if isinstance(item, (tuple, list)) and not isinstance(item, str):
        if not item:
            raise ValueError(f"{where} is an empty {type(item).__name__}; expected (image, target, ...)")
        return item[0], lambda new: (new, *item[1:])
    if is_image(item):
        return item, lambda new: new
    raise TypeError(
        f"{where} must be an image, an (image, target, ...) tuple or a dict with an image key, got {type(item).__name__}"
    )


def _stack_uint8(images: Sequence[Any], ragged: bool = False) -> Tensor | list[Tensor]:
    """Images of one size -> (B, C, H, W) uint8 (in shared memory inside DataLoader workers).

    ``ragged``: images of mixed sizes come back as a list of (C, H, W) uint8 tensors instead
    (for a pipeline whose first run of geometric ops sets the size: ``pipe(list)``).
    """
    chws = [to_chw_uint8(im, f"image {i} of the batch") for i, im in enumerate(images)]
    sizes: dict[tuple[int, ...], list[int]] = {}
    for i, t in enumerate(chws):
        sizes.setdefault(tuple(t.shape), []).append(i)
    if len(sizes) > 1 and ragged and len({s[0] for s in sizes}) == 1:
        return chws
    if len(sizes) > 1:
        listed = ", ".join(f"{'x'.join(map(str, s))} (items {idx[:5]}{'...' if len(idx) > 5 else ''})" for s, idx in sizes.items())
        raise ValueError(
            f"images in one batch must share one (C, H, W) size to be stacked, got {listed}; "
            "resize or crop them to one size in the dataset first (e.g. torchvision.transforms.v2.Resize((H, W)) "
            "or RandomCrop/CenterCrop)"
        )
    return default_collate(chws)  # one strided copy into the (shared) batch


def collate_uint8(batch: Sequence[Any], image_key: str = "image", ragged: bool = False) -> Any:
    """A list of items -> one batch whose images are a (B, C, H, W) uint8 tensor, never float.

    Items may be bare images (-> the tensor), ``(image, target, ...)`` tuples (-> a tuple of
    the images tensor and the default-collated rest) or dicts (``image_key`` stacked, the other
    keys default-collated). Use it as ``DataLoader(..., collate_fn=ak.collate_uint8)``.
    ``ragged=True`` lets images of mixed sizes through as a list of (C, H, W) uint8 tensors.
    """
    if len(batch) == 0:
        raise ValueError("collate_uint8 needs at least one item, got an empty batch")
    first = batch[0]
    if is_image(first):
        return _stack_uint8(batch, ragged)
    parts = [split_item(b, image_key, f"item {i} of the batch") for i, b in enumerate(batch)]
    images = _stack_uint8([p[0] for p in parts], ragged)
    if isinstance(first, Mapping):  # detection items: ragged targets stay lists of B
        boxed = "boxes" in first or "keypoints" in first
        rest = {k: [b[k] for b in batch] if boxed and k in RAGGED_KEYS else default_collate([b[k] for b in batch]) for k in first if k != image_key}
        return {**rest, image_key: images}
    n = len(first)
    if any(len(b) != n for b in batch):
        raise ValueError(f"items of one batch must have the same length, got lengths {sorted({len(b) for b in batch})}")
    others = [default_collate([b[j] for b in batch]) for j in range(1, n)]
    return (images, *others)


# uint8 -> float ----------------------------------------------------------------------
def to_float(images: Tensor, normalize: Normalize | None = None, out: Tensor | None = None) -> Tensor:
    """uint8 (..., C, H, W) -> float32 / 255, then ``normalize`` if given, into ``out`` if given.

    ``copy_`` then in-place arithmetic: on CPU this is several times faster than
    ``torch.mul(uint8, float, out=...)``, which takes a slow mixed-dtype path.
    """
    if out is None:
        out = torch.empty(images.shape, dtype=torch.float32, device=images.device)
    out.copy_(images)
    if normalize is None:
        return out.mul_(1 / 255)
    c = images.shape[-3]
    if len(normalize.mean) not in (1, c):
        raise ValueError(f"Normalize has {len(normalize.mean)} channel(s) of mean/std but the images of shape {tuple(images.shape)} have {c} channels")
    mean = torch.tensor(normalize.mean, device=out.device).expand(c)  # (C,) or (1,) -> (C,)
    std = torch.tensor(normalize.std, device=out.device).expand(c)
    scale, shift = (1 / (255 * std))[:, None, None], (-mean / std)[:, None, None]
    return torch.addcmul(shift, out, scale, out=out)


def split_normalize(pipe: Pipeline) -> tuple[Pipeline, Normalize | None]:
    """(pipeline without a final Normalize, that Normalize or None): per-image work stays uint8."""
    if pipe.ops and isinstance(pipe.ops[-1], Normalize):
        return Pipeline(pipe.ops[:-1], seed=pipe.seed), pipe.ops[-1]
    return pipe, None


# dataset ------------------------------------------------------------------------------
class AugmentedDataset(Dataset):
    """Wrap a map-style dataset so each item's image is augmented per image on the CPU.

    The image goes through the pipeline's Albumentations backend (numpy, one image at a time),
    which is what DataLoader workers are good at. Item ``i`` at epoch ``e`` on rank ``r`` uses
    the params of ``pipe.sample_keyed([self.key(i, e)])`` (``epoch_base``; the batched path keys
    items the same way): the same output whatever the worker count, batch size or order, and
    different per epoch once ``set_epoch`` is called (persistent workers included).

    Args:
        dataset: map-style dataset of images, ``(image, target, ...)`` tuples or dicts.
        pipe: the augmentation pipeline (its ``seed`` keys the randomness).
        image_key: which dict key holds the image (dict items only).
        rank: distributed rank mixed into the key; ``None`` reads torch.distributed (0 if not up).
        seed: mixed into the key with ``pipe.seed`` (``ak.loader`` passes its own ``seed``).
        output: ``"float"``: the image becomes a (C, H, W) float32 tensor in [0, 1] (normalized if
            the pipeline ends in Normalize); ``"uint8"``: a (C, H, W) uint8 tensor with a final
            Normalize left out, for ``collate_uint8`` and conversion after batching (4x less
            data between processes; ``ak.loader`` does this).

    Returns items shaped like the input's with the image replaced. Dict items may carry targets
    (``mask``, ``boxes``, ``labels``, ``keypoints``: docs/targets.md): they move with the image
    (``box_keep`` and ``keypoints_visible`` are added); other targets are untouched.
    """

    def __init__(
        self,
        dataset: Any,
        pipe: Pipeline,
        image_key: str = "image",
        rank: int | None = None,
        seed: int = 0,
        output: str = "float",
    ) -> None:
        if not isinstance(pipe, Pipeline):
            raise TypeError(f"pipe must be an ak.Pipeline, got {type(pipe).__name__}")
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"dataset must be map-style (with __getitem__ and __len__), got {type(dataset).__name__}")
        if output not in ("float", "uint8"):
            raise ValueError(f"output must be 'float' or 'uint8', got {output!r}")
        self.dataset = dataset
        self.pipe = pipe
        self.image_key = image_key
        self.rank = current_rank() if rank is None else int(rank)
        self.seed = int(seed)
        self.output = output
        # in shared memory: DataLoader workers (persistent ones too) read the epoch set_epoch wrote
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._per_image, self.normalize = split_normalize(pipe)

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's augmentations; workers already running (persistent) see it too."""
        self._epoch[0] = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def key(self, index: int, epoch: int | None = None) -> int:
        """The key of item ``index`` at ``epoch``: ``item_keys(epoch_base(...), [index])``, as the batched path's."""
        epoch = self.epoch if epoch is None else epoch
        base = epoch_base(self.pipe.seed, self.seed, epoch, self.rank)
        return int(item_keys(base, torch.tensor([index]))[0])

    def keyed_params(self, index: int, epoch: int | None = None) -> Params:
        """The params of item ``index`` at ``epoch``: ``pipe.sample_keyed([self.key(index, epoch)])``."""
        return self.pipe.sample_keyed([self.key(index, epoch)])

    def _check_index(self, index: Any) -> int:
        try:
            i = operator.index(index)
        except TypeError:
            raise TypeError(f"AugmentedDataset index must be an int (or (index, epoch)), got {type(index).__name__}") from None
        n = len(self.dataset)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for a dataset of {n} items")
        return i + n if i < 0 else i

    def __getitem__(self, index: int | tuple[int, int]) -> Any:
        """``ds[i]`` at the current epoch, or ``ds[i, epoch]`` (what ``ak.loader``'s sampler asks for)."""
        index, epoch = index if isinstance(index, tuple) else (index, None)
        index = self._check_index(index)  # ds[-1] is ds[len - 1]: same item, same key
        item = self.dataset[index]
        image, put = split_item(item, self.image_key, f"dataset[{index}]")
        hwc = to_hwc_uint8(image, f"the image of dataset[{index}]")
        check_channels(self.pipe.ops, 1 if hwc.ndim == 2 else hwc.shape[2], f"the image of dataset[{index}] (shape {hwc.shape})")
        params = self.keyed_params(index, epoch)
        if self.normalize is not None:
            params = Params(params.names[:-1], params.values[:-1])
        targets = item_targets(item)
        if targets:
            mask = targets.get("mask")
            if mask is not None:
                targets["mask"] = _mask_hwk(mask, f"the mask of dataset[{index}]")
            res = self._per_image(hwc, params=params, **targets)
            out = torch.from_numpy(np.ascontiguousarray(res["image"]))
        else:
            out = torch.from_numpy(np.ascontiguousarray(self._per_image(hwc, params=params)))  # uint8 (H, W[, C])
        chw = out[None] if out.dim() == 2 else out.permute(2, 0, 1)
        image = chw if self.output == "uint8" else to_float(chw, self.normalize)
        if targets:
            return _put_targets(item, self.image_key, image, res, mask_chw=not isinstance(mask, np.ndarray) and not is_pil(mask))
        return put(image)


def epoch_base(pipe_seed: int, seed: int, epoch: int, rank: int) -> int:
    """The key base of one epoch of a loader: items are keyed by ``item_keys(base, index)``.

    The reproducibility contract: item i at epoch e gets the params of
    ``pipe.sample_keyed(item_keys(epoch_base(pipe.seed, seed, e, rank), [i]))`` on every path.
    """
    return sample_key(pipe_seed, seed, epoch, rank)
