"""Targets: masks, boxes and keypoints follow the image, checked against independent references.

References: boxes vs the bounding box of a warped filled-rectangle mask; keypoints vs the argmax
of a warped one-hot impulse image (the image path, bilinear); masks vs NumPy's flips/rot90;
hand-computed matrices and visibilities.
"""

import numpy as np
import pytest
import torch

import augkit as ak
from augkit.geometry import split_runs
from augkit.params import Params
from augkit.targets import check_targets, map_boxes, map_keypoints, transform_targets, warp_masks

H, W = 24, 32

# pipelines whose boxes are exact up to rasterisation (no rotation): within 1 px of the mask's box
AXIS_ALIGNED = {
    "hflip": [ak.HorizontalFlip(p=0.5)],
    "vflip": [ak.VerticalFlip(p=0.5)],
    "zoom": [ak.Zoom(scale=(0.6, 1.6))],
    "flips+zoom+contrast": [ak.HorizontalFlip(), ak.VerticalFlip(), ak.Zoom(scale=(0.7, 1.4)), ak.Contrast(), ak.Zoom(scale=(0.9, 1.2))],
    "translate": [ak.Translate(fraction=0.3)],
    "rot90+resize": [ak.Rot90(p=0.75), ak.Resize((H, W))],
    "random_crop": [ak.RandomCrop((16, 20))],
    "center_crop": [ak.CenterCrop((20, 36))],
    "random_resized_crop": [ak.RandomResizedCrop((20, 28), scale=(0.3, 1.0))],
    "resize": [ak.Resize((30, 17))],
    "affine scale+translate": [ak.Affine(scale=(0.7, 1.3), translate=0.2), ak.HorizontalFlip()],
    "rrc+flip+translate": [ak.RandomResizedCrop((28, 28), scale=(0.5, 1.0)), ak.HorizontalFlip(), ak.Contrast(), ak.Translate(0.2)],
}
ROTATING = {
    "rotate": [ak.Rotate(degrees=35)],
    "affine": [ak.Affine(scale=(0.8, 1.2), rotate=25, shear=10, translate=0.1)],
    "rot90 square": [ak.CenterCrop((H, H)), ak.Rot90(p=0.75)],
}


def _random_boxes(g: torch.Generator, n: int, h: int = H, w: int = W) -> torch.Tensor:
    """n integer boxes (xyxy edges) at least 2 px wide, inside the image."""
    x1 = torch.randint(0, w - 3, (n,), generator=g)
    y1 = torch.randint(0, h - 3, (n,), generator=g)
    x2 = x1 + 2 + (torch.rand(n, generator=g) * (w - x1 - 2)).long()
    y2 = y1 + 2 + (torch.rand(n, generator=g) * (h - y1 - 2)).long()
    return torch.stack((x1, y1, x2, y2), 1).float()


def _render(box: torch.Tensor, h: int = H, w: int = W) -> torch.Tensor:
    """A filled rectangle: pixel (j, i) is in the box when its square [j, j+1] x [i, i+1] is."""
    m = torch.zeros(h, w, dtype=torch.uint8)
    x1, y1, x2, y2 = (int(v) for v in box)
    m[y1:y2, x1:x2] = 1
    return m


