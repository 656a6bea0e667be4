"""Albumentations backend: pixel parity with the tensor backend, distribution parity, seeding, bad input."""

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import ks_2samp
from torch.utils.data import DataLoader, Dataset

import augkit as ak
from augkit import functional as F
from augkit.backends.albu import normal_field_np
from augkit.params import Params

NO_NOISE = [ak.HorizontalFlip(p=0.5), ak.VerticalFlip(p=0.5), ak.Zoom(scale=(0.7, 1.3), fill=0.3), ak.Contrast(factor=(0.6, 1.4))]


def _tensor(img: np.ndarray, pipe: ak.Pipeline, params: Params) -> np.ndarray:
    """The tensor backend's output for one HW/HWC image, as HW/HWC float32 in [0, 1] units."""
    x = torch.from_numpy(np.ascontiguousarray(img.reshape(*img.shape[:2], -1))).permute(2, 0, 1)
    return pipe(x, params=params).permute(1, 2, 0).numpy().reshape(img.shape)


def _assert_close_u8(albu: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert albu.dtype == np.uint8 and albu.shape == ref.shape
    d = np.abs(albu.astype(np.float32) / 255 - ref) * 255  # in uint8 levels
    assert d.mean() <= 1.0, f"{what}: mean abs diff {d.mean():.3f}/255"
    assert d[2:-2, 2:-2].max() <= 3.0, f"{what}: interior max diff {d[2:-2, 2:-2].max():.3f}/255"


def _one(name: str, **values) -> dict:
    dtypes = {"apply": torch.bool, "seed": torch.int64}
    return {k: torch.tensor([v], dtype=dtypes.get(k, torch.float32)) for k, v in values.items()}


# one table of (op, fixed params) for every op that is deterministic given its params
FIXED = [
    (ak.HorizontalFlip(), {"apply": True}),
    (ak.VerticalFlip(), {"apply": True}),
    (ak.Zoom(fill=0.3), {"apply": True, "scale": 0.8}),
    (ak.Zoom(), {"apply": True, "scale": 1.17}),
    (ak.Zoom(), {"apply": False, "scale": 1.17}),
    (ak.Contrast(), {"apply": True, "factor": 0.6}),
    (ak.Contrast(), {"apply": True, "factor": 1.4}),
]


@pytest.mark.parametrize(("op", "values"), FIXED, ids=lambda v: repr(v)[:40])
def test_op_pixel_parity_fixed_params(photos, op, values):
    pipe = ak.Pipeline([op], seed=0)
    params = Params((type(op).__name__,), (_one(type(op).__name__, **values),))
    for name, img in photos.items():
        for im in (img, img[::2, ::3, 0]):  # RGB at full size; grey, another non-square size
            _assert_close_u8(pipe(im, params=params), _tensor(im, pipe, params), f"{op} on {name} {im.shape}")


def test_whole_pipeline_pixel_parity_without_noise(photos):
    pipe = ak.Pipeline(NO_NOISE, seed=3)
    for name, img in photos.items():
        for _ in range(3):
            out, params = pipe(img, return_params=True)
            _assert_close_u8(out, _tensor(img, pipe, params), f"pipeline on {name}")
            f32 = pipe(img.astype(np.float32) / 255, params=params)
            assert f32.dtype == np.float32
            np.testing.assert_allclose(f32, _tensor(img, pipe, params), atol=1e-4)


def test_normalize_parity(photos):
    pipe = ak.Pipeline([ak.Zoom(), ak.Normalize()], seed=0)
    img = photos["chelsea"]
    out, params = pipe(img, return_params=True)
    assert out.dtype == np.float32 and out.shape == img.shape
    np.testing.assert_allclose(out, _tensor(img, pipe, params), atol=3 / 255 / 0.224)


def test_noise_field_is_the_tensor_backends():
    for n, seed, std in [(150528, 5, 0.03), (7, 2**31 - 1, 0.05), (1, 0, 1.0), (1000, 77, 0.0)]:
        ref = F.normal_field(torch.tensor([seed]), torch.tensor([std]), torch.empty(1, n))[0].numpy()
        np.testing.assert_allclose(normal_field_np(seed, std, n), ref, rtol=0, atol=1e-6 * max(std, 1e-3))


def test_noise_parity_same_params(photos):
    pipe = ak.Pipeline([ak.GaussianNoise(std=(0.02, 0.05))], seed=0)
    for img in (photos["coffee"], photos["rocket"][..., 0]):
        out, params = pipe(img, return_params=True)
        ref = _tensor(img, pipe, params)
        assert np.abs(out.astype(np.float32) / 255 - ref).max() <= 0.5 / 255 + 1e-6  # same field, uint8 rounding
        np.testing.assert_allclose(pipe(img.astype(np.float32) / 255, params=params), ref, atol=1e-6)


def test_noise_statistics():
    pipe = ak.Pipeline([ak.GaussianNoise(std=(0.04, 0.04))], seed=1)
    grey = np.full((128, 96, 3), 0.5, np.float32)
    noise = pipe(grey) - 0.5
    assert abs(noise.mean()) < 0.002 and abs(noise.std() - 0.04) < 0.002
    # independent per channel: correlation between channels near zero
    assert abs(np.corrcoef(noise[..., 0].ravel(), noise[..., 1].ravel())[0, 1]) < 0.03
    u8 = pipe(np.full((128, 96, 3), 128, np.uint8)).astype(np.float32) - 128
    assert abs(u8.std() / 255 - 0.04) < 0.002


def test_distribution_parity_over_5000_draws():
    ops = [
        ak.HorizontalFlip(p=0.3),
        ak.VerticalFlip(p=0.7),
        ak.Zoom(scale=(0.8, 1.2), p=0.8),
        ak.Contrast(factor=(0.5, 1.5)),
        ak.GaussianNoise(std=(0.0, 0.05), p=0.9),
    ]
    n = 5000
    pipe = ak.Pipeline(ops, seed=11)
    grey = np.full((16, 16), 0.5, np.float32)
    draws, sigma_np = [], np.empty(n)
    for i in range(n):
        out, p = pipe(grey, return_params=True)
        draws.append(p)
        sigma_np[i] = out.std()
    albu = Params.cat(draws)
    tens = pipe.sample(n, generator=torch.Generator().manual_seed(12))
    for i, op in enumerate(ops):
        assert abs(albu[i]["apply"].float().mean().item() - op.p) < 0.02, op
        assert abs(tens[i]["apply"].float().mean().item() - op.p) < 0.02, op
    both = (albu[0]["apply"] & albu[1]["apply"]).float().mean().item()
    assert abs(both - 0.3 * 0.7) < 0.02  # flips are independent (Albumentations seeds all transforms alike)
    for i, key in ((2, "scale"), (3, "factor"), (4, "std")):
        assert ks_2samp(albu[i][key].numpy(), tens[i][key].numpy()).pvalue > 0.01, key
    # measured noise sigma of the outputs, tensor backend on the same kind of images
    x = torch.full((n, 1, 16, 16), 0.5)
    sigma_t = ak.Pipeline([ops[4]], seed=13)(x).std(dim=(1, 2, 3), correction=0).numpy()
    sigma_a = ak.Pipeline([ops[4]], seed=14)
    sigma_a = np.array([sigma_a(grey).std() for _ in range(n)])
    assert ks_2samp(sigma_a, sigma_t).pvalue > 0.01


def test_params_structure_matches_tensor_backend_and_replays(photos):
    pipe = ak.default_pipeline(seed=5)
    img = photos["astronaut"][::4, ::4]
    out, params = pipe(img, return_params=True)
    ref = pipe.sample(1)
    assert params.names == ref.names
    for a, b in zip(params.values, ref.values, strict=True):
        assert a.keys() == b.keys()
        assert all(a[k].dtype == b[k].dtype and a[k].shape == (1,) for k in a)
    assert np.array_equal(pipe(img, params=params), out)
    # tensor-backend params (B = 1) drive the numpy backend too
    tparams = pipe.sample(4).select(2)
    _assert_close_u8(pipe(img, params=tparams), _tensor(img, pipe, tparams), "tensor params on numpy")
    with pytest.raises(ValueError, match="4 samples"):
        pipe(img, params=pipe.sample(4))
    with pytest.raises(ValueError, match="drawn for ops"):
        pipe(img, params=ak.Pipeline([ak.Zoom()]).sample(1))


def test_seeded_reproducible_and_to_albumentations(photos):
    img = photos["chelsea"][::4, ::4]
    a, b, c = ak.default_pipeline(seed=7), ak.default_pipeline(seed=7), ak.default_pipeline(seed=8)
    outs_a = [a(img) for _ in range(5)]
    assert all(np.array_equal(x, b(img)) for x in outs_a)
    assert not all(np.array_equal(x, c(img)) for x in outs_a)
    compose, again = a.to_albumentations(), b.to_albumentations()
    assert isinstance(compose, A.Compose)
    assert all(np.array_equal(compose(image=img)["image"], again(image=img)["image"]) for _ in range(5))  # same seed, same stream
    compose.set_random_seed(3)  # re-seeding the Compose keeps the flips independent
    flips = np.array([[t.get_params()["apply"] for t in compose.transforms[:2]] for _ in range(400)])
    assert 0.1 < (flips[:, 0] & flips[:, 1]).mean() < 0.4 and (flips[:, 0] != flips[:, 1]).any()


class _Draws(Dataset):
    def __init__(self, pipe: ak.Pipeline) -> None:
        self.pipe, self.img = pipe, np.zeros((4, 4, 3), np.uint8)
        pipe(self.img)  # build the backend (and its generators) in the main process, before workers fork

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        _, p = self.pipe(self.img, return_params=True)
        return p[2]["scale"]


def _epochs(seed: int) -> list[list[float]]:
    torch.manual_seed(seed)
    loader = DataLoader(_Draws(ak.default_pipeline(seed=0)), batch_size=1, num_workers=2)
    return [torch.cat(list(loader)).flatten().tolist() for _ in range(2)]


def test_dataloader_workers_are_seeded_apart_and_reproducible():
    first = _epochs(0)
    assert len(set(first[0])) == 8  # workers do not repeat each other's draws
    assert first[0] != first[1]  # nor the previous epoch's
    assert _epochs(0) == first  # reproducible from torch's seed


def test_pil_and_layouts(photos):
    pipe = ak.Pipeline(NO_NOISE, seed=0)
    rgb = photos["coffee"][::4, ::4]
    out, params = pipe(Image.fromarray(rgb), return_params=True)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == rgb.shape
    assert np.array_equal(out, pipe(rgb, params=params))
    grey = np.ascontiguousarray(rgb[..., 0])
    out = pipe(Image.fromarray(grey), params=params)
    assert out.shape == grey.shape and np.array_equal(out, pipe(grey, params=params))
    assert pipe(rgb.astype(np.float64) / 255).dtype == np.float32


BAD = [
    (np.zeros((8, 8, 5), np.uint8), ValueError, "1 to 4 channels"),
    (np.zeros((3, 32, 32), np.uint8), ValueError, "1 to 4 channels"),
    (np.zeros((8, 8, 4), np.uint8), ValueError, "Contrast needs 1 or 3 channels"),
    (np.zeros((8, 8, 3), np.uint16), TypeError, "dtype uint16"),
    (np.zeros((8, 8, 3), np.int64), TypeError, "dtype int64"),
    (np.zeros((8, 8, 3), bool), TypeError, "dtype bool"),
    (np.full((8, 8, 3), 1.5, np.float32), ValueError, "max 1.5"),
    (np.full((8, 8, 3), np.nan, np.float32), ValueError, r"\[0, 1\]"),
    (np.zeros((2, 8, 8, 3), np.uint8), ValueError, "shape"),
    (np.zeros(8, np.uint8), ValueError, "shape"),
    (np.zeros((0, 8, 3), np.uint8), ValueError, "H and W > 0"),
]


@pytest.mark.parametrize(("img", "exc", "msg"), BAD, ids=lambda v: getattr(v, "shape", None) or str(v)[:20])
def test_bad_input(img, exc, msg):
    with pytest.raises(exc, match=msg) as e:
        ak.default_pipeline(seed=0)(img)
    assert "img" in str(e.value) or "Contrast" in str(e.value)


def test_flip_zoom_run_from_python_values_is_the_composed_matrix(photos):
    """The per-image path builds a flip/Zoom run's matrix from the params' Python values; it must
    resample as the general composition does (``geometry.compose``), up to the matrix's float32
    rounding: at most one level, on a few pixels. An unapplied run returns the image as it is."""
    from augkit.backends.albu import host_params
    from augkit.backends.albu_geometry import warp_run

    ops = [ak.HorizontalFlip(), ak.Zoom(scale=(0.6, 1.4), fill=0.3), ak.VerticalFlip(), ak.Zoom(scale=(0.9, 1.1), p=0.5)]
    pipe = ak.Pipeline(ops, seed=0)
    img = photos["chelsea"]  # non-square: the x and y centres differ
    for key in range(12):
        vals = list(pipe.sample(1, keys=torch.tensor([key])).values)
        fast = warp_run(img, ops, vals, host=[host_params(v) for v in vals])
        slow = warp_run(img, ops, vals)
        d = np.abs(fast.astype(np.int16) - slow)
        assert fast.shape == slow.shape and d.max() <= 1 and (d > 0).mean() < 0.01, key
    off = [{**host_params(v), "apply": False} for v in vals]
    assert warp_run(img, ops, vals, host=off) is img
