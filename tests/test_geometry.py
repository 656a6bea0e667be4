"""Geometry v2: general affine, sizing ops, borders, interpolation, ragged input (tensor backend).

References are independent of augkit's matrix code: matrices are written out by hand here and
applied with SciPy's ``ndimage.affine_transform`` or PIL; borders against ``np.pad``; crops
against slicing + ``F.interpolate``; the crop-box distribution against torchvision's algorithm
re-implemented below with Python's ``random``.
"""

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from PIL import Image
from scipy import ndimage
from scipy.stats import ks_2samp

import augkit as ak
from augkit.backends.tensor import _pad
from augkit.params import Params


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255  # a writable copy


def _params(op, **values) -> Params:
    dt = {"apply": torch.bool, "k": torch.int64}
    return Params((type(op).__name__,), ({k: torch.tensor([v], dtype=dt.get(k, torch.float32)) for k, v in values.items()},))


def _scipy(img: np.ndarray, inv: np.ndarray, out_hw, mode: str, cval: float = 0.0, order: int = 1) -> np.ndarray:
    """Warp HWC float by the output->input map inv (2x3, x/y) with SciPy (row/col order)."""
    (a, b, c), (d, e, f) = inv
    mat = np.array([[e, d], [b, a]])
    return np.stack(
        [ndimage.affine_transform(img[..., ch], mat, offset=(f, c), output_shape=out_hw, order=order, mode=mode, cval=cval) for ch in range(img.shape[2])],
        -1,
    )


def _about_centre(h: int, w: int, lin: np.ndarray, t=(0.0, 0.0)) -> np.ndarray:
    """Output->input 2x3 for the forward map out = lin (in - c) + c + t."""
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    li = np.linalg.inv(lin)
    return np.concatenate([li, (c - li @ (c + np.asarray(t)))[:, None]], 1)


def _rot(deg: float) -> np.ndarray:  # counter-clockwise on screen, y down
    a = math.radians(deg)
    return np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])


def _interior_max(a: np.ndarray, b: np.ndarray, m: int = 3) -> float:
    return float(np.abs(a - b)[m:-m, m:-m].max()) * 255


@pytest.mark.parametrize("angle", [-33.0, 12.5, 90.0, 170.0])
def test_rotate_matches_pil_and_scipy(photos, angle):
    for name in ("chelsea", "astronaut"):
        img = photos[name].astype(np.float32) / 255
        h, w = img.shape[:2]
        op = ak.Rotate(degrees=(angle, angle))
        y = ak.Pipeline([op])(_chw(photos[name]), params=_params(op, apply=True, angle=angle)).permute(1, 2, 0).numpy()
        ref = _scipy(img, _about_centre(h, w, _rot(angle)), (h, w), "grid-constant")
        assert _interior_max(y, ref) <= 1.0, name
        # PIL: rotate() is counter-clockwise about the centre, bilinear, on float planes
        pil = np.stack([np.asarray(Image.fromarray(img[..., c]).rotate(angle, resample=Image.BILINEAR)) for c in range(3)], -1)
        ones = _scipy(np.ones((h, w, 1), np.float32), _about_centre(h, w, _rot(angle)), (h, w), "grid-constant")[..., 0]
        inner = ndimage.binary_erosion(ones > 1 - 1e-6, iterations=2)  # pixels whose taps all lie inside
        assert np.abs(pil - y)[inner].max() * 255 <= 1.0, f"{name} vs PIL"


def test_affine_with_shear_scale_translate_matches_scipy(photos):
    img = photos["coffee"].astype(np.float32) / 255
    h, w = img.shape[:2]
    op = ak.Affine(scale=(0.5, 2), rotate=30, translate=0.2, shear=20, fill=0.4)
    s, a, sh, tx, ty = 1.3, 21.0, 14.0, 0.07, -0.12
    p = _params(op, apply=True, scale=s, angle=a, shear=sh)
    p.values[0]["translate"] = torch.tensor([[tx, ty]])
    y = ak.Pipeline([op])(_chw(photos["coffee"]), params=p).permute(1, 2, 0).numpy()
    shear = np.array([[1.0, -math.tan(math.radians(sh))], [0.0, 1.0]])
    lin = _rot(a) @ shear * s
    ref = _scipy(img, _about_centre(h, w, lin, (tx * w, ty * h)), (h, w), "grid-constant", cval=0.4)
    assert np.abs(y - ref).max() * 255 <= 1.0


