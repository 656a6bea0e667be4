"""The batched tensor backend against independent references: NumPy, PIL, SciPy."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance
from scipy import ndimage, stats

import augkit as ak

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


def hwc(y: torch.Tensor) -> np.ndarray:
    return y.permute(1, 2, 0).cpu().numpy()


def one(op: ak.Op) -> ak.Pipeline:
    return ak.Pipeline([op], seed=0)


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_flips_are_numpy_slicing(photos, name):
    img = photos[name]
    xf = chw(img).float() / 255
    for op, ref in [(ak.HorizontalFlip(p=1.0), img[:, ::-1]), (ak.VerticalFlip(p=1.0), img[::-1])]:
        # uint8 in: the bytes are flipped, then scaled; float in: bit-identical to slicing
        assert np.array_equal(np.round(hwc(one(op)(chw(img))) * 255).astype(np.uint8), ref)
        assert torch.equal(one(op)(xf), torch.from_numpy(np.ascontiguousarray(hwc(xf)[:, ::-1] if isinstance(op, ak.HorizontalFlip) else hwc(xf)[::-1])).permute(2, 0, 1))
    both = ak.Pipeline([ak.HorizontalFlip(p=1.0), ak.VerticalFlip(p=1.0)])
    assert np.array_equal(np.round(hwc(both(chw(img))) * 255).astype(np.uint8), img[::-1, ::-1])


def test_flips_follow_per_sample_mask(photos):
    x = chw(photos["coffee"][:64, :96]).float().div(255)[None].repeat(32, 1, 1, 1)
    pipe = ak.Pipeline([ak.HorizontalFlip(p=0.5), ak.VerticalFlip(p=0.5)], seed=3)
    y, p = pipe(x, return_params=True)
    for b in range(32):
        ref = x[b]
        if p[0]["apply"][b]:
            ref = ref.flip(-1)
        if p[1]["apply"][b]:
            ref = ref.flip(-2)
        assert torch.equal(y[b], ref)
    assert 0 < p[0]["apply"].sum() < 32 and 0 < p[1]["apply"].sum() < 32


def pil_zoom(img: np.ndarray, s: float) -> np.ndarray:
    """Zoom by s about the centre with PIL's float bilinear affine transform, per channel."""
    h, w = img.shape[:2]
    a = 1 / s  # PIL maps output coordinates to input ones, pixel centres at +0.5
    data = (a, 0, w / 2 * (1 - a), 0, a, h / 2 * (1 - a))
    chans = [
        np.asarray(Image.fromarray(img[..., k].astype(np.float32), mode="F").transform((w, h), Image.AFFINE, data, resample=Image.BILINEAR))
        for k in range(img.shape[2])
    ]
    return np.stack(chans, -1) / 255


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
@pytest.mark.parametrize("s", [0.7, 0.93, 1.25])
def test_zoom_matches_pil_and_scipy(photos, name, s):
    img = photos[name][:200, :260]  # non-square crops of real photos
    h, w = img.shape[:2]
    y = hwc(one(ak.Zoom(scale=(s, s)))(chw(img)))
    # interior: pixels whose source lies at least 2 pixels inside the image
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    sy, sx = (yy - cy) / s + cy, (xx - cx) / s + cx
    inner = (sy > 2) & (sy < h - 3) & (sx > 2) & (sx < w - 3)
    assert np.abs(y - pil_zoom(img, s))[inner].max() <= 1 / 255
    # SciPy's linear resampler with constant 0 outside agrees everywhere, borders included
    c = np.array([cy, cx])
    ref = np.stack([ndimage.affine_transform(img[..., k] / 255.0, np.diag([1 / s, 1 / s]), offset=c - c / s, order=1, mode="grid-constant", cval=0.0) for k in range(3)], -1)
    assert np.abs(y - ref).max() <= 0.01 / 255


def test_zoom_out_fills_border_with_fill(photos):
    img = photos["astronaut"][:128, :128]
    y = one(ak.Zoom(scale=(0.5, 0.5), fill=0.25))(chw(img))
    assert torch.allclose(y[:, :30, :], torch.tensor(0.25), atol=1e-6)
    assert torch.allclose(y[:, :, -30:], torch.tensor(0.25), atol=1e-6)
    # the centre still shows the image, shrunk: compare against SciPy with cval=fill
    c = np.array([63.5, 63.5])
    ref = ndimage.affine_transform(img[..., 0] / 255.0, np.diag([2.0, 2.0]), offset=c - 2 * c, order=1, mode="grid-constant", cval=0.25)
    assert np.abs(y[0].numpy() - ref).max() <= 0.01 / 255