def _mask_box(m: torch.Tensor) -> list[float] | None:
    ys, xs = torch.nonzero(m, as_tuple=True)
    if len(xs) == 0:
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@pytest.mark.parametrize("name", list(AXIS_ALIGNED))
def test_boxes_match_the_warped_mask_of_each_box(name):
    pipe = ak.Pipeline(AXIS_ALIGNED[name], seed=1)
    g = torch.Generator().manual_seed(0)
    b, n = 16, 5
    x = torch.zeros(b, 3, H, W, dtype=torch.uint8)
    boxes = [_random_boxes(g, n) for _ in range(b)]
    # one mask channel per box: warped with the same params as the boxes
    masks = torch.stack([torch.stack([_render(bx) for bx in bs]) for bs in boxes])  # (B, n, H, W)
    out = pipe(x, masks=masks, boxes=boxes)
    # one nearest resample moves a mask edge by at most half a pixel of its output; a second run
    # (the image is resampled twice too) adds its own half pixel to the first, scaled by <= 1.2
    tol = 1.0 if len(split_runs(pipe.ops)) == 1 else 1.25
    checked = 0
    for i in range(b):
        kept = out["box_keep"][i].tolist()
        for k in range(n):
            ref = _mask_box(out["masks"][i, k])
            if k not in kept:  # dropped: nothing (or a sliver under a pixel) of it is left
                assert ref is None or (ref[2] - ref[0]) * (ref[3] - ref[1]) <= 2, (name, i, k, ref)
                continue
            got = out["boxes"][i][kept.index(k)].tolist()
            if ref is None:  # a sliver narrower than a pixel centre: the box is that thin too
                assert min(got[2] - got[0], got[3] - got[1]) < 1.0
                continue
            assert np.allclose(got, ref, atol=tol), (name, i, k, got, ref)
            checked += 1
    assert checked >= b * n // 2


def _impulse_check(ops: list, name: str) -> None:
    ops = [op for op in ops if op.kind == "geometric"]  # pixel values must stay an impulse
    pipe = ak.Pipeline(ops, seed=2)
    g = torch.Generator().manual_seed(1)
    b = 24
    j = torch.randint(2, W - 2, (b,), generator=g)
    i = torch.randint(2, H - 2, (b,), generator=g)
    x = torch.zeros(b, 1, H, W)
    x[torch.arange(b), 0, i, j] = 1.0
    pts = [torch.tensor([[float(j[s]) + 0.5, float(i[s]) + 0.5]]) for s in range(b)]  # the pixel's centre
    out = pipe(x, keypoints=pts)
    oh, ow = out["image"].shape[-2:]
    checked = 0
    for s in range(b):
        (kx, ky), vis = out["keypoints"][s][0].tolist(), bool(out["keypoints_visible"][s][0])
        assert vis == (0 <= kx < ow and 0 <= ky < oh)
        img = out["image"][s, 0]
        if not vis or img.max() < 0.2:  # out of the frame, or spread thin by a shrinking resample
            continue
        ay, ax = divmod(int(img.argmax()), ow)
        assert abs(ax + 0.5 - kx) <= 1.0 and abs(ay + 0.5 - ky) <= 1.0, (name, s, (kx, ky), (ax, ay))
        checked += 1
    assert checked >= b // 3, checked


@pytest.mark.parametrize("name", list(AXIS_ALIGNED))
def test_keypoints_follow_the_argmax_of_a_warped_impulse(name):
    _impulse_check(AXIS_ALIGNED[name], name)


@pytest.mark.parametrize("name", list(ROTATING))
def test_keypoints_follow_impulses_through_rotations(name):
    _impulse_check(ROTATING[name], name)


@pytest.mark.parametrize("name", list(ROTATING))
def test_rotated_boxes_are_the_box_enclosing_the_turned_box(name):
    """Independent of the matrices: a box of size (w, h) centred at b, turned by angle a about the
    image centre c (counter-clockwise on screen), spans w|cos a| + h|sin a| by w|sin a| + h|cos a|
    around c + R(a) (b - c); it encloses the warped mask of the box (within a pixel)."""
    pipe = ak.Pipeline(ROTATING[name], seed=7)
    box = torch.tensor([[13.0, 9.0, 19.0, 15.0]])  # central: nothing is clipped
    b = 12
    mask = _render(box[0])[None, None].expand(b, 1, H, W)
    out, params = pipe(torch.zeros(b, 3, H, W), masks=mask, boxes=[box] * b, return_params=True)
    for s in range(b):
        got = out["boxes"][s][0].tolist()
        ref_mask = _mask_box(out["masks"][s, 0])
        assert got[0] <= ref_mask[0] + 1 and got[1] <= ref_mask[1] + 1 and got[2] >= ref_mask[2] - 1 and got[3] >= ref_mask[3] - 1
        if name == "rotate":
            a = np.deg2rad(float(params[0]["angle"][s])) if bool(params[0]["apply"][s]) else 0.0
            c, sn = np.cos(a), np.sin(a)
            cx, cy = W / 2, H / 2  # the image centre in edge coordinates
            bx, by = 16.0 - cx, 12.0 - cy
            ex, ey = cx + c * bx + sn * by, cy - sn * bx + c * by  # y down: counter-clockwise on screen
            hw_, hh_ = (6 * abs(c) + 6 * abs(sn)) / 2, (6 * abs(sn) + 6 * abs(c)) / 2
            np.testing.assert_allclose(got, [ex - hw_, ey - hh_, ex + hw_, ey + hh_], atol=1e-3)