@pytest.mark.parametrize(("border", "np_mode", "sp_mode"), [("reflect", "symmetric", "reflect"), ("replicate", "edge", "nearest"), ("constant", "constant", "grid-constant")])
def test_borders_match_np_pad_and_scipy(photos, border, np_mode, sp_mode):
    img = photos["astronaut"][100:164, 200:280]  # 64 x 80
    h, w = img.shape[:2]
    op = ak.Translate(fraction=0.5, border=border, fill=0.0)
    p = _params(op, apply=True)
    p.values[0]["translate"] = torch.tensor([[0.25, -0.375]])  # +20 px right, -24 px up: integer shifts
    y = ak.Pipeline([op])(_chw(img), params=p).permute(1, 2, 0).numpy()
    padded = np.pad(img.astype(np.float32) / 255, ((24, 24), (20, 20), (0, 0)), mode=np_mode)
    ref = padded[24 + 24 : 24 + 24 + h, 0:w]
    np.testing.assert_allclose(y, ref, atol=1e-5)
    # a rotation with the same border, against SciPy's mode of the same meaning
    op = ak.Rotate(degrees=40, border=border)
    y = ak.Pipeline([op])(_chw(img), params=_params(op, apply=True, angle=27.0)).permute(1, 2, 0).numpy()
    ref = _scipy(img.astype(np.float32) / 255, _about_centre(h, w, _rot(27.0)), (h, w), sp_mode)
    assert np.abs(y - ref).max() * 255 <= 1.0


def test_nearest_quarter_turn_is_exact_and_rot90_matches_numpy(photos):
    img = photos["astronaut"][:96, :96]
    x = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    op = ak.Rotate(degrees=90, interpolation="nearest")
    y = ak.Pipeline([op])(x, params=_params(op, apply=True, angle=90.0))
    np.testing.assert_allclose(y.permute(1, 2, 0).numpy(), np.rot90(img).astype(np.float32) / 255, atol=1e-6)
    for k in (0, 1, 2, 3):
        op = ak.Rot90()
        y = ak.Pipeline([op, ak.HorizontalFlip(p=0.0)])(x, params=Params(("Rot90", "HorizontalFlip"), (
            {"apply": torch.tensor([k > 0]), "k": torch.tensor([max(k, 1)])}, {"apply": torch.tensor([False])})))
        np.testing.assert_array_equal((y * 255).round().byte().permute(1, 2, 0).numpy(), np.rot90(img, k))
    # non-square: Rot90 then a sizing op (exact pixel positions)
    rect = photos["chelsea"][:60, :80]
    pipe = ak.Pipeline([ak.Rot90(p=1.0), ak.CenterCrop((60, 60))])
    y, p = pipe(torch.from_numpy(rect).permute(2, 0, 1), return_params=True)
    k = int(p[0]["k"])
    ref = np.rot90(rect, k)
    t, lf = round((ref.shape[0] - 60) / 2), round((ref.shape[1] - 60) / 2)
    np.testing.assert_allclose(y.permute(1, 2, 0).numpy(), ref[t : t + 60, lf : lf + 60] / 255, atol=1e-5)


def test_composed_run_equals_one_hand_composed_matrix(photos):
    img = photos["rocket"][:200, :300]
    h, w = img.shape[:2]
    ops = [ak.Zoom(scale=(1.25, 1.25)), ak.Rotate(degrees=(20, 20)), ak.HorizontalFlip(p=1.0)]
    y = ak.Pipeline(ops)(_chw(img)).permute(1, 2, 0).numpy()
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    def fwd(lin):  # 3x3 about the centre
        m = np.eye(3)
        m[:2, :2], m[:2, 2] = lin, c - lin @ c
        return m
    flip = np.array([[-1.0, 0, w - 1], [0, 1, 0], [0, 0, 1]])
    m = flip @ fwd(_rot(20.0)) @ fwd(np.eye(2) * 1.25)
    ref = _scipy(img.astype(np.float32) / 255, np.linalg.inv(m)[:2], (h, w), "grid-constant")
    assert np.abs(y - ref).max() * 255 <= 1.0


