"""Regression tests for the reliability defects of issue 10 (one or more per item, named by it).

Expansion-specific items (5, 10-14, 17, 19, 20, 25) live in tests/test_expand.py. What each
test guarantees is listed in docs/reliability.md.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import augkit as ak

# item 1: a tensor handed to a caller is never written again ----------------------------------------
X8 = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
PIPE1 = ak.Pipeline([ak.HorizontalFlip(p=0.5), ak.Contrast(factor=(0.5, 1.5)), ak.GaussianNoise(std=(0.0, 0.1))], seed=0)


class _Images(Dataset):
    def __init__(self, augment: bool) -> None:
        self.augment = augment

    def __len__(self) -> int:
        return 64 if not self.augment else 8

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.augment:  # a whole batch per index (batch_size=None): the worker sends pipe's own output
            return PIPE1(X8.roll(i, 0))
        return X8[i % 8]


def _augment_batch(items: list[torch.Tensor]) -> torch.Tensor:
    return PIPE1(torch.stack(items))


@pytest.mark.parametrize("where", ["collate_fn", "__getitem__"])
def test_item1_batches_held_from_workers_never_change(where: str) -> None:
    """pipe(x) inside a DataLoader worker: 8 held batches keep the values they arrived with."""
    if where == "collate_fn":
        dl = DataLoader(_Images(False), batch_size=8, num_workers=1, collate_fn=_augment_batch)
    else:
        dl = DataLoader(_Images(True), batch_size=None, num_workers=1)
    held, at_arrival = [], []
    for y in dl:
        held.append(y)
        at_arrival.append(y.clone())
    assert len(held) == 8
    changed = [i for i, (a, b) in enumerate(zip(held, at_arrival)) if not torch.equal(a, b)]
    assert changed == [], f"batches {changed} were overwritten after delivery"


@pytest.mark.parametrize("hold", ["storage", "view", "numpy", "dlpack", "shared"])
def test_item1_output_kept_any_way_is_not_reused(hold: str) -> None:
    pipe = ak.Pipeline([ak.Contrast(factor=(0.5, 1.5))], seed=0)
    y = pipe(X8)
    ref = y.clone()
    kept: object = {
        "storage": lambda: y.untyped_storage(),
        "view": lambda: y[2:5],
        "numpy": lambda: y.numpy(),
        "dlpack": lambda: np.from_dlpack(y),
        "shared": lambda: y.share_memory_() is None,  # shared with other processes: nothing kept here
    }[hold]()
    ptr = y.data_ptr()
    del y
    for _ in range(4):
        out = pipe(X8)
        assert out.data_ptr() != ptr
        del out
    if hold == "storage":
        after = torch.empty(0).set_(kept, 0, ref.shape)
        assert torch.equal(after, ref)
    elif hold == "view":
        assert torch.equal(kept, ref[2:5])
    elif hold in ("numpy", "dlpack"):
        np.testing.assert_array_equal(kept, ref.numpy())


def test_item1_dropped_outputs_are_reused() -> None:
    """The saving is kept: with no holder, two buffers take turns (no fresh page faults)."""
    pipe = ak.Pipeline([ak.Contrast(factor=(0.5, 1.5))], seed=0)
    ptrs = set()
    for _ in range(6):
        y = pipe(X8)
        ptrs.add(y.data_ptr())
    assert len(ptrs) == 2