def test_reflect_border_mirrors_masks_as_numpy_symmetric_padding():
    pipe = ak.Pipeline([ak.Translate(fraction=0.25, border="reflect")], seed=0)
    params = Params(("Translate",), ({"apply": torch.tensor([True]), "translate": torch.tensor([[0.25, -0.25]])},))
    mask = torch.randint(0, 50, (1, H, W), generator=torch.Generator().manual_seed(8))
    out = pipe(torch.zeros(1, 3, H, W), masks=mask, params=params)["masks"][0].numpy()
    dx, dy = W // 4, H // 4  # right by 8, up by 6
    ref = np.pad(mask[0].numpy(), ((0, dy), (dx, 0)), mode="symmetric")[dy:, :W]
    np.testing.assert_array_equal(out, ref)


def test_masks_through_flips_equal_numpy_flips():
    pipe = ak.Pipeline([ak.HorizontalFlip(p=0.5), ak.VerticalFlip(p=0.5)], seed=3)
    g = torch.Generator().manual_seed(2)
    masks = torch.randint(0, 1000, (32, 2, H, W), generator=g, dtype=torch.int64)
    out, params = pipe(torch.zeros(32, 3, H, W), masks=masks, return_params=True)
    h, v = params[0]["apply"].numpy(), params[1]["apply"].numpy()
    assert h.any() and (~h).any() and v.any() and (~v).any()
    for s in range(32):
        ref = masks[s].numpy()
        if h[s]:
            ref = np.flip(ref, axis=2)
        if v[s]:
            ref = np.flip(ref, axis=1)
        np.testing.assert_array_equal(out["masks"][s].numpy(), ref)


def test_warp_masks_rot90_matrix_equals_numpy_rot90():
    # np.rot90 (counter-clockwise): output (x', y') = (y, W - 1 - x), output size (W, H)
    g = torch.Generator().manual_seed(3)
    masks = torch.randint(0, 5, (2, 3, H, W), generator=g, dtype=torch.uint8)
    m = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, W - 1.0], [0.0, 0.0, 1.0]]).expand(2, 3, 3)
    out = warp_masks(masks, m, (W, H))
    np.testing.assert_array_equal(out.numpy(), np.rot90(masks.numpy(), axes=(2, 3)))
    # boxes through the same matrix: pixel-edge box [x1, x2] x [y1, y2] -> [y1, y2] x [W - x2, W - x1]
    box = torch.tensor([[3.0, 5.0, 10.0, 7.0]])
    got, keep = map_boxes(box, torch.tensor([0]), [(m, (W, H))])
    assert keep.item() and got.tolist() == [[5.0, W - 10.0, 7.0, W - 3.0]]
    assert _mask_box(warp_masks(_render(box[0])[None, None], m[:1], (W, H))[0, 0]) == got[0].tolist()