def _crop_interpolate(img: torch.Tensor, box, size, antialias: bool) -> torch.Tensor:
    t, lf, h, w = (int(v) for v in box)
    return TF.interpolate(img[None, :, t : t + h, lf : lf + w], size, mode="bilinear", align_corners=False, antialias=antialias)[0]


@pytest.mark.parametrize("antialias", [False, True])
def test_random_resized_crop_is_crop_by_box_then_interpolate(photos, antialias):
    pipe = ak.Pipeline([ak.RandomResizedCrop((96, 128), scale=(0.05, 1.0), antialias=antialias), ak.HorizontalFlip()], seed=4)
    for name, img in photos.items():
        x = _chw(img)
        y, p = pipe(x[None].repeat(6, 1, 1, 1), return_params=True)
        for b in range(6):
            box = p[0]["box"][b]
            assert float(box[2]) * float(box[3]) > 0 and torch.equal(box, box.round())
            ref = _crop_interpolate(x, box.tolist(), (96, 128), antialias)
            if p[1]["apply"][b]:
                ref = ref.flip(-1)
            assert (y[b] - ref).abs().max() <= 1e-4, f"{name} {box.tolist()}"


def test_resize_antialias_equals_interpolate_and_batched_path_agrees(photos):
    from augkit import geometry as G
    from augkit import warp as W

    img = _chw(photos["chelsea"])  # 300 x 451
    for size in [(100, 150), (64, 64), (150, 90), (400, 200)]:
        for aa in (True, False):
            y = ak.Pipeline([ak.Resize(size, antialias=aa)])(img)
            ref = TF.interpolate(img[None], size, mode="bilinear", antialias=aa)[0]
            assert (y - ref).abs().max() <= 1e-4
    # the batched (GPU) path and the per-sample CPU path (F.interpolate on the crop) give the same pixels
    pipe = ak.Pipeline([ak.RandomResizedCrop(80), ak.HorizontalFlip()], seed=1)
    x = img[None].repeat(5, 1, 1, 1)
    y, p = pipe(x, return_params=True)
    m, hw = G.run_matrix(pipe.ops, list(p.values), (300, 451))
    batched = W.area_resample(x, G.inverse_2x3(m), hw, clip=G.run_clip(pipe.ops, list(p.values), (300, 451)))
    assert (batched - y).abs().max() <= 1e-4
    # a zoomed-out run (constant fill) goes through the batched filter on the CPU too
    pipe = ak.Pipeline([ak.Zoom(scale=(0.5, 0.7), fill=0.5), ak.Resize((60, 90))], seed=0)
    y = pipe(img)
    assert y.shape == (3, 60, 90) and abs(float(y[:, 0, 0].mean()) - 0.5) < 0.02  # the corner is fill


