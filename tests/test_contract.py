"""The reproducibility contract: item i at epoch e gets the same params on every path.

Params are a function of (pipeline seed, loader seed, index, epoch, rank) only, whatever the
backend (batched tensor or per-image Albumentations), device, batch size or worker count; a
peek does not advance the epoch; DataLoader workers never repeat each other's draws.
"""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import augkit as ak
from augkit.images import sample_images
from augkit.random import Draw, item_keys

N = 12


class Photos(Dataset):
    """(image HWC uint8, index) items cut from a bundled photo, 24x24."""

    def __init__(self) -> None:
        photo = sample_images()["astronaut"]
        self.items = [np.ascontiguousarray(photo[100 * (i // 4) : 100 * (i // 4) + 96 : 4, 100 * (i % 4) : 100 * (i % 4) + 96 : 4]) for i in range(N)]

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int):
        return self.items[i], i


def pipe(seed: int = 5) -> ak.Pipeline:
    return ak.Pipeline([ak.HorizontalFlip(), ak.Zoom((0.8, 1.2)), ak.Contrast((0.6, 1.4)), ak.GaussianNoise((0.0, 0.05))], seed=seed)


def by_index(ld, epoch: int | None = None) -> dict[int, torch.Tensor]:
    if epoch is not None:
        ld.set_epoch(epoch)
    out = {}
    for x, idx in ld:
        for img, i in zip(x, idx.tolist()):
            out[i] = img.clone()
    return out


@pytest.fixture(scope="module")
def photos():
    return Photos()


@pytest.fixture(scope="module")
def reference(photos):
    return by_index(ak.loader(photos, pipe(), batch_size=1, device="cpu", num_workers=0, backend="tensor", seed=3))


@pytest.mark.parametrize("batch_size,workers", [(5, 0), (12, 2), (7, 2)])
def test_tensor_path_is_independent_of_batch_size_and_workers(photos, reference, batch_size, workers):
    got = by_index(ak.loader(photos, pipe(), batch_size=batch_size, device="cpu", num_workers=workers, backend="tensor", seed=3))
    assert all(torch.equal(got[i], reference[i]) for i in range(N))


@pytest.mark.parametrize("workers", [0, 2])
def test_albumentations_path_gives_the_same_augmentations(photos, reference, workers):
    got = by_index(ak.loader(photos, pipe(), batch_size=4, device="cpu", num_workers=workers, backend="albumentations", seed=3))
    for i in range(N):  # same params; pixels within the backends' parity tolerance (uint8 rounding)
        assert (got[i] - reference[i]).abs().mean() <= 1.5 / 255, i


def test_keys_change_with_epoch_seed_and_rank(photos, reference):
    ld = ak.loader(photos, pipe(), batch_size=4, device="cpu", num_workers=0, backend="tensor", seed=3)
    e1 = by_index(ld, epoch=1)
    assert not any(torch.equal(e1[i], reference[i]) for i in range(N))
    other_seed = by_index(ak.loader(photos, pipe(), batch_size=4, device="cpu", num_workers=0, backend="tensor", seed=4))
    assert not any(torch.equal(other_seed[i], reference[i]) for i in range(N))
    other_rank = by_index(ak.loader(photos, pipe(), batch_size=4, device="cpu", num_workers=0, backend="tensor", seed=3, rank=1))
    assert not any(torch.equal(other_rank[i], reference[i]) for i in range(N))
    other_pipe = by_index(ak.loader(photos, pipe(6), batch_size=4, device="cpu", num_workers=0, backend="tensor", seed=3))
    assert not any(torch.equal(other_pipe[i], reference[i]) for i in range(N))


@pytest.mark.parametrize("backend", ["tensor", "albumentations"])
def test_a_peek_does_not_advance_the_epoch(photos, backend):
    ld = ak.loader(photos, pipe(), batch_size=4, device="cpu", num_workers=0, backend=backend, seed=3, shuffle=True)
    first = next(iter(ld))
    again = next(iter(ld))
    assert ld.epoch == 0 and torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    for _ in ld:  # the whole epoch: now it counts
        pass
    assert ld.epoch == 1
    assert not torch.equal(next(iter(ld))[0], first[0])


def test_item_keys_are_one_vectorized_function_of_base_and_index():
    idx = torch.tensor([0, 5, 2**40, 7])
    keys = item_keys(11, idx)
    assert keys.dtype == torch.int64 and (keys >= 0).all()
    assert [int(item_keys(11, idx[i : i + 1])[0]) for i in range(4)] == keys.tolist()  # batch-independent
    assert len(set(keys.tolist())) == 4 and not torch.equal(item_keys(12, idx), keys)


def test_sampled_params_depend_on_the_key_only():
    p = pipe()
    keys = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    batch = p.sample(8, keys=keys)
    for i in range(8):
        one = p.sample_keyed([int(keys[i])])
        for v_all, v_one in zip(batch.values, one.values):
            assert all(torch.equal(v_all[k][i : i + 1], v_one[k]) for k in v_all)
    rows = batch.values[1]["scale"]
    assert rows[1] == rows[3]  # equal keys, equal draws


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_draws_equal_cpu_draws():
    p, keys = pipe(), torch.arange(64)
    cpu, cuda = p.sample(64, keys=keys), p.sample(64, "cuda", keys=keys.cuda())
    for a, b in zip(cpu.values, cuda.values):
        assert all(torch.equal(a[k], b[k].cpu()) for k in a)


def test_draws_are_exact_integers_of_the_hash():
    """The uniforms are k / 2**24: exact in float32 on every device (no rounding to differ)."""
    u = Draw(torch.arange(1000)).rand(3)
    assert torch.equal(u * 2**24, (u * 2**24).round()) and 0 <= u.min() and u.max() < 1


class _TensorInWorkers(Dataset):
    """Calls the batched tensor backend inside DataLoader workers (as a collate or __getitem__ might)."""

    def __init__(self) -> None:
        self.pipe = ak.Pipeline([ak.Zoom((0.5, 2.0))], seed=0)
        self.x = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.pipe(self.x, return_params=True)[1][0]["scale"]


def test_tensor_path_in_workers_does_not_repeat_draws():
    torch.manual_seed(0)
    ds = _TensorInWorkers()
    ds.pipe(ds.x)  # the main process drew first: forked workers inherit its generator state
    dl = DataLoader(ds, batch_size=1, num_workers=2)
    e0 = [float(s) for s in dl]
    e1 = [float(s) for s in dl]
    assert len(set(e0)) == 8, e0  # workers do not repeat each other's draws
    assert set(e0).isdisjoint(e1)  # nor the previous epoch's (new workers, new seeds)


def test_augmented_dataset_with_persistent_workers_follows_set_epoch(photos):
    ds = ak.AugmentedDataset(photos, pipe(), seed=3)
    dl = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True)
    epochs = []
    for e in range(2):
        ds.set_epoch(e)
        epochs.append(torch.cat([x for x, _ in dl]))
    assert not torch.equal(epochs[0], epochs[1])
    ds.set_epoch(1)
    assert torch.equal(torch.stack([ds[i][0] for i in range(N)]), epochs[1])
