"""Loader side: DeviceLoader (uint8 batches -> device -> batched pipeline) and ``loader(device="auto")``.

The fallback rule of ``loader`` lives in ``choose_backend``; the measurement behind it is in
``docs/data.md`` and ``benchmarks/loader.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler, Sampler, SequentialSampler

from ..buffers import OutputPool
from ..device import resolve_device
from ..ops import Normalize
from ..pipeline import Pipeline
from ..random import item_keys
from .datasets import (
    AugmentedDataset,
    collate_uint8,
    current_rank,
    epoch_base,
    item_targets,
    sample_key,
    split_item,
    to_chw_uint8,
    to_float,
)

__all__ = ["DeviceLoader", "Loader", "loader", "resolve_device", "choose_backend", "CPU_TENSOR_MAX_PIXELS"]

# On CPU, images with at most this many pixels (H * W) go through the batched tensor path,
# larger ones through Albumentations in workers. Measured in docs/data.md (crossover between
# 96x96 and 128x128 on a 2-core machine).
CPU_TENSOR_MAX_PIXELS = 96 * 96

_SHUFFLE_STREAM = -1  # sample_key tags: keep shuffle order and unindexed batches apart from per-index keys
_DEVICE_STREAM = -2
_MIX_STREAM = -3


class IndexedBatch(NamedTuple):
    """A collated batch with the dataset indices of its items: the DeviceLoader keys params by them."""

    batch: Any
    index: Tensor  # type: ignore[assignment]  # (B,) int64; the name shadows tuple.index on purpose


class _Indexed(Dataset):
    """A map-style dataset whose items come with their index: ``ds[i] -> (item, i)``."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.dataset[index], int(index)


def collate_indexed(batch: list[tuple[Any, int]], image_key: str = "image", ragged: bool = False) -> IndexedBatch:
    """Collate ``(item, index)`` pairs into an ``IndexedBatch`` (images as ``collate_uint8``)."""
    images = collate_uint8([b[0] for b in batch], image_key, ragged)
    return IndexedBatch(images, torch.tensor([b[1] for b in batch], dtype=torch.int64))


def _batch_images(batch: Any, image_key: str) -> tuple[Any, Callable[[Any], Any]]:
    """(images, put): a (B, C, H, W) uint8 tensor, or a list of (C, H, W) ones of mixed sizes."""
    images, put = split_item(batch, image_key, "a batch from the wrapped loader")
    if isinstance(images, list) and images and all(isinstance(t, Tensor) and t.dim() == 3 for t in images):
        return images, put  # mixed sizes (collate_uint8(ragged=True)): the pipeline sets the size
    if not isinstance(images, Tensor) or images.dim() != 4:
        got = f"shape {tuple(images.shape)}" if isinstance(images, Tensor) else type(images).__name__
        raise TypeError(
            f"DeviceLoader needs batches whose images are one (B, C, H, W) uint8 tensor, got {got}; "
            "build the DataLoader with collate_fn=ak.collate_uint8"
        )
    if images.shape[-1] in (1, 3, 4) and images.shape[1] > 4:
        raise ValueError(
            f"batch images of shape {tuple(images.shape)} look channels-last (B, H, W, C); "
            "use collate_fn=ak.collate_uint8, which stacks numpy HWC images as (B, C, H, W)"
        )
    return images, put