def _torchvision_box(h: int, w: int, scale, ratio, rnd: random.Random):
    """torchvision.transforms.RandomResizedCrop.get_params, written out with Python's random."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rnd.uniform(*scale)
        ar = math.exp(rnd.uniform(*log_ratio))
        cw, ch = int(round(math.sqrt(target * ar))), int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            return rnd.randint(0, h - ch), rnd.randint(0, w - cw), ch, cw
    in_ratio = w / h
    if in_ratio < min(ratio):
        cw, ch = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        ch, cw = h, int(round(h * max(ratio)))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


@pytest.mark.parametrize(("hw", "scale", "ratio"), [((300, 451), (0.08, 1.0), (3 / 4, 4 / 3)), ((64, 256), (0.5, 1.0), (0.9, 1.1))])
def test_box_distribution_matches_torchvision(hw, scale, ratio):
    n = 3000
    op = ak.RandomResizedCrop(32, scale=scale, ratio=ratio)
    pipe = ak.Pipeline([op], seed=0)
    box = pipe.sample(n, hw=hw)[0]["box"].double().numpy()
    rnd = random.Random(1)
    tv = np.array([_torchvision_box(*hw, scale, ratio, rnd) for _ in range(n)], dtype=np.float64)
    for what, f in [("area", lambda b: b[:, 2] * b[:, 3]), ("log ratio", lambda b: np.log(b[:, 3] / b[:, 2])),
                    ("top", lambda b: b[:, 0] / (hw[0] - b[:, 2] + 1)), ("left", lambda b: b[:, 1] / (hw[1] - b[:, 3] + 1))]:
        assert ks_2samp(f(box), f(tv)).pvalue > 1e-3, what
    assert (box[:, 0] >= 0).all() and (box[:, 0] + box[:, 2] <= hw[0]).all() and (box[:, 1] + box[:, 3] <= hw[1]).all()


def test_center_and_random_crop_boxes_and_pixels(photos):
    img = photos["coffee"]  # 400 x 600
    x = torch.from_numpy(img).permute(2, 0, 1)
    y, p = ak.Pipeline([ak.CenterCrop((101, 200))])(x, return_params=True)
    assert p[0]["box"].tolist() == [[round(299 / 2), 200.0, 101.0, 200.0]]
    np.testing.assert_allclose(y.permute(1, 2, 0).numpy(), img[150:251, 200:400] / 255, atol=1e-4)  # grid_sample coordinates in float32
    pipe = ak.Pipeline([ak.RandomCrop(64, pad=8, border="reflect")], seed=2)
    y, p = pipe(x[None].repeat(20, 1, 1, 1), return_params=True)
    padded = np.pad(img, ((8, 8), (8, 8), (0, 0)), mode="symmetric")
    for b in range(20):
        t, lf = (int(v) for v in p[0]["box"][b, :2])
        assert -8 <= t <= 400 + 8 - 64 and -8 <= lf <= 600 + 8 - 64
        np.testing.assert_allclose(y[b].permute(1, 2, 0).numpy(), padded[t + 8 : t + 72, lf + 8 : lf + 72] / 255, atol=1e-4)
    # an image smaller than the crop: the box starts at -pad, the rest is the border
    y = ak.Pipeline([ak.CenterCrop(10)])(torch.ones(3, 4, 6, dtype=torch.uint8) * 255)
    # (grid_sample's coordinates are float32: a tap at an integer coordinate may weigh its neighbour by ~1e-7)
    assert y.shape == (3, 10, 10) and abs(float(y.sum()) - 3 * 4 * 6) < 1e-4
    assert float(y[:, 3:7, 2:8].min()) > 1 - 1e-6 and float(y[:, :2].max()) == 0.0  # the image inside, fill around


def test_ragged_list_equals_per_image_calls_and_padded_batched_path(photos):
    imgs = [torch.from_numpy(im).permute(2, 0, 1) for im in photos.values()]
    for ops in (
        [ak.RandomResizedCrop(64), ak.HorizontalFlip(), ak.Contrast()],
        [ak.Rotate(30, border="reflect", fill=0.2), ak.Resize((48, 40))],
        [ak.Zoom(scale=(0.6, 0.9), fill=0.3), ak.RandomResizedCrop(50, antialias=False)],
        [ak.Affine(rotate=20, border="replicate"), ak.RandomCrop(200, pad=30, border="replicate")],
    ):
        pipe = ak.Pipeline(ops, seed=5)
        y, p = pipe(imgs, return_params=True)
        assert y.shape[0] == len(imgs) and y.dtype == torch.float32
        for b, im in enumerate(imgs):
            torch.testing.assert_close(pipe(im, params=p.select(b)), y[b], atol=1e-5, rtol=0)
        # the padded one-call path the GPU takes, run here on the CPU
        sizes = torch.tensor([t.shape[1:] for t in imgs])
        out = torch.empty_like(y)
        pipe._tensor._run(_pad(imgs), p, out, sizes)
        torch.testing.assert_close(out, y, atol=2e-4, rtol=0)


def test_keyed_params_with_boxes_are_batch_independent():
    pipe = ak.Pipeline([ak.Rot90(), ak.RandomResizedCrop(32), ak.HorizontalFlip()], seed=0)
    keys = [5, 17, 2**40, 99]
    batch = pipe.sample_keyed(keys, hw=(64, 48))
    for i, k in enumerate(keys):
        one = pipe.sample_keyed([k], hw=(64, 48))
        for a, b in zip(one.values, batch.select(i).values):
            assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_replay_and_uint8_equals_float(photos):
    pipe = ak.Pipeline([ak.Affine(scale=(0.8, 1.2), rotate=15, translate=0.1, shear=5), ak.RandomResizedCrop(48), ak.VerticalFlip()], seed=3)
    x = torch.from_numpy(photos["astronaut"]).permute(2, 0, 1)[None].repeat(4, 1, 1, 1)
    y, p = pipe(x, return_params=True)
    assert torch.equal(pipe(x, params=p), y)
    torch.testing.assert_close(pipe(x.float() / 255, params=p), y, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ak.Resize(0), r"Resize.size must be an int s or \(H, W\)"),
        (lambda: ak.RandomResizedCrop((32, -1)), r"RandomResizedCrop.size must be"),
        (lambda: ak.CenterCrop(2.5), r"CenterCrop.size must be"),
        (lambda: ak.RandomResizedCrop(32, scale=(1.0, 0.5)), r"RandomResizedCrop.scale must be"),
        (lambda: ak.RandomResizedCrop(32, ratio=(0.5, float("nan"))), r"RandomResizedCrop.ratio must be"),
        (lambda: ak.Rotate(degrees=(10, -10)), r"Rotate.degrees must be"),
        (lambda: ak.Affine(scale=(0.0, 1.0)), r"Affine.scale must be"),
        (lambda: ak.Translate(fraction=float("inf")), r"Translate.fraction must be"),
        (lambda: ak.Affine(border="wrap"), r"Affine.border must be one of \['constant', 'reflect', 'replicate'\], got 'wrap'"),
        (lambda: ak.Rotate(interpolation="bicubic"), r"Rotate.interpolation must be one of"),
        (lambda: ak.RandomCrop(8, pad=-1), r"RandomCrop.pad must be"),
        (lambda: ak.Resize(8, p=0.5), r"Resize.p must be 1.0"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"mixed sizes \(10x12 and 11x12\) need a sizing op"):
        ak.Pipeline([ak.HorizontalFlip(), ak.Contrast()])([torch.rand(3, 10, 12), torch.rand(3, 11, 12)])
    with pytest.raises(ValueError, match=r"mixed sizes .* before any other op"):
        ak.Pipeline([ak.Contrast(), ak.Resize(8)])([torch.rand(3, 10, 12), torch.rand(3, 11, 12)])
    with pytest.raises(ValueError, match=r"Rot90 on a non-square 10x12 image .* add a sizing op"):
        ak.Pipeline([ak.Rot90()])(torch.rand(2, 3, 10, 12))
    with pytest.raises(ValueError, match=r"x\[1\] must be \(C, H, W\)"):
        ak.Pipeline([ak.Resize(8)])([torch.rand(3, 10, 12), torch.rand(10, 12)])
    with pytest.raises(ValueError, match=r"share dtype, device and channels"):
        ak.Pipeline([ak.Resize(8)])([torch.rand(3, 10, 12), torch.rand(1, 10, 12)])
    # Rot90 on a square image needs nothing more; with a sizing op, any shape works
    assert ak.Pipeline([ak.Rot90()])(torch.rand(2, 3, 9, 9)).shape == (2, 3, 9, 9)
    assert ak.Pipeline([ak.Rot90(), ak.Resize((5, 7))])(torch.rand(2, 3, 9, 12)).shape == (2, 3, 5, 7)


def test_apply_rates_and_angle_range():
    pipe = ak.Pipeline([ak.Rotate(degrees=20, p=0.3), ak.Rot90(p=0.5), ak.Translate(0.1)], seed=0)
    p = pipe.sample(20000)
    assert abs(p[0]["apply"].float().mean() - 0.3) < 0.015 and abs(p[1]["apply"].float().mean() - 0.5) < 0.015
    assert p[0]["angle"].min() >= -20 and p[0]["angle"].max() < 20 and abs(p[0]["angle"].mean()) < 0.5
    assert set(p[1]["k"].tolist()) == {1, 2, 3}
    t = p[2]["translate"]
    assert t.shape == (20000, 2) and abs(np.corrcoef(t[:, 0], t[:, 1])[0, 1]) < 0.03


# Albumentations (numpy) backend ----------------------------------------------------------

def _tensor_ref(img: np.ndarray, pipe: ak.Pipeline, params: Params) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(img.reshape(*img.shape[:2], -1))).permute(2, 0, 1)
    y = pipe(x, params=params).permute(1, 2, 0).numpy()
    return y.reshape(y.shape[:2] + img.shape[2:])


GEOMETRY_PIPES = [
    [ak.Zoom(scale=(0.7, 0.9)), ak.Zoom(scale=(1.1, 1.3))],  # two zooms: one resample on both backends
    [ak.RandomResizedCrop(96), ak.HorizontalFlip()],
    [ak.RandomResizedCrop((64, 80), antialias=False), ak.VerticalFlip()],
    [ak.Rotate(30, border="reflect"), ak.Resize((100, 120))],
    [ak.Affine(scale=(0.8, 1.2), rotate=20, translate=0.1, shear=10, fill=0.3)],
    [ak.Translate(0.2, border="replicate")],
    [ak.Rot90(p=1.0), ak.CenterCrop(100)],
    [ak.RandomCrop(120, pad=16, border="reflect"), ak.Contrast()],
]


@pytest.mark.parametrize("ops", GEOMETRY_PIPES, ids=lambda o: "+".join(type(op).__name__ for op in o))
def test_numpy_backend_pixel_parity(photos, ops):
    pipe = ak.Pipeline(ops, seed=1)
    for name, img in photos.items():
        for im in (img, np.ascontiguousarray(img[::2, ::3, 0])):
            out, p = pipe(im, return_params=True)
            ref = _tensor_ref(im, pipe, p)
            assert out.shape == ref.shape and out.dtype == np.uint8
            d = np.abs(out.astype(np.float32) / 255 - ref) * 255
            assert d.mean() <= 1.0 and d[3:-3, 3:-3].max() <= 3.0, f"{name} {im.shape}: {d.mean():.3f} {d[3:-3, 3:-3].max():.2f}"
            f32 = pipe(im.astype(np.float32) / 255, params=p)  # float in: against the tensor path on float input
            assert np.abs(f32 - _tensor_ref(im.astype(np.float32) / 255, pipe, p))[3:-3, 3:-3].mean() <= 1e-3


def test_numpy_backend_params_equal_keyed_batch_rows(photos):
    pipe = ak.Pipeline([ak.Rot90(), ak.RandomResizedCrop(48), ak.HorizontalFlip()], seed=0)
    img = photos["coffee"]
    keys = [3, 8, 13]
    batch = pipe.sample_keyed(keys, hw=img.shape[:2])
    for i, k in enumerate(keys):
        _, p = pipe(img, params=pipe.sample_keyed([k]), return_params=True)
        assert all(torch.equal(p[j][key], batch.select(i)[j][key]) for j in range(3) for key in p[j])


def test_to_albumentations_exports_each_op_with_the_same_distribution(photos):
    import albumentations as A

    from augkit.backends.albu_geometry import AugkitGeometric

    ops = [ak.RandomResizedCrop(32, scale=(0.2, 1.0)), ak.Rotate(20, p=0.4), ak.Rot90(), ak.HorizontalFlip()]
    compose = ak.Pipeline(ops, seed=2).to_albumentations()
    assert isinstance(compose, A.Compose) and all(isinstance(t, AugkitGeometric) for t in compose.transforms[:3])
    img = photos["astronaut"][::4, ::4]
    out = compose(image=img, mask=img[..., 0])
    assert out["image"].shape == (32, 32, 3) and out["mask"].shape == (32, 32)
    n = 2000
    draws = [compose.transforms[1].get_params() for _ in range(n)]
    assert abs(np.mean([d["apply"] for d in draws]) - 0.4) < 0.04
    assert ks_2samp([d["angle"] for d in draws], np.random.default_rng(0).uniform(-20, 20, n)).pvalue > 1e-3


def test_loaders_take_mixed_size_datasets(photos):
    from torch.utils.data import Dataset

    class Mixed(Dataset):
        def __init__(self) -> None:
            self.imgs = [im[: 100 + 17 * i, : 120 + 9 * i] for i, im in enumerate(list(photos.values()) * 3)]

        def __len__(self) -> int:
            return len(self.imgs)

        def __getitem__(self, i: int):
            return self.imgs[i], i

    pipe = ak.Pipeline([ak.RandomResizedCrop(40), ak.HorizontalFlip(), ak.Contrast()], seed=0)
    for backend in ("tensor", "albumentations"):
        ld = ak.loader(Mixed(), pipe, batch_size=5, device="cpu", num_workers=0, backend=backend)
        batches = list(ld)
        assert [tuple(b[0].shape) for b in batches] == [(5, 3, 40, 40), (5, 3, 40, 40), (2, 3, 40, 40)]
        assert all(b[0].dtype == torch.float32 and 0 <= float(b[0].min()) and float(b[0].max()) <= 1 for b in batches)
    with pytest.raises(ValueError, match="must share one"):
        list(ak.loader(Mixed(), ak.Pipeline([ak.HorizontalFlip()]), batch_size=5, device="cpu", num_workers=0, backend="tensor"))


def test_batched_ragged_path_issues_the_same_ops_for_any_batch_size(photos, monkeypatch):
    """The one-call path the GPU takes: its count of torch ops does not grow with the batch."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from augkit.backends import tensor

    monkeypatch.setattr(tensor, "_host_loops", lambda device: False)  # the GPU's choice, on the CPU

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += 1
            return func(*args, **(kwargs or {}))

    for ops in ([ak.RandomResizedCrop(32), ak.HorizontalFlip(), ak.Contrast()], [ak.Rotate(20, border="reflect"), ak.Resize(24)]):
        pipe = ak.Pipeline(ops, seed=0)
        per_b = []
        for b in (3, 9):
            imgs = [torch.from_numpy(photos["coffee"][: 60 + 7 * i, : 50 + 5 * i].copy()).permute(2, 0, 1) for i in range(b)]
            sizes = torch.tensor([t.shape[1:] for t in imgs])
            params = pipe.sample(b, hw=sizes)
            batch = _pad(imgs)
            out = torch.empty(b, 3, *(ops[0].size if hasattr(ops[0], "size") else ops[-1].size))
            with Count() as c:
                pipe._tensor._run(batch, params, out, sizes)
            per_b.append(c.n)
            ref = pipe(imgs, params=params)  # the CPU's per-sample loop gives the same pixels, but
            d = (ref - out).abs()  # resizes uint8 crops in uint8: levels rounded (0.5), fixed-point weights
            assert d.max() <= 1.5 / 255 and d.mean() <= 0.5 / 255
        # equal up to the views matmul adds for some shapes; a loop over samples would add ~20 per sample
        assert abs(per_b[0] - per_b[1]) <= 4, (ops, per_b)