def test_rotation_gives_the_box_enclosing_the_turned_corners():
    # 30 degrees about the centre (cx, cy) in pixel-centre coordinates, hand-computed corners
    th = np.deg2rad(30.0)
    c, s = np.cos(th), np.sin(th)
    cx, cy = (W - 1) / 2, (H - 1) / 2
    m = torch.tensor([[c, -s, cx - c * cx + s * cy], [s, c, cy - s * cx - c * cy], [0, 0, 1]], dtype=torch.float64)[None]
    box = [10.0, 8.0, 20.0, 14.0]
    corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]]) - 0.5
    turned = corners @ np.array([[c, s], [-s, c]]) + np.array([cx - c * cx + s * cy, cy - s * cx - c * cy]) + 0.5
    ref = [turned[:, 0].min(), turned[:, 1].min(), turned[:, 0].max(), turned[:, 1].max()]
    got, keep = map_boxes(torch.tensor([box]), torch.tensor([0]), [(m, (H, W))])
    assert keep.item()
    np.testing.assert_allclose(got[0].numpy(), ref, atol=1e-4)
    # and it encloses every pixel of the rotated rectangle's nearest-warped mask
    mb = _mask_box(warp_masks(_render(torch.tensor(box))[None, None], m, (H, W))[0, 0])
    assert got[0, 0] <= mb[0] + 0.5 and got[0, 1] <= mb[1] + 0.5 and got[0, 2] >= mb[2] - 0.5 and got[0, 3] >= mb[3] - 0.5


@pytest.mark.parametrize("ids", [torch.tensor([0, 3, 7, 2**40 + 1, 2**53 + 1]), torch.tensor([0, 3, 7, 200, 255], dtype=torch.uint8),
                                 torch.tensor([-300, 0, 17, 32767], dtype=torch.int16)], ids=["int64 gather", "uint8 sampler", "int16 sampler"])
def test_nearest_warp_never_invents_class_ids(ids):
    # int64 ids beyond float32 (and float64) exactness take the gather path; small dtypes the sampler
    g = torch.Generator().manual_seed(4)
    masks = ids[torch.randint(0, len(ids), (8, H, W), generator=g)]
    pipe = ak.Pipeline([ak.Zoom(scale=(0.5, 1.7)), ak.Contrast(), ak.Rotate(30)], seed=4, mask_fill=9)  # separable, then general
    out = pipe(torch.zeros(8, 3, H, W), masks=masks)["masks"]
    assert out.dtype == ids.dtype and out.shape == masks.shape
    assert set(out.unique().tolist()) <= set(ids.tolist()) | {9}
    assert (out == 9).any()  # some sample zoomed out: the fill is there


def test_bool_masks_and_probability_maps_keep_their_dtype():
    pipe = ak.Pipeline([ak.Zoom(scale=(1.2, 1.2))], seed=0)
    for dt in (torch.bool, torch.uint8, torch.int32):
        m = torch.ones(2, H, W, dtype=dt)
        assert pipe(torch.zeros(2, 3, H, W), masks=m)["masks"].dtype == dt


def test_min_visibility_hand_computed():
    # zoom 2x about the centre (16, 12) in edge coordinates: box [0, 8, 16, 16] -> [-16, 4, 16, 20], clipped [0, 4, 16, 20]
    params = Params(("Zoom",), ({"apply": torch.tensor([True]), "scale": torch.tensor([2.0])},))
    box = [torch.tensor([[0.0, 8.0, 16.0, 16.0], [0.0, 0.0, 4.0, 4.0]])]  # the second lands fully outside
    for mv, kept in ((0.0, [0]), (0.5, [0]), (0.51, [])):
        out = ak.Pipeline([ak.Zoom()], seed=0, min_visibility=mv)(torch.zeros(1, 3, H, W), boxes=box, labels=[torch.tensor([5, 6])], params=params)
        assert out["box_keep"][0].tolist() == kept
        assert out["labels"][0].tolist() == [5, 6][: len(kept)]
        if kept:
            assert out["boxes"][0].tolist() == [[0.0, 4.0, 16.0, 20.0]]


