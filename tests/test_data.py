"""augkit.data: dataset/loader wrappers on real data (digits, PNGs of bundled photos, TensorDataset)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import augkit as ak
from augkit.data.datasets import epoch_base
from augkit.images import sample_batch
from augkit.random import item_keys

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


# data ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits() -> TensorDataset:
    """scikit-learn digits as (1, 8, 8) uint8 images with their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(np.round(d.images[:120] * (255 / 16)).astype(np.uint8))[:, None]  # (N, 1, 8, 8)
    return TensorDataset(x, torch.from_numpy(d.target[:120]))


class PngFolder:
    """Map-style dataset over a folder of PNGs: (PIL image, label) items, decoded on access."""

    def __init__(self, paths: list, labels: list[int]) -> None:
        self.paths, self.labels = paths, labels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        with Image.open(self.paths[i]) as im:
            return im.convert("RGB"), self.labels[i]


@pytest.fixture(scope="module")
def png_folder(tmp_path_factory, photos) -> PngFolder:
    """16 PNGs (104x104: above the CPU tensor-path size) written from the bundled photographs, labels = photo index."""
    root = tmp_path_factory.mktemp("pngs")
    paths, labels = [], []
    for k in range(16):
        label = k % len(photos)
        img = Image.fromarray(list(photos.values())[label]).resize((112 - 8 * (k % 2), 112), Image.BILINEAR)
        img = img.crop((0, 0, 104, 104)) if k % 2 == 0 else img.resize((104, 104))
        paths.append(root / f"{k:02d}.png")
        img.save(paths[-1])
        labels.append(label)
    return PngFolder(paths, labels)


def no_noise_pipe(seed: int = 0) -> ak.Pipeline:
    return ak.Pipeline([ak.HorizontalFlip(p=0.5), ak.VerticalFlip(p=0.5), ak.Zoom(scale=(0.8, 1.2)), ak.Contrast(factor=(0.7, 1.3))], seed=seed)


def run(loader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*[(x.clone(), y.clone()) for x, y in loader], strict=True)
    return torch.cat(xs), torch.cat(ys)


# collate_uint8 ------------------------------------------------------------------------
def test_collate_uint8_accepts_every_image_kind_without_float(photos):
    img = np.ascontiguousarray(photos["chelsea"][:40, :50])  # (40, 50, 3) uint8, non-square
    ref = torch.from_numpy(img.transpose(2, 0, 1).copy())  # independent HWC -> CHW
    items = [Image.fromarray(img), img, ref.clone()]
    out = ak.collate_uint8(items)
    assert out.dtype == torch.uint8 and out.shape == (3, 3, 40, 50)
    for b in range(3):
        assert torch.equal(out[b], ref)
    grey = img[..., 0]
    out = ak.collate_uint8([grey, Image.fromarray(grey), torch.from_numpy(grey.copy())])
    assert out.shape == (3, 1, 40, 50) and all(torch.equal(out[b, 0], torch.from_numpy(grey)) for b in range(3))


def test_collate_uint8_keeps_targets_for_tuples_and_dicts(photos):
    img = photos["coffee"][:16, :16]
    tup = ak.collate_uint8([(img, 3, "a"), (img, 5, "b")])
    assert tup[0].shape == (2, 3, 16, 16) and tup[1].tolist() == [3, 5] and tup[2] == ["a", "b"]
    d = ak.collate_uint8([{"pix": img, "y": 1.5}, {"pix": img, "y": 2.5}], image_key="pix")
    assert d["pix"].dtype == torch.uint8 and d["y"].tolist() == [1.5, 2.5]


def test_collate_uint8_mixed_sizes_names_sizes_and_suggests_resize(photos):
    a, b = photos["coffee"][:32, :32], photos["coffee"][:28, :30]
    with pytest.raises(ValueError, match=r"3x32x32 \(items \[0, 2\]\).*3x28x30 \(items \[1\]\).*[Rr]esize or crop"):
        ak.collate_uint8([(a, 0), (b, 1), (a, 2)])


@pytest.mark.parametrize(
    "item, match",
    [
        (7, "got int"),
        ("cat.png", "got str"),
        ((np.zeros((8, 8, 3), np.float32), 0), "uint8, got numpy dtype float32"),
        ((torch.zeros(3, 8, 8), 0), "uint8, got tensor dtype torch.float32"),
        (([1, 2, 3], 0), "got list"),
    ],
)
def test_collate_uint8_unsupported_items_raise_type_error_naming_type(item, match):
    with pytest.raises(TypeError, match=match):
        ak.collate_uint8([item, item])


def test_channel_order_mistakes_are_named():
    with pytest.raises(ValueError, match="looks channels-first"):
        ak.collate_uint8([np.zeros((3, 32, 32), np.uint8)])
    with pytest.raises(ValueError, match="looks channels-last"):
        ak.collate_uint8([torch.zeros(32, 32, 3, dtype=torch.uint8)])


