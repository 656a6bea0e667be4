"""Targets on the Albumentations side: parity of the tensor path, the numpy path, augkit's Compose
(``to_albumentations``) and stock Albumentations transforms on the same params.

Conventions: boxes are ``pascal_voc`` everywhere (pixel edges). Albumentations keypoints have
pixel centres at integers (``A.HorizontalFlip`` sends x to W - 1 - x); augkit's keypoints are in
edge coordinates, so a stock keypoint k is augkit's k + 0.5.
"""

import albumentations as A
import numpy as np
import pytest
import torch

import augkit as ak
from augkit.params import Params

H, W = 40, 56
BOXES = np.array([[3.0, 4.0, 20.0, 30.0], [30.0, 2.0, 55.0, 12.0], [10.0, 25.0, 14.0, 39.0], [0.0, 0.0, W, H]])
LABELS = [1, 2, 3, 4]
KPS = np.array([[5.0, 6.0], [40.0, 30.0], [0.0, 0.0], [55.0, 39.0], [27.5, 19.5]])  # Albumentations' convention


def _mask() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(BOXES[:3].astype(int)):
        m[y1:y2, x1:x2] = k + 1
    return m


def _stock(transform: A.BasicTransform, **kw) -> dict:
    c = A.Compose(
        [transform],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]),
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        seed=0,
    )
    img = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return c(image=img, mask=_mask(), bboxes=BOXES, labels=LABELS, keypoints=KPS, **kw)


def _augkit_paths(pipe: ak.Pipeline, params: Params) -> dict[str, dict]:
    """The same params through the tensor path and the numpy path, keypoints in Albumentations' convention."""
    img = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    t = pipe(torch.from_numpy(img).permute(2, 0, 1)[None], masks=torch.from_numpy(_mask())[None], boxes=[torch.from_numpy(BOXES)],
             labels=[torch.tensor(LABELS)], keypoints=[torch.from_numpy(KPS + 0.5)], params=params)
    n = pipe(img, mask=_mask(), boxes=BOXES, labels=LABELS, keypoints=KPS + 0.5, params=params)
    return {
        "tensor": {"mask": t["masks"][0].numpy(), "bboxes": t["boxes"][0].numpy(), "labels": t["labels"][0].tolist(), "keypoints": t["keypoints"][0].numpy() - 0.5},
        "numpy": {"mask": n["mask"], "bboxes": n["boxes"], "labels": list(n["labels"]), "keypoints": n["keypoints"] - 0.5},
    }


def _compare(ours: dict, ref: dict, what: str, border: int = 2, mask_tol: float = 0.0) -> None:
    assert ours["labels"] == list(ref["labels"]), what
    np.testing.assert_allclose(ours["bboxes"], np.asarray(ref["bboxes"])[:, :4], atol=0.5, err_msg=what)
    np.testing.assert_allclose(ours["keypoints"], np.asarray(ref["keypoints"])[:, :2], atol=0.5, err_msg=what)
    inner = slice(border, -border or None)
    a, b = ours["mask"][inner, inner], ref["mask"][inner, inner]
    assert a.shape == b.shape and a.size
    assert (a != b).mean() <= mask_tol, f"{what}: {(a != b).mean():.4f} of interior mask pixels differ"


def _params(name: str, **values) -> Params:
    dtypes = {"apply": torch.bool}
    return Params((name,), ({k: torch.tensor([v], dtype=dtypes.get(k, torch.float32)) for k, v in values.items()},))


def test_horizontal_flip_matches_stock_albumentations():
    ref = _stock(A.HorizontalFlip(p=1.0))
    pipe = ak.Pipeline([ak.HorizontalFlip(p=1.0)], seed=0)
    for path, ours in _augkit_paths(pipe, _params("HorizontalFlip", apply=True)).items():
        _compare(ours, ref, path, border=0)
    ours = pipe.to_albumentations(label_fields=["labels"])(image=np.zeros((H, W, 3), np.uint8), mask=_mask(), bboxes=BOXES, labels=LABELS, keypoints=KPS)
    _compare({**ours, "bboxes": ours["bboxes"], "keypoints": ours["keypoints"]}, ref, "to_albumentations", border=0)


def test_vertical_flip_matches_stock_albumentations():
    ref = _stock(A.VerticalFlip(p=1.0))
    for path, ours in _augkit_paths(ak.Pipeline([ak.VerticalFlip(p=1.0)], seed=0), _params("VerticalFlip", apply=True)).items():
        _compare(ours, ref, path, border=0)


@pytest.mark.parametrize("scale", [0.7, 1.0, 1.3])
def test_zoom_matches_stock_affine_scale(scale):
    ref = _stock(A.Affine(scale=scale, p=1.0, interpolation=1, mask_interpolation=0, fill=0, fill_mask=0))
    for path, ours in _augkit_paths(ak.Pipeline([ak.Zoom()], seed=0), _params("Zoom", apply=True, scale=scale)).items():
        _compare(ours, ref, f"{path} scale {scale}")


