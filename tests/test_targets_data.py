"""Targets through AugmentedDataset and ak.loader (both backends): each box matches its own mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import augkit as ak

H, W = 48, 64


class Detection:
    """Dict items: an image, boxes (a ragged number per item), labels, keypoints and a mask whose
    pixels inside box k hold k + 1 (boxes do not overlap)."""

    def __init__(self, n: int = 12) -> None:
        rng = np.random.default_rng(0)
        self.items = []
        for i in range(n):
            k = 1 + i % 4
            xs = np.sort(rng.choice(np.arange(0, W + 1, 4), 2 * k, replace=False)).reshape(k, 2)  # disjoint x-spans
            y1 = rng.integers(0, H - 8, k)
            y2 = y1 + rng.integers(4, 9, k)
            boxes = np.stack([xs[:, 0], y1, xs[:, 1], y2], 1).astype(np.float32)
            mask = np.zeros((H, W), np.uint8)
            for j, (a, b, c, d) in enumerate(boxes.astype(int)):
                mask[b:d, a:c] = j + 1
            image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            self.items.append({"image": image, "mask": mask, "boxes": boxes, "labels": list(range(k)),
                               "keypoints": boxes[:, :2].copy(), "id": i})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def _check_item(image, mask, boxes, labels, keep, kps, vis) -> int:
    assert image.shape[-2:] == (H, W) and mask.shape == (H, W)
    assert list(labels) == [int(k) for k in keep]
    assert len(kps) == len(vis)
    checked = 0
    for box, k in zip(np.asarray(boxes), np.asarray(keep)):
        ys, xs = np.nonzero(np.asarray(mask) == k + 1)
        if len(xs):
            np.testing.assert_allclose(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1.0)
            checked += 1
    return checked


PIPE = [ak.HorizontalFlip(), ak.VerticalFlip(), ak.Zoom(scale=(0.8, 1.3)), ak.Contrast()]


def test_augmented_dataset_moves_targets_with_the_keyed_params():
    data = Detection()
    pipe = ak.Pipeline(PIPE, seed=1)
    ds = ak.AugmentedDataset(data, pipe)
    for i in range(len(ds)):
        item = ds[i]
        assert item["id"] == i and item["image"].dtype == torch.float32
        ref = pipe(data[i]["image"], mask=data[i]["mask"], boxes=data[i]["boxes"], labels=data[i]["labels"],
                   keypoints=data[i]["keypoints"], params=ds.keyed_params(i))
        np.testing.assert_array_equal(item["mask"].numpy(), ref["mask"])
        np.testing.assert_array_equal(item["boxes"].numpy(), ref["boxes"])
        _check_item(item["image"], item["mask"], item["boxes"], item["labels"], item["box_keep"], item["keypoints"], item["keypoints_visible"])


@pytest.mark.parametrize("backend", ["tensor", "albumentations"])
def test_loader_batches_carry_ragged_targets(backend):
    data = Detection()
    ld = ak.loader(data, ak.Pipeline(PIPE, seed=2), batch_size=5, device="cpu", num_workers=0, backend=backend)
    seen, checked = 0, 0
    for batch in ld:
        b = batch["image"].shape[0]
        assert batch["mask"].shape == (b, H, W) and len(batch["boxes"]) == b and len(batch["keypoints_visible"]) == b
        for s in range(b):
            checked += _check_item(batch["image"][s], batch["mask"][s].numpy(), batch["boxes"][s], batch["labels"][s],
                                   batch["box_keep"][s], batch["keypoints"][s], batch["keypoints_visible"][s])
        seen += b
    assert seen == len(data) and checked >= 15


def test_collate_keeps_ragged_targets_as_lists():
    data = Detection(3)
    batch = ak.collate_uint8([data[i] for i in range(3)])
    assert batch["image"].shape == (3, 3, H, W) and batch["mask"].shape == (3, H, W)
    assert [len(b) for b in batch["boxes"]] == [1, 2, 3] and batch["id"].tolist() == [0, 1, 2]