def test_geometric_ops_round_trip_through_yaml():
    ops = [
        ak.Affine(scale=(0.9, 1.1), rotate=10, translate=0.1, shear=5, border="reflect", interpolation="nearest", fill=0.2),
        ak.Rotate(20), ak.Translate(0.2), ak.Rot90(), ak.RandomResizedCrop((100, 120), antialias=False), ak.Resize(64),
        ak.CenterCrop(32), ak.RandomCrop(16, pad=2, border="replicate"),
    ]
    pipe = ak.Pipeline(ops, seed=3)
    assert ak.Pipeline.from_yaml(pipe.to_yaml()).ops == ops
    assert ops[1].degrees == (-20.0, 20.0) and ops[2].fraction == (-0.2, 0.2) and ops[5].size == (64, 64)


@pytest.mark.parametrize("ops", [[ak.RandomResizedCrop(96), ak.HorizontalFlip()], [ak.RandomResizedCrop((64, 80), antialias=False)], [ak.Resize((100, 120))], [ak.CenterCrop(100)]],
                         ids=lambda o: "+".join(type(op).__name__ for op in o))
def test_numpy_backend_crops_agree_to_the_edge(photos, ops):
    """Crops clip their taps to the box on both backends: equal everywhere, the crop's edge included."""
    pipe = ak.Pipeline(ops, seed=1)
    for img in photos.values():
        for _ in range(3):
            out, p = pipe(img, return_params=True)
            assert np.abs(out.astype(np.float32) / 255 - _tensor_ref(img, pipe, p)).max() * 255 <= 1.0


def test_numpy_backend_nearest_matches_tensor_backend(photos):
    pipe = ak.Pipeline([ak.Rotate(30, interpolation="nearest"), ak.Translate(0.1, interpolation="nearest")], seed=2)
    img = photos["astronaut"]
    for _ in range(3):
        out, p = pipe(img, return_params=True)
        d = np.abs(out.astype(np.float32) / 255 - _tensor_ref(img, pipe, p)) * 255
        assert (d > 1).mean() < 1e-3  # the same source pixel but for rounding ties