def test_ragged_batch_equals_one_sample_at_a_time():
    pipe = ak.Pipeline(AXIS_ALIGNED["flips+zoom+contrast"], seed=5)
    g = torch.Generator().manual_seed(5)
    counts = [3, 0, 7, 1, 0, 4]
    boxes = [_random_boxes(g, n) for n in counts]
    kps = [torch.rand(n, 2, generator=g) * torch.tensor([W, H]) for n in counts[::-1]]
    labels = [torch.arange(n) * 10 for n in counts]
    x = torch.zeros(len(counts), 3, H, W)
    out, params = pipe(x, boxes=boxes, keypoints=kps, labels=labels, return_params=True)
    for s in range(len(counts)):
        one = pipe(x[s : s + 1], boxes=[boxes[s]], keypoints=[kps[s]], labels=[labels[s]], params=params.select(s))
        for k in ("boxes", "labels", "box_keep", "keypoints", "keypoints_visible"):
            assert torch.equal(out[k][s], one[k][0]), (k, s)
        assert torch.equal(out["labels"][s], labels[s][out["box_keep"][s]])


def test_replay_and_no_targets_means_an_image():
    pipe = ak.default_pipeline(seed=0)
    x = torch.randint(0, 256, (4, 3, H, W), dtype=torch.uint8)
    assert isinstance(pipe(x), torch.Tensor)
    boxes = [torch.tensor([[1.0, 2.0, 20.0, 15.0]])] * 4
    out, params = pipe(x, boxes=boxes, return_params=True)
    again = pipe(x, boxes=boxes, params=params)
    assert torch.equal(out["image"], again["image"]) and all(torch.equal(a, b) for a, b in zip(out["boxes"], again["boxes"]))
    assert torch.equal(out["image"], pipe(x, params=params))


def test_photometric_ops_pass_targets_through():
    photometric = [op for op in (ak.Contrast(), ak.GaussianNoise(std=0.1), ak.Normalize()) if op.kind != "geometric"]
    pipe = ak.Pipeline(photometric, seed=0)
    masks = torch.randint(0, 4, (3, H, W))
    boxes = [torch.tensor([[1.5, 2.0, 20.0, 15.0]]), torch.zeros(0, 4), torch.tensor([[0.0, 0.0, W, H]])]
    kps = [torch.tensor([[3.0, 4.0]])] * 3
    out = pipe(torch.rand(3, 3, H, W), masks=masks, boxes=boxes, keypoints=kps)
    assert torch.equal(out["masks"], masks)
    assert all(torch.equal(a, b) for a, b in zip(out["boxes"], boxes))
    assert all(torch.equal(a, b) for a, b in zip(out["keypoints"], kps))


def test_single_image_tensor_and_numpy_paths_agree_with_the_batch():
    pipe = ak.Pipeline(AXIS_ALIGNED["flips+zoom+contrast"], seed=6)
    g = torch.Generator().manual_seed(6)
    img = torch.randint(0, 256, (3, H, W), dtype=torch.uint8, generator=g)
    mask = torch.randint(0, 3, (H, W), dtype=torch.uint8, generator=g)
    boxes = _random_boxes(g, 6)
    kps = torch.rand(5, 2, generator=g) * torch.tensor([W, H])
    labels = np.array(["a", "b", "c", "d", "e", "f"])
    for seed in range(6):
        params = pipe.sample(1, keys=torch.tensor([seed]))
        batch = pipe(img[None], masks=mask[None], boxes=[boxes], keypoints=[kps], params=params)
        one = pipe(img, mask=mask, boxes=boxes, keypoints=kps, params=params)
        np_out = pipe(img.permute(1, 2, 0).numpy(), mask=mask.numpy(), boxes=boxes.numpy(), keypoints=kps.numpy(), labels=labels, params=params)
        assert torch.equal(one["mask"], batch["masks"][0]) and np.array_equal(np_out["mask"], one["mask"].numpy())
        np.testing.assert_allclose(np_out["boxes"], batch["boxes"][0].numpy(), atol=1e-5)
        np.testing.assert_allclose(np_out["keypoints"], batch["keypoints"][0].numpy(), atol=1e-5)
        assert list(np_out["labels"]) == list(labels[batch["box_keep"][0].numpy()])
        assert np_out["image"].shape == (H, W, 3) and one["image"].shape == (3, H, W)


