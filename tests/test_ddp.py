"""DDP: two processes (torch.multiprocessing, gloo on the CPU), one ``ak.loader`` per rank with a
DistributedSampler. Ranks see disjoint samples with different augmentations, and a restarted run
with the same seed and epoch sees the same augmentations again."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DistributedSampler

import augkit as ak

WORLD = 2
N = 16  # items; 8 per rank, 2 batches of 4
BACKENDS = ("tensor", "albumentations")


class SameImage(torch.utils.data.Dataset):
    """N copies of one image, target = index: any difference between outputs is augmentation."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.image = torch.randint(0, 256, (3, 12, 12), generator=g, dtype=torch.uint8)

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.image, i


def run_rank(rank: int, init_file: str, out: str, epochs: list[int]) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        ds, pipe, seen = SameImage(), ak.default_pipeline(seed=4), {}
        for backend in BACKENDS:
            sampler = DistributedSampler(ds, shuffle=True, seed=1)  # rank and world from the process group
            loader = ak.loader(ds, pipe, batch_size=4, device="cpu", num_workers=0, sampler=sampler, backend=backend, seed=9)
            assert loader.inner.rank == rank  # ak.loader read the rank from torch.distributed
            for epoch in epochs:
                loader.set_epoch(epoch)  # once per epoch, before iterating: sampler order and augmentations
                seen[backend, epoch] = [(images.clone(), targets.clone()) for images, targets in loader]
        dist.barrier()
        torch.save(seen, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def launch(tmp: Path, name: str, epochs: list[int]) -> list[dict]:
    out = tmp / name
    out.mkdir()
    mp.spawn(run_rank, args=(str(tmp / f"{name}.init"), str(out), epochs), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def test_two_ranks_disjoint_samples_different_augmentations_same_after_restart(tmp_path):
    first = launch(tmp_path, "run", [0, 1])
    for backend in BACKENDS:
        for epoch in (0, 1):
            batches = [first[r][backend, epoch] for r in range(WORLD)]
            indices = [torch.cat([t for _, t in b]).tolist() for b in batches]
            assert len(indices[0]) == len(indices[1]) == N // WORLD
            assert set(indices[0]).isdisjoint(indices[1]) and set(indices[0]) | set(indices[1]) == set(range(N))
            images = [torch.cat([x for x, _ in b]) for b in batches]  # (8, 3, 12, 12) float per rank
            assert images[0].dtype == torch.float32 and images[0].shape == (N // WORLD, 3, 12, 12)
            # one source image everywhere: the i-th sample of rank 0 and of rank 1 differ by augmentation alone
            for i in range(N // WORLD):
                assert not torch.equal(images[0][i], images[1][i]), (backend, epoch, i)
        for r in range(WORLD):  # a new epoch, new augmentations
            assert not torch.equal(first[r][backend, 0][0][0], first[r][backend, 1][0][0])
    restarted = launch(tmp_path, "restart", [1])  # a fresh pair of processes resumes at epoch 1
    for r in range(WORLD):
        for backend in BACKENDS:
            again, before = restarted[r][backend, 1], first[r][backend, 1]
            assert len(again) == len(before)
            for (x1, t1), (x0, t0) in zip(again, before, strict=True):
                assert torch.equal(t1, t0) and torch.equal(x1, x0)