class DeviceLoader:
    """Augment whole batches on a device: uint8 batch -> (pinned, async) copy -> ``pipe(batch)``.

    Args:
        loader: any iterable of batches whose images are (B, C, H, W) uint8 tensors, e.g. a
            ``DataLoader(..., collate_fn=ak.collate_uint8)``; batches may be tensors, tuples
            (images first) or dicts (``image_key``).
        pipe: the augmentation pipeline.
        device: where to augment ("cuda", "cuda:1", "cpu", "auto").
        seed: mixed with ``pipe.seed``, the epoch and the rank into each epoch's generator.
        rank: distributed rank; ``None`` reads torch.distributed (0 if not up).

    Yields batches shaped like the input's, the images replaced by float32 (B, C, H, W) on
    ``device``; targets untouched. On CUDA, batch k+1 is copied on a side stream while batch
    k is augmented; the host never converts to float. An epoch advances when it was iterated
    to the end (a peek with ``next(iter(dl))`` does not); ``set_epoch(e)`` picks one
    (forwarded to the loader's sampler).

    Params: batches that are ``IndexedBatch`` (what ``ak.loader`` builds) key each item by its
    dataset index, ``item_keys(epoch_base(pipe.seed, seed, epoch, rank), index)``, the same
    params as the per-image path whatever the batch size or worker count. Other batches draw
    from one generator per epoch, so their params depend on the batch order and size.
    """

    def __init__(
        self,
        loader: Any,
        pipe: Pipeline,
        device: torch.device | str = "cuda",
        image_key: str = "image",
        seed: int = 0,
        rank: int | None = None,
    ) -> None:
        if not isinstance(pipe, Pipeline):
            raise TypeError(f"pipe must be an ak.Pipeline, got {type(pipe).__name__}")
        if not hasattr(loader, "__iter__"):
            raise TypeError(f"loader must be an iterable of batches (e.g. a DataLoader), got {type(loader).__name__}")
        self.loader = loader
        self.pipe = pipe
        self.device = resolve_device(device)
        self.image_key = image_key
        self.seed = int(seed)
        self.rank = current_rank() if rank is None else int(rank)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        sampler = getattr(self.loader, "sampler", None)
        if sampler is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)

    def generator(self, epoch: int) -> torch.Generator:
        """The generator for ``epoch`` on this loader's device (same run, same draws)."""
        key = sample_key(_DEVICE_STREAM, self.pipe.seed, self.seed, epoch, self.rank)
        return torch.Generator(device=self.device).manual_seed(key)

    def __iter__(self) -> Iterator[Any]:
        epoch = self.epoch
        self.set_epoch(epoch)  # the sampler shuffles for the same epoch
        gen = self.generator(epoch)
        base = epoch_base(self.pipe.seed, self.seed, epoch, self.rank)
        yield from (self._iter_cuda if self.device.type == "cuda" else self._iter_plain)(gen, base)
        self.epoch = epoch + 1  # only an epoch iterated to the end counts

    def _augment(self, images: Tensor | list[Tensor], index: Tensor | None, gen: torch.Generator, base: int,
                 batch: Any, put: Callable[[Any], Any]) -> Any:
        """The augmented batch: ``put`` rebuilds it around the new images; dict targets move too."""
        n = len(images)  # a list: images of mixed sizes
        if index is None:
            params = self.pipe.sample(n, self.device, generator=gen)
        else:
            params = self.pipe.sample(n, self.device, keys=item_keys(base, index.to(self.device)))
        targets = item_targets(batch)
        if not targets:
            return put(self.pipe(images, params=params))
        if "mask" in targets:
            targets["masks"] = targets.pop("mask").to(self.device, non_blocking=True)
        res = self.pipe(images, params=params, **targets)
        if "masks" in res:
            res["mask"] = res.pop("masks")
        return {**batch, self.image_key: res.pop("image"), **res}

    def _iter_plain(self, gen: torch.Generator, base: int) -> Iterator[Any]:
        for batch in self.loader:
            batch, index = _unindex(batch)
            images, put = _batch_images(batch, self.image_key)
            moved = [t.to(self.device) for t in images] if isinstance(images, list) else images.to(self.device)
            yield self._augment(moved, index, gen, base, batch, put)

    def _iter_cuda(self, gen: torch.Generator, base: int) -> Iterator[Any]:
        copy_stream = torch.cuda.Stream(self.device)
        batches = iter(self.loader)

        def start_next() -> tuple[Any, Tensor | None, Callable[[Any], Any], Any] | None:
            batch = next(batches, None)
            if batch is None:
                return None
            batch, index = _unindex(batch)
            images, put = _batch_images(batch, self.image_key)
            parts = images if isinstance(images, list) else [images]  # a list: mixed sizes
            parts = [t.pin_memory() if t.device.type == "cpu" and not t.is_pinned() else t for t in parts]
            with torch.cuda.stream(copy_stream):
                on_device = [t.to(self.device, non_blocking=True) for t in parts]  # uint8 over the bus
            return (on_device if isinstance(images, list) else on_device[0]), index, put, batch

        nxt = start_next()
        while nxt is not None:
            images, index, put, batch = nxt
            compute = torch.cuda.current_stream(self.device)
            compute.wait_stream(copy_stream)
            for t in images if isinstance(images, list) else [images]:
                t.record_stream(compute)  # its memory belongs to the compute stream now
            out = self._augment(images, index, gen, base, batch, put)  # queued on the GPU
            nxt = start_next()  # host fetch + copy of the next batch overlap that work
            yield out


def _unindex(batch: Any) -> tuple[Any, Tensor | None]:
    return (batch.batch, batch.index) if isinstance(batch, IndexedBatch) else (batch, None)