def test_multichannel_numpy_mask_is_hwk():
    pipe = ak.Pipeline([ak.HorizontalFlip(p=1.0)], seed=0)
    m = np.random.default_rng(0).integers(0, 9, (H, W, 2)).astype(np.uint8)
    out = pipe(np.zeros((H, W, 3), np.uint8), mask=m)
    np.testing.assert_array_equal(out["mask"], m[:, ::-1])


def test_kernels_keep_empty_inputs():
    m = torch.eye(3).expand(2, 3, 3)
    b, keep = map_boxes(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), [(m, (H, W))])
    assert b.shape == (0, 4) and keep.shape == (0,)
    p, vis = map_keypoints(torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64), [(m, (H, W))])
    assert p.shape == (0, 2) and vis.shape == (0,)


def test_target_options_serialize():
    pipe = ak.Pipeline([ak.Zoom()], seed=1, mask_fill=255, min_visibility=0.3)
    again = ak.Pipeline.from_dict(pipe.to_dict())
    assert (again.mask_fill, again.min_visibility) == (255, 0.3)
    assert "mask_fill" not in ak.Pipeline([ak.Zoom()], seed=1).to_dict()  # defaults leave old dicts alone
    with pytest.raises(ValueError, match="min_visibility"):
        ak.Pipeline([], min_visibility=1.5)
    with pytest.raises(ValueError, match="mask_fill"):
        ak.Pipeline([], mask_fill=-1)


# bad input -----------------------------------------------------------------------------
BAD = [
    (dict(boxes=[torch.tensor([[5.0, 1.0, 2.0, 3.0]]), torch.zeros(0, 4)]), ValueError, r"boxes\[0\] must be xyxy with x2 >= x1.*row 0"),
    (dict(boxes=[torch.zeros(0, 4), torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, float("nan"), 1.0, 1.0]])]), ValueError, r"boxes\[1\] must be finite.*row 1"),
    (dict(boxes=[torch.zeros(1, 4), torch.zeros(2, 5)]), ValueError, r"boxes\[1\] must have shape \(N, 4\), got \(2, 5\)"),
    (dict(boxes=[torch.zeros(1, 4)]), ValueError, r"boxes must be a list of B = 2 tensors.*length 1"),
    (dict(keypoints=[torch.zeros(1, 2), torch.zeros(1, 3)]), ValueError, r"keypoints\[1\] must have shape \(N, 2\)"),
    (dict(keypoints=[torch.zeros(1, 2), torch.tensor([[float("inf"), 0.0]])]), ValueError, r"keypoints\[1\] must be finite"),
    (dict(masks=torch.zeros(2, H, W + 1, dtype=torch.uint8)), ValueError, r"masks must have the image's H, W = 24, 32, got shape \(2, 24, 33\)"),
    (dict(masks=torch.zeros(3, H, W, dtype=torch.uint8)), ValueError, r"masks must be \(B, H, W\) or \(B, K, H, W\) with B = 2"),
    (dict(masks=torch.zeros(2, H, W)), TypeError, r"masks must be an integer or bool tensor.*float32"),
    (dict(boxes=[torch.zeros(1, 4)] * 2, labels=[torch.zeros(1), torch.zeros(2)]), ValueError, r"labels\[1\] must have shape \(1,\) to match boxes\[1\]"),
    (dict(labels=[torch.zeros(1)] * 2), ValueError, r"labels belong to boxes"),
    (dict(boxes="nope"), TypeError, r"boxes must be a list of B = 2"),
]


@pytest.mark.parametrize(("kw", "err", "match"), BAD, ids=range(len(BAD)))
def test_bad_targets_name_the_argument_and_the_sample(kw, err, match):
    pipe = ak.Pipeline([ak.HorizontalFlip()], seed=0)
    with pytest.raises(err, match=match):
        pipe(torch.zeros(2, 3, H, W), **kw)


