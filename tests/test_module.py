"""ak.Augment (nn.Module wrapper) and the framework recipes of docs/ecosystem.md (Lightning, datasets)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import augkit as ak


def _batch(b: int = 6, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, generator=g)


# the module ---------------------------------------------------------------------------------
def test_augment_is_a_parameterless_module_in_sequential():
    aug = ak.Augment(ak.default_pipeline(seed=0))
    model = nn.Sequential(aug, nn.Conv2d(3, 2, 3))
    assert list(aug.parameters()) == [] and list(aug.buffers()) == [] and aug.state_dict() == {}
    y = model(_batch())
    assert y.shape == (6, 2, 14, 14) and y.dtype == torch.float32
    assert model.to("cpu") is model and model.to(torch.float64) is model  # moves like any module
    assert "HorizontalFlip" in repr(model)


def test_train_mode_augments_like_the_pipeline_eval_mode_passes_through():
    x = _batch()
    aug = ak.Augment(ak.default_pipeline(seed=3))
    ref = ak.default_pipeline(seed=3)  # a twin pipeline: same seed, same draws
    assert aug.training
    torch.testing.assert_close(aug(x), ref(x), rtol=0, atol=0)
    aug.eval()
    out = aug(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, x.float() / 255, rtol=0, atol=1e-7)  # no augmentation, same scale
    assert torch.equal(aug(x), out)  # deterministic in eval
    aug.train()
    assert not torch.allclose(aug(x), x.float() / 255)


def test_eval_pipe_runs_in_eval_mode_only():
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    aug = ak.Pipeline([ak.HorizontalFlip(p=1.0)], seed=0).as_module(eval_pipe=ak.Pipeline([ak.Normalize(mean, std)]))
    assert isinstance(aug, ak.Augment)
    x = _batch(2, 8)
    want = (x.float() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    torch.testing.assert_close(aug.eval()(x), want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(aug.train()(x), x.flip(3).float() / 255, rtol=0, atol=1e-7)


def test_set_epoch_keys_the_draws_by_epoch():
    x = _batch()
    a, b = ak.Augment(ak.default_pipeline(seed=1)), ak.Augment(ak.default_pipeline(seed=1))
    a.set_epoch(4)
    first = a(x)
    a.set_epoch(5)
    a(x)
    b.set_epoch(4)  # another run, resumed at epoch 4: same draws
    torch.testing.assert_close(b(x), first, rtol=0, atol=0)
    b.set_epoch(0)
    assert not torch.allclose(b(x), first)
    c = ak.Augment(ak.default_pipeline(seed=2))
    c.set_epoch(4)
    assert not torch.allclose(c(x), first)  # the pipeline's seed is part of the key


def test_params_replay_and_single_image():
    pipe = ak.default_pipeline(seed=0)
    aug = ak.Augment(pipe)
    x = _batch(3)
    y, params = pipe(x, return_params=True)
    torch.testing.assert_close(aug(x, params), y, rtol=0, atol=0)
    aug.set_epoch(0)
    assert aug(x[0]).shape == (3, 16, 16)


@pytest.mark.parametrize(
    "args, match",
    [
        (("not a pipeline",), "pipe must be an ak.Pipeline, got str"),
        ((ak.default_pipeline(), nn.Identity()), "eval_pipe must be an ak.Pipeline or None, got Identity"),
        ((ak.default_pipeline(), None, 1.5), "seed must be an int, got 1.5"),
    ],
)
def test_bad_construction(args, match):
    with pytest.raises(TypeError, match=match):
        ak.Augment(*args)


def test_bad_input_and_epoch():
    aug = ak.Augment(ak.default_pipeline())
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        aug(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"epoch must be an int >= 0 or None, got -1"):
        aug.set_epoch(-1)
    with pytest.raises(ValueError, match=r"x must be \(B,C,H,W\)"):
        aug(torch.zeros(8, 8, dtype=torch.uint8))


def test_torch_compile_runs_and_matches_eager():
    def make() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(ak.default_pipeline(seed=1).as_module(), nn.Conv2d(3, 4, 3), nn.ReLU())

    x = _batch(4)
    eager = make()
    want = [eager(x) for _ in range(3)]  # three calls: three different draws
    compiled = torch.compile(make())
    got = [compiled(x) for _ in range(3)]
    for w, g in zip(want, got, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got[0], got[1])


# Lightning recipe (docs/ecosystem.md) -------------------------------------------------------
def _lightning_run(max_epochs: int = 2):
    L = pytest.importorskip("lightning")

    class LitClassifier(L.LightningModule):
        def __init__(self, pipe: ak.Pipeline) -> None:
            super().__init__()
            self.augment = ak.Augment(pipe)  # train: augment on the device; eval: uint8 -> float
            self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
            self.seen: list[tuple[str, int, torch.Tensor]] = []

        def on_after_batch_transfer(self, batch, dataloader_idx):
            x, y = batch  # uint8 (B, C, H, W), already on self.device
            if self.trainer.training:
                self.augment.set_epoch(self.trainer.current_epoch)
            x = self.augment(x)
            self.seen.append(("train" if self.trainer.training else "val", self.trainer.current_epoch, x.clone()))
            return x, y

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    x = _batch(8, 12)
    ds = torch.utils.data.TensorDataset(x, torch.arange(8) % 2)
    dl = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False)
    model = LitClassifier(ak.default_pipeline(seed=0))
    trainer = L.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice about workers and logging
        trainer.fit(model, dl, dl)
    return model.seen, x


def test_lightning_recipe_augments_training_batches_by_epoch():
    seen, x = _lightning_run()
    train = [(e, t) for kind, e, t in seen if kind == "train"]
    val = [(e, t) for kind, e, t in seen if kind == "val"]
    assert [e for e, _ in train] == [0, 0, 1, 1] and len(val) == 4
    for _, t in val:  # validation: no augmentation, only uint8 -> float
        assert any(torch.allclose(t, x[i : i + 4].float() / 255, atol=1e-7) for i in (0, 4))
    # each training batch is the epoch-keyed draw: recompute it outside Lightning
    ref = ak.Augment(ak.default_pipeline(seed=0))
    for epoch in (0, 1):
        ref.set_epoch(epoch)
        for k, i in enumerate((0, 4)):
            torch.testing.assert_close(train[2 * epoch + k][1], ref(x[i : i + 4]), rtol=0, atol=0)
    assert not torch.allclose(train[0][1], train[2][1])  # epochs differ
    seen2, _ = _lightning_run()  # a second run reproduces the first
    for (_, _, a), (_, _, b) in zip(seen, seen2, strict=True):
        assert torch.equal(a, b)


# Hugging Face datasets recipes (docs/ecosystem.md) -------------------------------------------
def _hf_dataset(n: int = 6):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)) for _ in range(n)]
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    return datasets.Dataset.from_dict({"image": images, "label": list(range(n))}, features=feats), images


def test_datasets_with_transform_recipe():
    ds, images = _hf_dataset()
    pipe = ak.Pipeline([ak.HorizontalFlip(p=1.0), ak.Contrast((0.5, 0.5))], seed=0)

    def transform(batch: dict) -> dict:
        x = torch.stack([torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1) for im in batch["image"]])
        return {"pixel_values": pipe(x), "label": torch.tensor(batch["label"])}

    out = ds.with_transform(transform)[0:3]
    assert out["pixel_values"].shape == (3, 3, 10, 12) and out["label"].tolist() == [0, 1, 2]
    for k in range(3):  # independent reference: flip with numpy, blend with the mean luma by hand
        im = np.asarray(images[k], dtype=np.float64)[:, ::-1] / 255
        m = (im @ np.array([0.299, 0.587, 0.114])).mean()
        want = np.clip(m + 0.5 * (im - m), 0, 1).transpose(2, 0, 1)
        np.testing.assert_allclose(out["pixel_values"][k].numpy(), want, atol=1e-5)


def test_datasets_torch_format_through_ak_loader():
    ds, images = _hf_dataset()
    pipe = ak.Pipeline([ak.VerticalFlip(p=1.0)], seed=0)
    loader = ak.loader(ds.with_format("torch"), pipe, batch_size=4, device="cpu", num_workers=0, shuffle=False)
    batches = list(loader)
    assert [b["image"].shape[0] for b in batches] == [4, 2]
    x = torch.cat([b["image"] for b in batches])
    want = torch.from_numpy(np.stack([np.asarray(im)[::-1] for im in images]).copy()).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(x, want, rtol=0, atol=1e-7)
    assert torch.cat([b["label"] for b in batches]).tolist() == list(range(6))


# IterableDataset -------------------------------------------------------------------------------
class _Stream(torch.utils.data.IterableDataset):
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __iter__(self):
        return iter(zip(self.x, range(len(self.x)), strict=True))


def test_loader_over_an_iterable_dataset_says_what_to_do():
    with pytest.raises(TypeError, match=r"ak.loader needs a map-style dataset .* got _Stream; .*ak.DeviceLoader\(DataLoader"):
        ak.loader(_Stream(_batch(4)), ak.default_pipeline(), device="cpu")


def test_the_recommended_iterable_recipe_runs():
    x = _batch(6, 8)
    dl = torch.utils.data.DataLoader(_Stream(x), batch_size=4, collate_fn=ak.collate_uint8)
    out = list(ak.DeviceLoader(dl, ak.Pipeline([ak.HorizontalFlip(p=1.0)], seed=0), device="cpu"))
    assert [tuple(b[0].shape) for b in out] == [(4, 3, 8, 8), (2, 3, 8, 8)]
    torch.testing.assert_close(torch.cat([b[0] for b in out]), x.flip(3).float() / 255, rtol=0, atol=1e-7)
    assert torch.cat([b[1] for b in out]).tolist() == list(range(6))


def test_index_keys_items_as_ak_loader_does():
    x = _batch(8, 12)
    ds = torch.utils.data.TensorDataset(x, torch.arange(8))
    pipe = ak.default_pipeline(seed=5)
    loader = ak.loader(ds, pipe, batch_size=4, device="cpu", backend="tensor", num_workers=0, shuffle=False, seed=3)
    first_epoch = [b[0] for b in loader]
    second_epoch = [b[0] for b in loader]
    aug = ak.Augment(ak.default_pipeline(seed=5), seed=3)
    for epoch, batches in ((0, first_epoch), (1, second_epoch)):
        aug.set_epoch(epoch)
        order = torch.tensor([6, 1, 4, 3, 0, 2, 7, 5])  # another order and batch size: same items, same pixels
        got = aug(x[order], index=order)
        torch.testing.assert_close(got[torch.argsort(order)], torch.cat(batches), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"index must hold one dataset index per sample \(8\), got shape \(3,\)"):
        aug(x, index=torch.arange(3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_on_cuda_matches_the_cpu_for_keyed_items():
    x = _batch(8, 16)
    index = torch.arange(8)
    cpu = ak.Augment(ak.default_pipeline(seed=2))
    gpu = ak.Augment(ak.default_pipeline(seed=2)).to("cuda")
    cpu.set_epoch(1)
    gpu.set_epoch(1)
    want = cpu(x, index=index)
    got = gpu(x.cuda(), index=index.cuda())
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), want, rtol=0, atol=2e-5)  # same params; kernels differ in rounding
    compiled = torch.compile(nn.Sequential(gpu, nn.Conv2d(3, 2, 3).cuda()))
    assert compiled(x.cuda()).shape == (8, 2, 14, 14)