def test_zoom_composes_with_flips_in_one_warp(photos):
    img = photos["chelsea"][:120, :160]
    x = chw(img)
    pipe = ak.Pipeline([ak.HorizontalFlip(p=1.0), ak.Zoom(scale=(1.3, 1.3)), ak.VerticalFlip(p=1.0)])
    ref = one(ak.Zoom(scale=(1.3, 1.3)))(x.flip(-1)).flip(-2)  # centre zoom commutes with flips
    assert torch.allclose(pipe(x), ref, atol=1e-5)


def np_contrast(img: np.ndarray, f: float) -> np.ndarray:
    x = img.astype(np.float64) / 255
    m = (x @ np.array([0.299, 0.587, 0.114])).mean() if x.shape[2] == 3 else x.mean()
    return np.clip(m + f * (x - m), 0, 1)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "rocket"])
@pytest.mark.parametrize("f", [0.5, 0.8, 1.2, 1.6])
def test_contrast_matches_numpy_and_pil(photos, name, f):
    img = photos[name]
    y = hwc(one(ak.Contrast(factor=(f, f)))(chw(img)))
    assert np.abs(y - np_contrast(img, f)).max() <= 1e-5
    pil = np.asarray(ImageEnhance.Contrast(Image.fromarray(img)).enhance(f)) / 255
    # PIL's uint8 blend is off by up to 1 level, and its grey mean is rounded to an integer
    # (<= 0.5 level off, which moves the output by |1 - f| / 2 levels)
    assert np.abs(y - pil).max() <= (1 + abs(1 - f) / 2) / 255 + 1e-6


def test_contrast_one_channel_uses_the_channel(photos):
    grey = photos["astronaut"][..., :1]
    y = hwc(one(ak.Contrast(factor=(1.5, 1.5)))(chw(grey)))
    assert np.abs(y - np_contrast(grey, 1.5)).max() <= 1e-5


def test_noise_statistics_on_mid_grey():
    x = torch.full((16, 3, 64, 64), 0.5)
    sigma = 0.05
    y, p = ak.Pipeline([ak.GaussianNoise(std=(sigma, sigma))], seed=0)(x, return_params=True)
    z = (y - 0.5).double()
    assert abs(z.mean().item()) < 4 * sigma / z.numel() ** 0.5
    assert abs(z.std().item() / sigma - 1) < 0.01
    sample = z.flatten()[::7][:20_000].numpy() / sigma
    assert stats.kstest(sample, "norm").pvalue > 0.01
    # independent per pixel, channel and sample: correlations vanish
    def corr(a, b):
        return np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1]
    assert abs(corr(z[:, :, :, 1:], z[:, :, :, :-1])) < 0.02  # neighbours in a row
    assert abs(corr(z[:, :, 1:, :], z[:, :, :-1, :])) < 0.02  # neighbours in a column
    assert abs(corr(z[:, 0], z[:, 1])) < 0.02  # channels
    assert abs(corr(z[1:], z[:-1])) < 0.02  # samples
    # per-sample sigma: each image's noise std follows its drawn std
    y2, p2 = ak.Pipeline([ak.GaussianNoise(std=(0.0, 0.1))], seed=2)(x, return_params=True)
    assert np.allclose((y2 - 0.5).flatten(1).std(1).numpy(), p2[0]["std"].numpy(), rtol=0.05, atol=1e-4)


def test_noise_is_clamped_to_unit_range():
    y = ak.Pipeline([ak.GaussianNoise(std=(0.3, 0.3))])(torch.full((2, 3, 32, 32), 0.95))
    assert y.min() >= 0 and y.max() <= 1 and (y == 1).any()


def test_normalize_matches_formula(photos):
    img = photos["coffee"]
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    y = hwc(one(ak.Normalize(mean=mean, std=std))(chw(img)))
    assert np.abs(y - (img / 255 - np.array(mean)) / np.array(std)).max() <= 1e-5


def test_uint8_and_float_inputs_agree(photos, seed_pipe):
    x = chw(photos["chelsea"][:96, :128])[None].repeat(8, 1, 1, 1)
    for dtype in (torch.float32, torch.float16, torch.float64):
        xf = (x.float() / 255).to(dtype)
        tol = 1e-5 if dtype != torch.float16 else 1e-3
        params = seed_pipe.sample(8)
        assert torch.allclose(seed_pipe(x, params=params), seed_pipe(xf, params=params), atol=tol)


