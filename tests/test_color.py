"""Photometric ops on the tensor backend against independent references: PIL, colorsys, SciPy, NumPy."""

import colorsys
import math
import random
import re

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps
from scipy import ndimage, stats

import augkit as ak
from augkit.backends import tensor_color
from augkit.ops.filters import ERASE_ATTEMPTS


def chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


def fixed(op: ak.Op, x: torch.Tensor, **values) -> np.ndarray:
    """Run ``op`` on one image (C, H, W) with given param values (apply forced on) -> HWC float."""
    pipe = ak.Pipeline([op], seed=0)
    p = pipe.sample(1)
    for k, v in values.items():
        p.values[0][k] = torch.tensor([v])
    p.values[0]["apply"] = torch.tensor([True])
    return pipe(x[None], params=p)[0].permute(1, 2, 0).numpy()


def u8_diff(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(y.astype(np.float64) * 255 - np.asarray(ref, dtype=np.float64))


def crop(photos, name: str) -> np.ndarray:
    return photos[name][:112, :150]  # non-square, keeps the tests fast


PIL_ENHANCE = [
    (ak.Brightness(), ImageEnhance.Brightness),
    (ak.Saturation(), ImageEnhance.Color),
    (ak.Sharpness(), ImageEnhance.Sharpness),
]


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
@pytest.mark.parametrize("f", [0.0, 0.4, 1.0, 1.7])
@pytest.mark.parametrize("op,enhancer", PIL_ENHANCE, ids=["Brightness", "Saturation", "Sharpness"])
def test_enhance_ops_match_pil(photos, name, f, op, enhancer):
    img = crop(photos, name)
    d = u8_diff(fixed(op, chw(img), factor=f), enhancer(Image.fromarray(img)).enhance(f))
    assert d.mean() <= 1.0 and d.max() <= 1.5  # PIL rounds the grey/blurred image, then the blend


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_pixel_ops_match_pil(photos, name):
    img = crop(photos, name)
    x, pil = chw(img), Image.fromarray(img)
    assert u8_diff(fixed(ak.Invert(), x), ImageOps.invert(pil)).max() <= 1e-4
    for t in (1, 100, 200, 256):  # our threshold (t - 0.5) / 255 is PIL's integer t
        assert u8_diff(fixed(ak.Solarize(), x, threshold=(t - 0.5) / 255), ImageOps.solarize(pil, t)).max() <= 1e-4
    for b in range(1, 9):
        assert u8_diff(fixed(ak.Posterize(), x, bits=b), ImageOps.posterize(pil, b)).max() <= 1e-4
    assert u8_diff(fixed(ak.Equalize(), x), ImageOps.equalize(pil)).max() <= 1e-4
    d = u8_diff(fixed(ak.AutoContrast(), x), ImageOps.autocontrast(pil))
    assert d.mean() <= 1.0 and d.max() <= 1.0 + 1e-4  # PIL truncates its lookup table
    g = u8_diff(fixed(ak.Grayscale(), x), np.asarray(pil.convert("L"))[..., None].repeat(3, 2))
    assert g.mean() <= 0.5 and g.max() <= 0.5 + 1e-4  # PIL rounds luma to an integer


def test_equalize_and_autocontrast_per_channel_on_a_batch(photos):
    imgs = [photos[n][:96, :96] for n in ("astronaut", "coffee", "chelsea", "rocket")]
    x = torch.stack([chw(i) for i in imgs])
    for op, ref in [(ak.Equalize(p=1.0), ImageOps.equalize), (ak.AutoContrast(p=1.0), ImageOps.autocontrast)]:
        y = ak.Pipeline([op])(x).permute(0, 2, 3, 1).numpy()
        for b, img in enumerate(imgs):
            assert u8_diff(y[b], ref(Image.fromarray(img))).max() <= 1.0 + 1e-4
    # a flat channel is left alone, and equalize of one level too
    flat = torch.full((1, 3, 8, 8), 77, dtype=torch.uint8)
    for op in (ak.Equalize(p=1.0), ak.AutoContrast(p=1.0)):
        assert torch.allclose(ak.Pipeline([op])(flat), flat / 255)


@pytest.mark.parametrize("shift", [-0.5, -0.23, 0.05, 0.31])
def test_hue_matches_colorsys(photos, shift):
    img = crop(photos, "coffee")
    x = chw(img).float() / 255
    y = fixed(ak.Hue(), x, shift=shift)
    rng = np.random.default_rng(0)
    ys, xs = rng.integers(0, img.shape[0], 500), rng.integers(0, img.shape[1], 500)
    for i, j in zip(ys, xs, strict=True):
        r, g, b = (x[:, i, j].double() / 1).tolist()
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        ref = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
        assert np.allclose(y[i, j], ref, atol=2e-6), (i, j)


def test_hue_and_saturation_leave_grey_alone(photos):
    grey = torch.from_numpy(crop(photos, "astronaut")[..., 0].copy())[None].float() / 255  # (1, H, W)
    for op, vals in [(ak.Hue(), {"shift": 0.3}), (ak.Saturation(), {"factor": 0.0}), (ak.Grayscale(), {})]:
        assert np.array_equal(fixed(op, grey, **vals)[..., 0], grey[0].numpy())


@pytest.mark.parametrize("g", [0.3, 1.0, 2.5])
def test_gamma_is_numpy_power(photos, g):
    img = crop(photos, "chelsea")
    assert np.allclose(fixed(ak.Gamma(), chw(img), gamma=g), (img / 255.0) ** g, atol=1e-6)


@pytest.mark.parametrize("sigma,size", [(0.5, None), (1.3, None), (2.0, 7), (3.0, 15)])
def test_blur_matches_scipy(photos, sigma, size):
    img = crop(photos, "astronaut")
    op = ak.GaussianBlur(sigma=(0.1, sigma), kernel_size=size)
    y = fixed(op, chw(img).float() / 255, sigma=sigma)
    r = op.size // 2
    ref = np.stack([ndimage.gaussian_filter(img[..., c] / 255.0, sigma, mode="mirror", radius=r) for c in range(3)], -1)
    assert np.abs(y - ref).max() <= 1e-5
    assert op.size == (size or int(round(6 * sigma + 1)) | 1)


def test_blur_per_sample_sigma_in_one_batch(photos):
    x = chw(crop(photos, "coffee"))[None].repeat(6, 1, 1, 1).float() / 255
    pipe = ak.Pipeline([ak.GaussianBlur(sigma=(0.2, 2.5))], seed=3)
    y, p = pipe(x, return_params=True)
    sig = p[0]["sigma"]
    assert len(set(sig.tolist())) == 6
    r = pipe.ops[0].size // 2
    for b in range(6):
        ref = ndimage.gaussian_filter(x[b, 1].double().numpy(), float(sig[b]), mode="mirror", radius=r)
        assert np.abs(y[b, 1].numpy() - ref).max() <= 1e-5


def torchvision_erase_box(rng: random.Random, h: int, w: int, scale, ratio):
    """torchvision RandomErasing.get_params (v0.20), its RNG swapped for ``random``."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        erase_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        eh = int(round(math.sqrt(erase_area * aspect)))
        ew = int(round(math.sqrt(erase_area / aspect)))
        if not (eh < h and ew < w):
            continue
        return rng.randint(0, h - eh), rng.randint(0, w - ew), eh, ew
    return 0, 0, h, w  # torchvision's "no erase" (returns the image)


def test_erasing_boxes_follow_torchvision_distribution():
    h, w, n = 40, 64, 4000
    op = ak.Erasing(scale=(0.05, 0.6), ratio=(0.3, 3.3), value=0.25, p=1.0)
    x = torch.full((n, 1, h, w), 0.5)
    y, p = ak.Pipeline([op], seed=0)(x, return_params=True)
    erased = y[:, 0] == 0.25
    rows, cols = erased.any(2), erased.any(1)
    bh, bw = rows.sum(1).numpy(), cols.sum(1).numpy()
    assert torch.equal(erased.sum((1, 2)), torch.from_numpy(bh * bw))  # each is one full box
    rng = random.Random(0)
    ref = [torchvision_erase_box(rng, h, w, op.scale, op.ratio) for _ in range(n)]
    ref_h = np.array([r[2] if r[2] < h else 0 for r in ref])
    ref_w = np.array([r[3] if r[2] < h else 0 for r in ref])
    ref_top = np.array([r[0] for r in ref if r[2] < h])
    tops = rows.float().argmax(1).numpy()[bh > 0]
    for a, b in [(bh, ref_h), (bw, ref_w), (tops, ref_top)]:
        assert stats.ks_2samp(a, b).pvalue > 1e-3
    assert abs((bh == 0).mean() - (ref_h == 0).mean()) < 0.03  # no attempt fitted: no erase
    assert p[0]["area"].shape == (n, ERASE_ATTEMPTS)


ALL_OPS = [
    ak.Brightness(factor=(0.5, 1.5)),
    ak.Saturation(factor=(0.0, 2.0)),
    ak.Hue(shift=0.4),
    ak.ColorJitter(0.4, 0.4, 0.4, 0.1),
    ak.Gamma(gamma=(0.5, 2.0)),
    ak.Grayscale(p=0.5),
    ak.Invert(p=0.5),
    ak.Solarize(threshold=(0.3, 0.8)),
    ak.Posterize(bits=(2, 7)),
    ak.Equalize(p=0.5),
    ak.AutoContrast(p=0.5),
    ak.Sharpness(factor=(0.0, 3.0)),
    ak.GaussianBlur(sigma=(0.3, 1.5)),
    ak.Erasing(p=0.5),
]


@pytest.mark.parametrize("op", [ak.Pipeline([o]).ops[0] for o in ALL_OPS], ids=lambda o: type(o).__name__)
def test_batch_mask_replay_and_devices_paths(photos, op):
    imgs = [photos[n][:40, :56] for n in ("astronaut", "coffee", "chelsea", "rocket")] * 3
    x = torch.stack([chw(i) for i in imgs])  # (12, 3, 40, 56) uint8
    pipe = ak.Pipeline([op, ak.Brightness(factor=(1.0, 1.0))], seed=5)  # a second op: not the last step
    y, p = pipe(x, return_params=True)
    assert torch.equal(pipe(x, params=p), y)  # replay
    assert torch.allclose(pipe(x.float() / 255, params=p), y, atol=1e-5)  # uint8 == float input
    apply = p[0]["apply"]
    if op.p < 1:
        assert 0 < apply.sum() < len(x)
    assert torch.allclose(y[~apply], x[~apply] / 255)  # not applied: unchanged
    for b in (0, 7):  # each sample as if alone in its batch
        assert torch.allclose(pipe(x[b : b + 1], params=p.select(b)), y[b : b + 1], atol=1e-6)
    # the off-CPU form (all samples, identity params where not applied) equals the CPU subset form
    xf = x.float() / 255
    sub, full = xf.clone(), xf.clone()
    tensor_color.run(op, p[0], sub)
    tensor_color.STEPS[type(op)](op, p[0], full)
    assert torch.allclose(sub, full, atol=1e-6)


def test_color_jitter_is_its_four_parts_in_order(photos):
    x = chw(crop(photos, "coffee"))[None].repeat(4, 1, 1, 1)
    jit = ak.ColorJitter(brightness=0.5, contrast=(0.5, 1.5), saturation=0.7, hue=0.2)
    assert (jit.brightness, jit.contrast, jit.saturation, jit.hue) == ((0.5, 1.5), (0.5, 1.5), (0.30000000000000004, 1.7), (-0.2, 0.2))
    y, p = ak.Pipeline([jit], seed=2)(x, return_params=True)
    parts = ak.Pipeline([ak.Brightness(), ak.Contrast(), ak.Saturation(), ak.Hue()], seed=0)
    q = parts.sample(4)
    for i, key in enumerate(["brightness", "contrast", "saturation", "hue"]):
        q.values[i]["factor" if key != "hue" else "shift"] = p[0][key]
        q.values[i]["apply"] = p[0]["apply"]
    assert torch.allclose(parts(x, params=q), y, atol=1e-5)


def test_sampling_rates_and_ranges():
    n = 20000
    for op, key, lo, hi in [
        (ak.Brightness(0.3, p=0.3), "factor", 0.7, 1.3),
        (ak.Hue(0.1, p=0.3), "shift", -0.1, 0.1),
        (ak.GaussianBlur((0.5, 1.0), p=0.3), "sigma", 0.5, 1.0),
    ]:
        p = ak.Pipeline([op], seed=1).sample(n)[0]
        assert abs(p["apply"].float().mean() - 0.3) < 0.015
        v = p[key].numpy()
        assert stats.kstest((v - lo) / (hi - lo), "uniform").pvalue > 1e-3
    bits = ak.Pipeline([ak.Posterize((3, 6))], seed=1).sample(n)[0]["bits"]
    counts = torch.bincount(bits, minlength=7)[3:7].numpy()
    assert bits.dtype == torch.int64 and counts.sum() == n
    assert stats.chisquare(counts).pvalue > 1e-3
    assert abs(ak.Pipeline([ak.Grayscale()], seed=1).sample(n)[0]["apply"].float().mean() - 0.1) < 0.01


BAD = [
    (lambda: ak.Brightness((1.2, 0.8)), "Brightness.factor must be (lo, hi) with 0 <= lo <= hi"),
    (lambda: ak.Brightness(-0.1), "Brightness.factor"),
    (lambda: ak.Saturation((-1, 1)), "Saturation.factor"),
    (lambda: ak.Hue(0.6), "Hue.shift must be (lo, hi) with -0.5 <= lo <= hi <= 0.5"),
    (lambda: ak.ColorJitter(hue=(-0.7, 0.1)), "ColorJitter.hue"),
    (lambda: ak.ColorJitter(brightness="0.2"), "ColorJitter.brightness"),
    (lambda: ak.Gamma((0, 1)), "Gamma.gamma must be (lo, hi) with 0 < lo"),
    (lambda: ak.Solarize(1.5), "Solarize.threshold"),
    (lambda: ak.Posterize((0, 4)), "Posterize.bits"),
    (lambda: ak.Posterize((3.5, 4)), "Posterize.bits must be whole numbers"),
    (lambda: ak.Posterize(9), "Posterize.bits"),
    (lambda: ak.GaussianBlur(0.0), "GaussianBlur.sigma must be (lo, hi) with 0 < lo"),
    (lambda: ak.GaussianBlur(kernel_size=4), "GaussianBlur.kernel_size must be None or an odd int"),
    (lambda: ak.Erasing(scale=(0.5, 1.5)), "Erasing.scale"),
    (lambda: ak.Erasing(ratio=(0, 1)), "Erasing.ratio"),
    (lambda: ak.Erasing(value=2.0), "Erasing.value"),
    (lambda: ak.Invert(p=1.5), "Invert.p must be a number in [0, 1]"),
]


@pytest.mark.parametrize("make,msg", BAD)
def test_bad_arguments(make, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        make()


@pytest.mark.parametrize("op", [ak.Saturation(), ak.Hue(), ak.ColorJitter(hue=0.1), ak.Grayscale()])
def test_channel_counts(op):
    with pytest.raises(ValueError, match=f"{type(op).__name__} needs 1 or 3 channels"):
        ak.Pipeline([op])(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match=f"{type(op).__name__} needs 1 or 3 channels"):
        ak.Pipeline([op])(np.zeros((8, 8, 2), np.uint8))


def test_tiny_images_and_empty_batch():
    for op in ALL_OPS:
        pipe = ak.Pipeline([op], seed=0)
        for shape in [(3, 1, 1, 1), (2, 3, 2, 5), (0, 3, 8, 8)]:
            y = pipe(torch.rand(shape))
            assert y.shape == shape and bool(torch.isfinite(y).all())


# ---- Albumentations backend: same params, same pixels (uint8 rounds after each op) -------------

PARITY_TOL = {ak.ColorJitter: 5.0}  # max |diff| in 1/255; default 1 (one rounding)


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda o: type(o).__name__)
def test_albumentations_parity_same_params(photos, op):
    img = photos["astronaut"][:96, :136]
    pipe = ak.Pipeline([op], seed=7)
    for _ in range(2):
        ya, p = pipe(img, return_params=True)  # numpy -> the Albumentations backend
        p.values[0]["apply"][:] = True
        ya = pipe(img, params=p)
        yt = pipe(chw(img), params=p).permute(1, 2, 0).numpy()
        assert ya.dtype == np.uint8 and ya.shape == img.shape
        d = u8_diff(yt, ya)
        assert d.mean() <= 1.0 and d.max() <= PARITY_TOL.get(type(op), 1.0) + 1e-3, (type(op).__name__, d.mean(), d.max())
        yf = pipe(img.astype(np.float32) / 255, params=p)  # float32 in: no rounding, tight
        assert yf.dtype == np.float32
        assert np.abs(yf - yt).max() <= 1e-4 + (1 / 255 if isinstance(op, (ak.Posterize, ak.Equalize)) else 0)


def test_albumentations_grey_images_and_compose(photos):
    grey = photos["coffee"][:64, :90, 0].copy()
    for op in ALL_OPS:
        pipe = ak.Pipeline([op], seed=1)
        y, p = pipe(grey, return_params=True)
        assert y.shape == grey.shape and y.dtype == np.uint8
        yt = pipe(torch.from_numpy(grey)[None], params=p)[0].numpy()
        assert u8_diff(yt, y).mean() <= 1.0
    compose = ak.Pipeline(ALL_OPS, seed=0).to_albumentations()
    out = compose(image=photos["chelsea"][:80, :80])["image"]
    assert out.shape == (80, 80, 3) and out.dtype == np.uint8


@pytest.mark.parametrize(
    "op",
    [*ALL_OPS, ak.OneOf([ak.Invert(), ak.Hue()]), ak.SomeOf([ak.Gamma(), ak.Solarize()]), ak.RandAugment(), ak.TrivialAugment()],
    ids=lambda o: type(o).__name__,
)
def test_off_cpu_path_has_no_host_sync_and_a_batch_independent_op_count(op):
    from augkit.bench.opcount import count_pipeline_ops

    pipe = ak.Pipeline([op], seed=0)
    # on a meta batch a host sync (nonzero, item, bincount's max) raises; the op count must not grow with B
    counts = {b: count_pipeline_ops(pipe, (b, 3, 32, 32)) for b in (8, 32)}
    assert counts[8].ops == counts[32].ops and counts[8].by_name == counts[32].by_name