class HostFinisher:
    """Iterate a loader of uint8 batches (from ``AugmentedDataset(output="uint8")``), yielding them
    as float32 / 255 (and normalized) on the CPU, in reused buffers."""

    def __init__(self, loader: DataLoader, normalize: Normalize | None, image_key: str = "image") -> None:
        self.loader, self.normalize, self.image_key = loader, normalize, image_key
        self._buffers = OutputPool()

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            images, put = _batch_images(batch, self.image_key)
            del batch
            out = put(to_float(images, self.normalize, self._buffers.get(tuple(images.shape))))
            del images, put
            yield out
            del out  # drop our reference before the next buffer is picked


def image_size(dataset: Any, image_key: str = "image") -> tuple[int, int]:
    """(H, W) of the dataset's first image (one item decoded)."""
    if len(dataset) == 0:
        raise ValueError("dataset is empty: nothing to load")
    image, _ = split_item(dataset[0], image_key, "dataset[0]")
    chw = to_chw_uint8(image, "the image of dataset[0]")
    return int(chw.shape[1]), int(chw.shape[2])


def choose_backend(device: torch.device, size: tuple[int, int]) -> str:
    """The fallback rule: "tensor" (batched on ``device``) or "albumentations" (per image in workers).

    CUDA (or any accelerator) -> "tensor". CPU -> "tensor" for images of at most
    ``CPU_TENSOR_MAX_PIXELS`` pixels, where batched code wins (docs/data.md), else "albumentations".
    """
    if device.type != "cpu":
        return "tensor"
    return "tensor" if size[0] * size[1] <= CPU_TENSOR_MAX_PIXELS else "albumentations"


class EpochSampler(Sampler):
    """Yields ``(index, epoch)`` so persistent workers see each epoch without being re-forked."""

    def __init__(self, sampler: Any, dataset: AugmentedDataset) -> None:
        self.sampler, self.dataset = sampler, dataset

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.dataset.epoch  # read in the main process when the epoch starts
        return ((int(i), epoch) for i in self.sampler)


class Loader:
    """What ``loader`` returns: iterate it per epoch; ``backend`` says which path it took."""

    def __init__(self, data_loader: DataLoader, inner: DeviceLoader | AugmentedDataset, backend: str,
                 device: torch.device, seed: int, shuffle_gen: torch.Generator | None, mix: Any = None) -> None:
        self.data_loader = data_loader
        self.mix = mix
        self.inner = inner
        self.backend = backend
        self.device = device
        self.seed = seed
        self._shuffle_gen = shuffle_gen
        self.epoch = 0
        if isinstance(inner, AugmentedDataset):  # one finisher: its float buffers live across epochs
            self._finisher = HostFinisher(data_loader, inner.normalize, inner.image_key)

    def __repr__(self) -> str:
        return f"Loader(backend={self.backend!r}, device={str(self.device)!r}, batch_size={self.data_loader.batch_size}, epoch={self.epoch})"

    def __len__(self) -> int:
        return len(self.data_loader)

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch of the next iteration (augmentations, shuffle order, sampler)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[Any]:
        epoch = self.epoch
        if self._shuffle_gen is not None:
            self._shuffle_gen.manual_seed(sample_key(_SHUFFLE_STREAM, self.seed, epoch))
        self.inner.set_epoch(epoch)
        sampler = self.data_loader.sampler
        if isinstance(self.inner, AugmentedDataset) and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        it = self.inner if isinstance(self.inner, DeviceLoader) else self._finisher
        yield from (it if self.mix is None else self._mixed(iter(it), epoch))
        self.epoch = epoch + 1  # only an epoch iterated to the end counts; a peek does not

    def _mixed(self, it: Iterator[Any], epoch: int) -> Iterator[Any]:
        """Batches through ``self.mix`` (after augmentation): (images, labels, ...) -> (mixed, soft labels, ...)."""
        gen = torch.Generator(device=self.device).manual_seed(sample_key(_MIX_STREAM, self.seed, self.mix.seed, epoch))
        for batch in it:
            if isinstance(batch, dict):
                if "label" not in batch:
                    raise KeyError(f"mix= needs the labels of each batch; a dict batch has keys {list(batch)}, expected 'label'")
                x, y = self.mix(batch[self.inner.image_key], batch["label"].to(self.device), generator=gen)
                yield {**batch, self.inner.image_key: x, "label": y}
            elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
                x, y = self.mix(batch[0], batch[1].to(self.device), generator=gen)
                yield (x, y, *batch[2:])
            else:
                raise TypeError("mix= needs batches of (images, labels, ...) or dicts with 'label'; the dataset yields images only")