# device rules -------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_cuda_is_a_clear_error(digits):
    with pytest.raises(RuntimeError, match="device='cuda' but CUDA is not available.*device='auto'"):
        ak.loader(digits, ak.default_pipeline(0), device="cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        ak.DeviceLoader(DataLoader(digits, batch_size=4), ak.default_pipeline(0), device="cuda")


def test_auto_rule_picks_tensor_for_small_and_albumentations_for_large_on_cpu(digits, png_folder):
    from augkit.data import choose_backend

    assert choose_backend(torch.device("cuda"), (224, 224)) == "tensor"
    assert choose_backend(torch.device("cpu"), (32, 32)) == "tensor"
    assert choose_backend(torch.device("cpu"), (224, 224)) == "albumentations"
    if not torch.cuda.is_available():
        assert ak.loader(digits, ak.default_pipeline(0), num_workers=0).backend == "tensor"
        assert ak.loader(png_folder, ak.default_pipeline(0), num_workers=0).backend == "albumentations"


def test_bad_loader_arguments():
    ds = TensorDataset(sample_batch(16, 4), torch.arange(4))
    with pytest.raises(ValueError, match="backend must be"):
        ak.loader(ds, ak.default_pipeline(0), backend="kornia")
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        ak.loader(ds, ak.default_pipeline(0), batch_size=0)
    with pytest.raises(TypeError, match="pipe must be an ak.Pipeline, got list"):
        ak.loader(ds, [ak.Zoom()])
    with pytest.raises(ValueError, match="device must be"):
        ak.loader(ds, ak.default_pipeline(0), device="gpu0")


def test_device_loader_rejects_non_collated_batches():
    hwc = [(np.zeros((16, 16, 3), np.uint8), 0)] * 4
    dl = ak.DeviceLoader(DataLoader(hwc, batch_size=2), ak.default_pipeline(0), device="cpu")  # default collate
    with pytest.raises(ValueError, match=r"channels-last.*collate_uint8"):
        next(iter(dl))
    dl = ak.DeviceLoader(DataLoader(hwc, batch_size=2, collate_fn=list), ak.default_pipeline(0), device="cpu")
    with pytest.raises(TypeError, match=r"got tuple; build the DataLoader with collate_fn=ak.collate_uint8"):
        next(iter(dl))


# tensor path (batched) ----------------------------------------------------------------
def test_digits_tensor_path_shapes_dtypes_targets(digits):
    ld = ak.loader(digits, ak.default_pipeline(0), batch_size=32, device="cpu", num_workers=0, shuffle=False)
    assert ld.backend == "tensor" and len(ld) == 4
    x, y = run(ld)
    assert x.shape == (120, 1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(y, digits.tensors[1])  # targets untouched, in order
    assert not torch.allclose(x, digits.tensors[0].float() / 255)  # it did augment


def test_tensor_path_replays_and_is_independent_of_workers():
    ds = TensorDataset(sample_batch(24, 40), torch.arange(40))
    pipe = ak.default_pipeline(3)
    x0, y0 = run(ak.loader(ds, pipe, batch_size=8, device="cpu", num_workers=0, seed=1, backend="tensor"))
    x2, y2 = run(ak.loader(ds, pipe, batch_size=8, device="cpu", num_workers=2, seed=1, backend="tensor"))
    assert torch.equal(y0, y2) and torch.equal(x0, x2)
    assert sorted(y0.tolist()) == list(range(40)) and y0.tolist() != list(range(40))  # shuffled, all there
    ld = ak.loader(ds, pipe, batch_size=8, device="cpu", num_workers=0, seed=1, backend="tensor")
    e0, e1 = run(ld), run(ld)  # epochs 0 and 1
    assert torch.equal(e0[0], x0) and not torch.equal(e1[1], e0[1]) and not torch.allclose(e1[0], e0[0])
    ld.set_epoch(0)
    assert torch.equal(run(ld)[0], x0)


def test_device_loader_applies_the_pipeline_with_its_epoch_generator():
    x = sample_batch(20, 12)
    pipe = ak.default_pipeline(0)
    dl = ak.DeviceLoader(DataLoader(TensorDataset(x), batch_size=6, collate_fn=ak.collate_uint8), pipe, device="cpu", seed=4)
    (a,), (b,) = list(dl)
    gen = dl.generator(0)
    ref = [pipe(x[i : i + 6], params=pipe.sample(6, "cpu", generator=gen)) for i in (0, 6)]
    assert torch.equal(a, ref[0]) and torch.equal(b, ref[1])


# Albumentations path (per image, workers) ---------------------------------------------
def test_png_folder_albumentations_path_shapes_dtypes_targets(png_folder):
    ld = ak.loader(png_folder, ak.default_pipeline(0), batch_size=5, device="cpu", num_workers=0, shuffle=False)
    assert ld.backend == "albumentations"
    x, y = run(ld)
    assert x.shape == (16, 3, 104, 104) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.tolist() == png_folder.labels


def test_albumentations_path_independent_of_workers_and_epochs_differ(png_folder):
    pipe = ak.default_pipeline(0)
    kw = dict(batch_size=4, device="cpu", seed=0, backend="albumentations")
    l0 = ak.loader(png_folder, pipe, num_workers=0, **kw)
    l2 = ak.loader(png_folder, pipe, num_workers=2, **kw)
    (x0, y0), (x2, y2) = run(l0), run(l2)
    assert torch.equal(y0, y2) and torch.equal(x0, x2)
    x0b, y0b = run(l0)  # epoch 1
    x2b, y2b = run(l2)  # epoch 1 on the same (persistent) workers
    assert torch.equal(y0b, y2b) and torch.equal(x0b, x2b)
    assert not torch.equal(y0b, y0)  # reshuffled
    order = torch.argsort(y0 * 100 + torch.arange(16)), torch.argsort(y0b * 100 + torch.arange(16))
    assert not torch.allclose(x0[order[0]], x0b[order[1]], atol=2 / 255)  # other augmentations


def test_augmented_dataset_item_depends_on_index_epoch_rank_only(png_folder):
    pipe = ak.default_pipeline(0)
    ds = ak.AugmentedDataset(png_folder, pipe, rank=0)
    first = [ds[i][0] for i in (3, 5)]
    assert torch.equal(ds[5][0], first[1]) and torch.equal(ds[3][0], first[0])  # order does not matter
    ds.set_epoch(1)
    assert not torch.equal(ds[3][0], first[0])
    ds.set_epoch(0)
    assert torch.equal(ds[3][0], first[0])
    assert not torch.equal(ak.AugmentedDataset(png_folder, pipe, rank=1)[3][0], first[0])


def test_cpu_path_uses_the_keyed_params_like_the_tensor_backend(png_folder):
    """Same keyed params: the per-image output matches the batched backend's (parity itself is issue 3's)."""
    pipe = no_noise_pipe(0)
    ds = ak.AugmentedDataset(png_folder, pipe, rank=0, seed=2)
    for i in range(6):
        got = ds[i][0]
        img = ak.data.to_chw_uint8(png_folder[i][0])[None]
        ref = pipe(img, params=pipe.sample_keyed(item_keys(epoch_base(pipe.seed, 2, 0, 0), torch.tensor([i]))))[0]
        assert (got - ref).abs().mean() <= 1 / 255


def test_normalize_is_applied_after_batching_on_both_paths(png_folder):
    ops = [*no_noise_pipe(0).ops, ak.Normalize(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))]
    pipe, plain = ak.Pipeline(ops, seed=0), ak.Pipeline(ops[:-1], seed=0)
    kw = dict(batch_size=16, device="cpu", num_workers=0, shuffle=False, seed=5)  # one batch: same draws
    mean, std = torch.tensor([0.5, 0.4, 0.3])[:, None, None], torch.tensor([0.2, 0.25, 0.3])[:, None, None]
    x = {}
    for backend in ("tensor", "albumentations"):
        xn, _ = run(ak.loader(png_folder, pipe, backend=backend, **kw))
        x[backend], _ = run(ak.loader(png_folder, plain, backend=backend, **kw))
        torch.testing.assert_close(xn, (x[backend] - mean) / std, atol=1e-5, rtol=1e-5)
    item = ak.AugmentedDataset(png_folder, pipe, seed=5)[2][0]  # output="float": normalized per image
    torch.testing.assert_close(item, (x["albumentations"][2] - mean) / std, atol=1e-5, rtol=1e-5)


def test_held_batches_are_never_overwritten(png_folder):
    """The CPU path reuses float buffers only when the caller dropped them."""
    ld = ak.loader(png_folder, ak.default_pipeline(0), batch_size=4, device="cpu", num_workers=0, backend="albumentations")
    ref, _ = run(ld)
    ld.set_epoch(0)
    held = [x for x, _ in ld]  # no copies
    view = None
    for x, _ in ld:  # epoch 1: buffers of dropped batches may be reused
        view = x[0] if view is None else view
    assert torch.equal(torch.cat(held), ref)
    assert len({t.data_ptr() for t in held}) == len(held)
    assert not any(view.data_ptr() == t.data_ptr() for t in held)
    assert len({x.data_ptr() for x, _ in ld}) == 2  # dropped batches: two buffers take turns


def test_cpu_and_tensor_paths_agree_in_distribution(photos):
    """Many augmentations of one photo: per-image statistics from both paths pass a KS test."""
    from scipy.stats import ks_2samp

    n = 400
    img = torch.from_numpy(np.array(Image.fromarray(photos["chelsea"]).resize((40, 32)))).permute(2, 0, 1)
    ds = TensorDataset(img.expand(n, -1, -1, -1), torch.zeros(n))
    pipe = ak.default_pipeline(7)
    xa, _ = run(ak.loader(ds, pipe, batch_size=100, device="cpu", num_workers=0, backend="albumentations"))
    xt, _ = run(ak.loader(ds, pipe, batch_size=100, device="cpu", num_workers=0, backend="tensor"))
    ref = img.float() / 255
    for stat in (
        lambda x: x.mean((1, 2, 3)),  # zoom (border fill) and contrast
        lambda x: x.std((1, 2, 3)),  # contrast and noise
        lambda x: (x[:, :, :, :20].mean((1, 2, 3)) - x[:, :, :, 20:].mean((1, 2, 3))),  # horizontal flips
        lambda x: (x[:, :, :16].mean((1, 2, 3)) - x[:, :, 16:].mean((1, 2, 3))),  # vertical flips
        lambda x: (x - ref).abs().mean((1, 2, 3)),
    ):
        assert ks_2samp(stat(xa).numpy(), stat(xt).numpy()).pvalue > 0.01


def test_dict_items_keep_their_other_keys_on_both_paths(png_folder):
    class Dicts:
        def __len__(self):
            return 6

        def __getitem__(self, i):
            img, y = png_folder[i]
            return {"label": y, "pixels": img, "name": f"im{i}"}

    for backend in ("tensor", "albumentations"):
        ld = ak.loader(Dicts(), ak.default_pipeline(0), batch_size=3, device="cpu", num_workers=0, shuffle=False,
                       image_key="pixels", backend=backend)
        batches = list(ld)
        assert [b["name"] for b in batches] == [["im0", "im1", "im2"], ["im3", "im4", "im5"]]
        assert batches[1]["label"].tolist() == png_folder.labels[3:6]
        assert batches[0]["pixels"].shape == (3, 3, 104, 104) and batches[0]["pixels"].dtype == torch.float32
    with pytest.raises(KeyError, match="without image_key 'image'.*'pixels'"):
        ak.loader(Dicts(), ak.default_pipeline(0), device="cpu")


# distributed --------------------------------------------------------------------------
def test_distributed_sampler_ranks_split_data_and_rerun_identically():
    ds = TensorDataset(sample_batch(16, 20), torch.arange(20))
    pipe = ak.default_pipeline(0)

    def rank_run(rank: int):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        return run(ak.loader(ds, pipe, batch_size=5, device="cpu", num_workers=0, sampler=sampler, rank=rank, backend="tensor"))

    (x0, y0), (_, y1) = rank_run(0), rank_run(1)
    assert sorted(y0.tolist() + y1.tolist()) == list(range(20))
    assert torch.equal(rank_run(0)[0], x0)
    # the ranks' generators differ: identical inputs at one batch position get different draws
    same = ak.DeviceLoader([sample_batch(16, 4)], pipe, device="cpu", rank=0)
    other = ak.DeviceLoader([sample_batch(16, 4)], pipe, device="cpu", rank=1)
    assert not torch.equal(next(iter(same)), next(iter(other)))


# CUDA ---------------------------------------------------------------------------------
@cuda
def test_device_loader_on_cuda_moves_uint8_and_matches_pipe():
    x = sample_batch(32, 16)
    pipe = ak.default_pipeline(0)
    seen = []
    call = pipe.__class__.__call__

    class Spy(ak.Pipeline):
        def __call__(self, t, **kw):
            seen.append((t.dtype, t.device.type))
            return call(self, t, **kw)

    spy = Spy(pipe.ops, seed=0)
    dl = ak.DeviceLoader(DataLoader(TensorDataset(x, torch.arange(16)), batch_size=8, collate_fn=ak.collate_uint8), spy)
    out = list(dl)
    assert seen == [(torch.uint8, "cuda")] * 2
    gen = dl.generator(0)
    for k, (y, t) in enumerate(out):
        assert y.device.type == "cuda" and y.dtype == torch.float32 and t.device.type == "cpu"
        ref = pipe(x[8 * k : 8 * k + 8].cuda(), params=pipe.sample(8, "cuda", generator=gen))
        assert torch.equal(y, ref)


@cuda
def test_auto_loader_on_cuda_uses_device_path(digits):
    ld = ak.loader(digits, ak.default_pipeline(0), batch_size=32, num_workers=0)
    assert ld.backend == "tensor" and ld.device.type == "cuda"
    x, y = next(iter(ld))
    assert x.is_cuda and x.shape == (32, 1, 8, 8)