def test_unapplied_samples_are_untouched(photos):
    x = chw(photos["astronaut"][:64, :64])[None].repeat(16, 1, 1, 1)
    pipe = ak.Pipeline([ak.Zoom(scale=(0.8, 1.2), p=0.5), ak.Contrast(p=0.5), ak.GaussianNoise(std=(0.1, 0.1), p=0.5)], seed=0)
    y, p = pipe(x, return_params=True)
    none = ~(p[0]["apply"] | p[1]["apply"] | p[2]["apply"])
    assert none.any() and (~none).any()
    assert torch.allclose(y[none], x[none].float() / 255, atol=1e-6)
    assert not torch.allclose(y[~none], x[~none].float() / 255, atol=1e-3)


def test_non_square_non_contiguous_and_single_image(photos, seed_pipe):
    x = chw(photos["rocket"][:90, :150])[None].repeat(4, 1, 1, 1)
    nc = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # channels-last strides
    assert not nc.is_contiguous()
    p = seed_pipe.sample(4)
    assert torch.equal(seed_pipe(nc, params=p), seed_pipe(x, params=p))
    y1, p1 = seed_pipe(x[0], return_params=True)
    assert y1.shape == (3, 90, 150) and p1.batch_size == 1
    assert torch.equal(seed_pipe(x[:1], params=p1)[0], y1)


def test_result_does_not_depend_on_batch_composition(photos, seed_pipe):
    x = chw(photos["coffee"][:80, :100])[None].repeat(6, 1, 1, 1)
    p = seed_pipe.sample(6)
    full = seed_pipe(x, params=p)
    for i in range(6):
        assert torch.equal(seed_pipe(x[i : i + 1], params=p.select(i))[0], full[i])


def test_outputs_are_not_overwritten_by_later_calls(photos, seed_pipe):
    x = chw(photos["coffee"][:64, :64])[None].repeat(4, 1, 1, 1)
    y1 = seed_pipe(x)
    keep = y1.clone()
    view = seed_pipe(x)[0]  # only a view of the second output survives
    snapshot = view.clone()
    for _ in range(3):
        seed_pipe(x)
    assert torch.equal(y1, keep) and torch.equal(view, snapshot)
    # and once the caller lets go, the buffer is handed out again (no fresh pages on CPU)
    del y1, view
    ptrs = {seed_pipe(x).data_ptr() for _ in range(4)}
    assert len(ptrs) == 1


def test_sync_free_warp_path_matches_host_path(photos, monkeypatch):
    """The branch CUDA takes (warp all, then keep unmoved samples) gives the CPU branch's result."""
    import augkit.backends.tensor as tb

    x = chw(photos["coffee"][:64, :80])[None].repeat(12, 1, 1, 1)
    pipe = ak.Pipeline([ak.HorizontalFlip(), ak.Zoom(p=0.5, fill=0.3), ak.Contrast()], seed=4)
    p = pipe.sample(12)
    host = pipe(x, params=p).clone()
    monkeypatch.setattr(tb, "_host_selects", lambda device: False)
    assert torch.equal(pipe(x, params=p), host)


@cuda
def test_cuda_matches_cpu(photos, seed_pipe):
    x = chw(photos["astronaut"][:128, :160])[None].repeat(8, 1, 1, 1)
    p = seed_pipe.sample(8)
    y_cpu = seed_pipe(x, params=p)
    y_gpu = seed_pipe(x.cuda(), params=p)
    assert y_gpu.device.type == "cuda" and y_gpu.dtype == torch.float32
    assert torch.allclose(y_gpu.cpu(), y_cpu, atol=2e-4)
    y, pg = seed_pipe(x.cuda(), return_params=True)
    assert all(t.device.type == "cuda" for v in pg.values for t in v.values())
    assert torch.equal(seed_pipe(x.cuda(), params=pg), y)


def test_scratch_memory_is_bounded_over_many_shapes():
    pipe = ak.default_pipeline()
    for s in range(8, 40):
        pipe(torch.zeros(2, 3, s, s + 1, dtype=torch.uint8))
    ws = pipe._tensor._ws
    assert len(ws._bufs) <= ws.MAX_BUFFERS and len(ws._outputs._bufs) <= 2


def test_apply_mask_in_given_params_is_obeyed_even_when_p_is_one(photos):
    x = chw(photos["chelsea"][:64, :64])[None].repeat(4, 1, 1, 1)
    pipe = ak.Pipeline([ak.Zoom(), ak.Contrast(), ak.GaussianNoise(std=(0.1, 0.1))], seed=0)
    p = pipe.sample(4)
    for v in p.values:
        v["apply"][0] = False
    y = pipe(x, params=p)
    assert torch.allclose(y[0], x[0].float() / 255, atol=1e-6)
    assert not torch.allclose(y[1], x[1].float() / 255, atol=1e-2)