def loader(
    dataset: Any,
    pipe: Pipeline,
    batch_size: int = 64,
    device: torch.device | str = "auto",
    num_workers: int = 2,
    shuffle: bool = True,
    seed: int = 0,
    *,
    image_key: str = "image",
    backend: str = "auto",
    sampler: Any = None,
    drop_last: bool = False,
    rank: int | None = None,
    mix: Any = None,
) -> Loader:
    """A loader of augmented batches: ``for images, targets in loader(...)``.

    ``device="auto"`` picks CUDA when available. ``backend="auto"`` applies the fallback rule
    (``choose_backend``): on CUDA, workers only decode and collate uint8 and the batch is
    augmented on the GPU (``DeviceLoader``); on CPU, large images run per image through
    Albumentations in the workers (``AugmentedDataset``) and small ones batched on the CPU.
    Force a path with ``backend="tensor"`` or ``"albumentations"`` (the latter only on CPU).

    Args:
        dataset: map-style dataset of images, (image, target, ...) tuples or dicts (``image_key``).
        seed: seeds the shuffle order and is mixed into the augmentation keys with ``pipe.seed``.
        sampler: e.g. a ``DistributedSampler`` (then ``shuffle`` is the sampler's business);
            ``set_epoch`` is forwarded to it.
        rank: distributed rank mixed into the keys; ``None`` reads torch.distributed.
        mix: ``ak.MixUp`` / ``ak.CutMix`` applied to each augmented batch: labels come out as
            (B, num_classes) soft labels on the device; seeded by (seed, mix.seed, epoch).

    Images come out float32 (B, C, H, W) on the device; targets are collated, not moved.
    Item i at epoch e gets the same params on every path (tensor or Albumentations, CPU or
    CUDA, any batch size or worker count): docs/reliability.md, "Reproducibility".
    """
    if not isinstance(pipe, Pipeline):
        raise TypeError(f"pipe must be an ak.Pipeline, got {type(pipe).__name__}")
    if isinstance(dataset, IterableDataset) or not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(
            f"ak.loader needs a map-style dataset (len() and [i]; it keys each item's augmentation by its index), "
            f"got {type(dataset).__name__}; for an IterableDataset, batch it yourself and augment the batches: "
            "ak.DeviceLoader(DataLoader(dataset, batch_size=B, collate_fn=ak.collate_uint8), pipe, device=...) "
            "(docs/ecosystem.md)"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if backend not in ("auto", "tensor", "albumentations"):
        raise ValueError(f"backend must be 'auto', 'tensor' or 'albumentations', got {backend!r}")
    dev = resolve_device(device)
    if backend == "auto":
        backend = choose_backend(dev, image_size(dataset, image_key))
    elif backend == "albumentations" and dev.type != "cpu":
        raise ValueError(f"backend='albumentations' runs on the CPU, got device={str(device)!r}; use backend='tensor'")
    rank = current_rank() if rank is None else int(rank)
    shuffle_gen = torch.Generator() if (shuffle and sampler is None) else None
    if sampler is None:  # our own generator, reseeded per epoch: the order depends on (seed, epoch) only
        sampler = RandomSampler(dataset, generator=shuffle_gen) if shuffle else SequentialSampler(dataset)
    common: dict[str, Any] = dict(
        batch_size=batch_size,
        num_workers=num_workers,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
        collate_fn=partial(collate_uint8, image_key=image_key, ragged=pipe.sets_size_first()),
    )
    if backend == "tensor":  # items carry their index: params keyed per item, as on the per-image path
        common["collate_fn"] = partial(collate_indexed, image_key=image_key, ragged=pipe.sets_size_first())
        dl = DataLoader(_Indexed(dataset), sampler=sampler, pin_memory=dev.type == "cuda", **common)
        inner: DeviceLoader | AugmentedDataset = DeviceLoader(dl, pipe, dev, image_key=image_key, seed=seed, rank=rank)
    else:  # workers augment per image and stack uint8; the main process converts to float once
        inner = AugmentedDataset(dataset, pipe, image_key=image_key, rank=rank, seed=seed, output="uint8")
        dl = DataLoader(inner, sampler=EpochSampler(sampler, inner), **common)
    if mix is not None and not callable(getattr(mix, "sample", None)):
        raise TypeError(f"mix must be an ak.MixUp or ak.CutMix, got {type(mix).__name__}")
    return Loader(dl, inner, backend, dev, seed, shuffle_gen, mix)