def test_bad_numpy_targets():
    pipe = ak.Pipeline([ak.HorizontalFlip()], seed=0)
    img = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(ValueError, match=r"mask must have the image's H, W = 24, 32"):
        pipe(img, mask=np.zeros((H + 1, W), np.uint8))
    with pytest.raises(TypeError, match="mask="):
        pipe(img, masks=np.zeros((H, W), np.uint8))
    with pytest.raises(ValueError, match=r"boxes must be xyxy with x2 >= x1.*\[3.0, 0.0, 1.0, 1.0\] in row 0"):
        pipe(img, boxes=np.array([[3.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"keypoints must have shape \(N, 2\)"):
        pipe(img, keypoints=np.zeros((3, 3)))


def test_what_a_run_crops_away_stays_gone():
    """CenterCrop, then (after a photometric op, so in a second resample) a 0.5x zoom: the box is
    clipped to the crop before it shrinks, and a keypoint cut away stays invisible; hand-computed."""
    pipe = ak.Pipeline([ak.CenterCrop((12, 16)), ak.Contrast(), ak.Zoom(scale=(0.5, 0.5))], seed=0)
    out = pipe(torch.zeros(1, 3, H, W), boxes=[torch.tensor([[0.0, 0.0, W, H]])], keypoints=[torch.tensor([[2.0, 2.0], [16.0, 12.0]])])
    # crop: x - 8, y - 6, clipped to [0, 16] x [0, 12]; zoom about (8, 6): u -> 8 + (u - 8) / 2
    assert out["boxes"][0].tolist() == [[4.0, 3.0, 12.0, 9.0]]
    assert out["keypoints"][0].tolist() == [[1.0, 1.0], [8.0, 6.0]]
    assert out["keypoints_visible"][0].tolist() == [False, True]
    assert out["image"].shape[-2:] == (12, 16)


def test_torch_ops_issued_for_targets_do_not_grow_with_the_batch():
    """A ragged batch costs no per-sample work: the same number of torch ops for B = 4 and B = 16."""
    from collections import Counter

    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.n = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n[str(func)] += 1
            return func(*args, **(kwargs or {}))

    pipe = ak.Pipeline([ak.RandomResizedCrop((16, 16)), ak.HorizontalFlip(), ak.Affine(rotate=10), ak.Contrast()], seed=0)
    counts = []
    for b in (4, 4, 16):  # the first call warms caches (device constants made once), as count_pipeline_ops does
        params = pipe.sample(b, hw=(H, W))
        kw = dict(masks=torch.zeros(b, H, W, dtype=torch.uint8), boxes=[torch.tensor([[1.0, 2.0, 20.0, 20.0], [5.0, 5.0, 9.0, 9.0]])] * b,
                  keypoints=[torch.rand(3, 2) * 20] * b, labels=[torch.arange(2)] * b)
        with Count() as c:
            t = check_targets(b, (H, W), **kw)
            transform_targets(pipe.ops, params, (H, W), t, batch=b)
        counts.append(sum(c.n.values()))
    assert counts[1] == counts[2], counts


def test_gather_and_sampler_mask_paths_agree():
    """int64 masks (exact gather) and uint8 masks (the image sampler) land on the same pixels."""
    pipe = ak.Pipeline([ak.RandomResizedCrop((20, 26)), ak.Affine(rotate=25, scale=(0.8, 1.2)), ak.Contrast(), ak.Translate(0.2, border="reflect")], seed=9)
    m8 = torch.randint(0, 200, (6, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(9))
    out8, params = pipe(torch.zeros(6, 3, H, W), masks=m8, return_params=True)
    out64 = pipe(torch.zeros(6, 3, H, W), masks=m8.long(), params=params)
    differ = (out8["masks"].long() != out64["masks"]).float().mean()
    assert differ <= 0.002, float(differ)  # only exact half-pixel ties may round apart


def _numpy_nearest(masks: np.ndarray, m: np.ndarray, out_hw: tuple[int, int], fill: int, border: str) -> tuple[np.ndarray, np.ndarray]:
    """Reference nearest warp in float64 NumPy, one sample at a time: output pixel (j, i) reads the
    input pixel nearest to M^-1 (j, i). Also returns where a source coordinate sits within 1e-3 of
    a half-pixel tie (there float32 grids may round either way)."""
    b, k, h, w = masks.shape
    oh, ow = out_hw
    jj, ii = np.meshgrid(np.arange(ow, dtype=np.float64), np.arange(oh, dtype=np.float64))
    out = np.empty((b, k, oh, ow), masks.dtype)
    tie = np.zeros((b, oh, ow), bool)
    for s in range(b):
        inv = np.linalg.inv(m[s])
        x = inv[0, 0] * jj + inv[0, 1] * ii + inv[0, 2]
        y = inv[1, 0] * jj + inv[1, 1] * ii + inv[1, 2]
        tie[s] = (np.abs(np.abs(x - np.floor(x)) - 0.5) < 1e-3) | (np.abs(np.abs(y - np.floor(y)) - 0.5) < 1e-3)
        sx, sy = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
        if border == "reflect":  # mirror about -0.5 and n - 0.5 (period 2 n), as np.pad "symmetric"
            sx, sy = np.mod(sx, 2 * w), np.mod(sy, 2 * h)
            sx, sy = np.where(sx >= w, 2 * w - 1 - sx, sx), np.where(sy >= h, 2 * h - 1 - sy, sy)
        inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
        out[s] = masks[s][:, np.clip(sy, 0, h - 1), np.clip(sx, 0, w - 1)]
        if border == "constant":
            out[s][:, ~inside] = fill
    return out, tie


@pytest.mark.parametrize("block", [None, 1, 1 << 40], ids=["default blocks", "one sample per thread and block", "one block (as on a GPU)"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.bool, torch.int16, torch.int32, torch.int64])
@pytest.mark.parametrize("border", ["constant", "replicate", "reflect"])
def test_warp_masks_equals_a_numpy_nearest_warp(monkeypatch, block, dtype, border):
    """Rotations, scales, shears and shifts (hand-built matrices), a new output size, K = 2 and an
    odd batch (an uneven last block): every pixel equals the float64 NumPy reference, ties aside."""
    import augkit.targets as T

    if block is not None:
        monkeypatch.setattr(T, "MASK_BLOCK", block)
    rng = np.random.default_rng(11)
    b, oh, ow = 7, 21, 27
    th = rng.uniform(-0.6, 0.6, b)
    sc, sh = rng.uniform(0.7, 1.4, (b, 2)), rng.uniform(-0.2, 0.2, b)
    m = np.zeros((b, 3, 3))
    m[:, 0, 0], m[:, 0, 1] = sc[:, 0] * np.cos(th), -sc[:, 1] * np.sin(th) + sh
    m[:, 1, 0], m[:, 1, 1] = sc[:, 0] * np.sin(th), sc[:, 1] * np.cos(th)
    m[:, :2, 2], m[:, 2, 2] = rng.uniform(-6, 6, (b, 2)), 1.0
    hi = 2 if dtype == torch.bool else 40
    masks = torch.from_numpy(rng.integers(0, hi, (b, 2, H, W))).to(dtype)
    if dtype == torch.int64:
        masks[:, 0] += 2**40  # ids past float64's reach of exact 2**53 steps need the index gather
    fill = 1 if dtype == torch.bool else 7
    got = warp_masks(masks, torch.from_numpy(m), (oh, ow), fill, border).numpy()
    ref, tie = _numpy_nearest(masks.numpy(), m, (oh, ow), fill, border)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    assert tie.mean() < 0.01
    np.testing.assert_array_equal(got[np.broadcast_to(~tie[:, None], got.shape)], ref[np.broadcast_to(~tie[:, None], ref.shape)])