def test_to_albumentations_replays_on_the_tensor_path():
    """augkit's own Compose, any draw: its params (save_applied_params) give the tensor path's targets."""
    pipe = ak.Pipeline([ak.HorizontalFlip(), ak.VerticalFlip(), ak.Zoom(scale=(0.6, 1.5)), ak.Contrast()], seed=3)
    compose = pipe.to_albumentations(label_fields=["labels"])
    compose.save_applied_params = True
    img = np.zeros((H, W, 3), np.uint8)
    for _ in range(8):
        got = compose(image=img, mask=_mask(), bboxes=BOXES, labels=LABELS, keypoints=KPS)
        drawn = [{k: v for k, v in p.items() if k != "shape"} for _, p in got["applied_transforms"]]
        dtypes = {"apply": torch.bool}
        params = Params(tuple(type(op).__name__ for op in pipe.ops),
                        tuple({k: torch.tensor([v], dtype=dtypes.get(k, torch.float32)) for k, v in d.items()} for d in drawn))
        ours = _augkit_paths(pipe, params)["tensor"]
        # Albumentations clips after each transform (check_each_transform); with boxes that stay
        # inside for a flip, it is the final clip that counts, as ours
        _compare(ours, {**got, "labels": got["labels"]}, f"draw {drawn}")


@pytest.mark.parametrize("ops", [
    [ak.HorizontalFlip(), ak.Zoom(scale=(0.7, 1.4))],
    [ak.RandomResizedCrop((36, 44), scale=(0.4, 1.0)), ak.VerticalFlip(), ak.Affine(scale=(0.8, 1.2), translate=0.1)],
    [ak.CenterCrop((H, H)), ak.Rot90(), ak.Translate(0.15), ak.RandomCrop((30, 30))],
], ids=["flip+zoom", "rrc+flip+affine", "crop+rot90+translate+crop"])
def test_compose_boxes_match_the_compose_warped_masks(ops):
    """Independent of the tensor path: inside one Compose, each box matches its own warped rectangle."""
    pipe = ak.Pipeline(ops, seed=4)
    compose = pipe.to_albumentations()
    img = np.zeros((H, W, 3), np.uint8)
    masks = [np.zeros((H, W), np.uint8) for _ in BOXES]
    for k, (x1, y1, x2, y2) in enumerate(BOXES.astype(int)):
        masks[k][y1:y2, x1:x2] = 1
    for _ in range(6):
        got = compose(image=img, masks=masks, bboxes=np.c_[BOXES, np.arange(len(BOXES))])
        for box in got["bboxes"]:
            ys, xs = np.nonzero(got["masks"][int(box[4])])
            np.testing.assert_allclose(box[:4], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1.0)


def test_compose_without_targets_still_works():
    out = ak.Pipeline([ak.Contrast()], seed=0).to_albumentations()(image=np.zeros((H, W, 3), np.uint8))
    assert out["image"].shape == (H, W, 3)


def test_affine_matches_stock_albumentations_affine():
    """Rotation + scale + translation: A.Affine's params are augkit Affine's (angle counter-clockwise)."""
    ref = _stock(A.Affine(rotate=20, scale=1.1, translate_px={"x": 3, "y": -2}, p=1.0, interpolation=1, mask_interpolation=0, fill=0, fill_mask=0))
    params = _params("Affine", apply=True, scale=1.1, angle=20.0, shear=0.0)
    params.values[0]["translate"] = torch.tensor([[3 / W, -2 / H]])
    for path, ours in _augkit_paths(ak.Pipeline([ak.Affine(rotate=30)], seed=0), params).items():
        # Albumentations clips each box after the transform, as ours; a box cut to nothing is dropped by both
        _compare(ours, ref, path)


def test_random_resized_crop_matches_stock_on_its_drawn_crop():
    """A.RandomResizedCrop draws a crop; augkit replays that box (top, left, h, w) and must agree."""
    for seed in range(4):
        c = A.Compose([A.RandomResizedCrop(size=(32, 32), scale=(0.3, 1.0), p=1.0)], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]),
                      keypoint_params=A.KeypointParams(format="xy", remove_invisible=False), save_applied_params=True, seed=seed)
        img = np.zeros((H, W, 3), np.uint8)
        ref = c(image=img, mask=_mask(), bboxes=BOXES, labels=LABELS, keypoints=KPS)
        x1, y1, x2, y2 = ref["applied_transforms"][0][1]["crop_coords"]
        params = _params("RandomResizedCrop", apply=True)
        params.values[0].update(area=torch.ones(1, 10), log_ratio=torch.zeros(1, 10), pos=torch.zeros(1, 2),
                                box=torch.tensor([[y1, x1, y2 - y1, x2 - x1]], dtype=torch.float32))
        pipe = ak.Pipeline([ak.RandomResizedCrop((32, 32))], seed=0)
        for path, ours in _augkit_paths(pipe, params).items():
            what = f"{path} crop {(x1, y1, x2, y2)}"
            # Albumentations' mask resize is OpenCV's INTER_NEAREST (source floor(j s), a half-pixel
            # shift); ours reads the nearest centre (floor((j + 0.5) s)), so masks differ on a few columns
            _compare(ours, ref, what, mask_tol=0.06)
