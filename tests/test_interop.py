"""Albumentations importer: ak.Pipeline.from_albumentations (augkit/interop.py)."""

from __future__ import annotations

import re
import warnings

import albumentations as A
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image

import augkit as ak
from augkit import interop
from augkit.images import sample_images


@pytest.fixture(autouse=True)
def _fresh_warnings():
    interop._WARNED.clear()
    yield
    interop._WARNED.clear()


def _photo(w: int = 64, h: int = 48) -> np.ndarray:
    return np.array(Image.fromarray(sample_images(("chelsea",))["chelsea"]).resize((w, h), Image.Resampling.BILINEAR))


def _deterministic_compose() -> A.Compose:
    """Ten transforms, all with p=1 and fixed values, so both libraries must give the same pixels."""
    return A.Compose([
        A.HorizontalFlip(p=1.0),
        A.VerticalFlip(p=1.0),
        A.Affine(scale=(1.15, 1.15), keep_ratio=True, p=1.0),
        A.ColorJitter(brightness=0, contrast=(0.7, 0.7), saturation=0, hue=0, p=1.0),
        A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=(0.0, 0.0), p=1.0),
        A.GaussNoise(std_range=(0.0, 0.0), p=1.0),
        A.Sequential([A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0)], p=1.0),
        A.Affine(scale=(0.9, 0.9), keep_ratio=True, fill=255, p=1.0),
        A.Normalize(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)),
        ToTensorV2(),
    ], seed=0)  # fmt: skip


def test_real_compose_gives_albumentations_pixels_on_both_backends():
    img = _photo()
    compose = _deterministic_compose()
    want = compose(image=img)["image"].numpy()  # (3, H, W) float32, Albumentations is the reference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = ak.Pipeline.from_albumentations(compose)
    assert [type(op).__name__ for op in pipe.ops] == [
        "HorizontalFlip", "VerticalFlip", "Zoom", "Contrast", "Contrast", "GaussianNoise",
        "HorizontalFlip", "VerticalFlip", "Zoom", "Normalize",
    ]  # fmt: skip
    level = 1 / 255 / 0.2  # one uint8 level after the smallest std
    tensor_out = pipe(torch.from_numpy(img).permute(2, 0, 1)).numpy()
    numpy_out = pipe(img).transpose(2, 0, 1)
    for got in (tensor_out, numpy_out):  # Albumentations rounds to uint8 between transforms
        assert np.abs(got - want).max() <= 2.5 * level
        assert np.abs(got - want).mean() <= 0.5 * level


def test_arguments_carry_over_with_albumentations_meaning():
    compose = A.Compose([
        A.HorizontalFlip(p=0.3),
        A.GaussNoise(std_range=(0.1, 0.2), p=0.4),
        A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=(-0.2, 0.3), p=0.6),
        A.ColorJitter(brightness=(1, 1), contrast=(0.8, 1.25), saturation=(1, 1), hue=(0, 0), p=0.7),  # Contrast only
        A.Affine(scale=(0.8, 1.2), keep_ratio=True, fill=51, p=0.9),
    ], seed=11)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = ak.Pipeline.from_albumentations(compose)
    assert pipe.seed == 11  # the Compose's seed
    assert pipe.ops == [
        ak.HorizontalFlip(p=0.3),
        ak.GaussianNoise(std=(0.1, 0.2), p=0.4),  # std_range is in [0, 1] units, as augkit's std
        ak.Contrast(factor=(0.8, 1.3), p=0.6),  # alpha = 1 + U(contrast_limit)
        ak.Contrast(factor=(0.8, 1.25), p=0.7),
        ak.Zoom(scale=(0.8, 1.2), fill=0.2, p=0.9),  # fill 51 of 255
    ]
    assert ak.Pipeline.from_albumentations(compose, seed=5).seed == 5


def test_round_trips_through_to_albumentations_to_dict_and_files(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = ak.Pipeline.from_albumentations(_deterministic_compose())
    back = ak.Pipeline.from_albumentations(pipe.to_albumentations())  # augkit's own Augkit* transforms
    assert back.ops == pipe.ops and back.seed == pipe.seed
    assert ak.Pipeline.from_albumentations(A.to_dict(pipe.to_albumentations()), seed=pipe.seed).ops == pipe.ops
    for fmt, name in (("yaml", "c.yaml"), ("json", "c.json")):
        A.save(pipe.to_albumentations(), tmp_path / name, data_format=fmt)
        assert ak.Pipeline.from_albumentations(tmp_path / name).ops == pipe.ops
        assert ak.Pipeline.from_albumentations(str(tmp_path / name)).ops == pipe.ops
    text = (tmp_path / "c.yaml").read_text()
    assert ak.Pipeline.from_albumentations(text).ops == pipe.ops
    # augkit's own readers (and so `augkit expand --pipeline`) accept Albumentations' files too
    assert ak.Pipeline.from_yaml(tmp_path / "c.yaml").ops == pipe.ops
    assert ak.Pipeline.from_yaml(str(tmp_path / "c.json")).ops == pipe.ops
    assert ak.Pipeline.from_dict(A.to_dict(pipe.to_albumentations())).ops == pipe.ops
    default = ak.default_pipeline(seed=4)
    assert ak.Pipeline.from_albumentations(default.to_albumentations()).to_dict() == default.to_dict()


def test_every_unsupported_transform_is_named_in_one_error():
    compose = A.Compose([
        A.HorizontalFlip(p=0.5),
        A.Blur(p=0.5),
        A.OneOf([A.MotionBlur(), A.VerticalFlip()], p=0.5),
        A.GaussNoise(std_range=(0.1, 0.2), per_channel=False),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2),
        A.RandomBrightnessContrast(brightness_limit=0.2, brightness_by_max=False),
        A.Affine(translate_px=5, p=1.0),
        A.Affine(scale=(0.8, 1.2), keep_ratio=False),
        A.Sharpen(),
        A.SomeOf([A.InvertImg(), A.Equalize()], n=1, replace=True),
        A.Affine(shear={"x": (0, 0), "y": (-5, 5)}),
    ], bbox_params=A.BboxParams(format="coco"))  # fmt: skip
    with pytest.raises(interop.AlbumentationsImportError) as info:
        ak.Pipeline.from_albumentations(compose)
    named = [(pos, name) for pos, name, _ in info.value.unsupported]
    assert named == [("top", "Compose"), ("1", "Blur"), ("2.0", "MotionBlur"), ("3", "GaussNoise"),
                     ("5", "RandomBrightnessContrast"), ("6", "Affine"), ("7", "Affine"), ("8", "Sharpen"),
                     ("9", "SomeOf"), ("10", "Affine")]
    msg = str(info.value)
    assert msg.startswith("cannot import 10 Albumentations transform(s) into augkit")
    for reason in ("bbox_params format 'coco'", "per_channel=False", "brightness_by_max=False", "translate_px=",
                   "anisotropic", "no augkit equivalent", "Laplacian", "replace=True", "shears along x only"):
        assert reason in msg
    assert "Transforms with an augkit equivalent: Affine" in msg
    assert "Sharpen" not in msg.split("Transforms with an augkit equivalent:")[1]  # explained, not offered


def test_semantic_differences_warn_once():
    compose = A.Compose([A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=0.2), ToTensorV2()])
    with pytest.warns(UserWarning) as record:
        ak.Pipeline.from_albumentations(compose)
    messages = [str(w.message) for w in record]
    assert any("multiplies (x * f)" in m and "mean grey" in m for m in messages)
    assert any(m.startswith("ToTensorV2 dropped") for m in messages)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second import stays quiet
        ak.Pipeline.from_albumentations(compose)
    with pytest.warns(UserWarning, match="Albumentations' default p"):
        ak.Pipeline.from_albumentations(A.Compose([A.Affine(scale=(0.9, 1.1), keep_ratio=True)]))


def test_normalize_must_end_up_last():
    with pytest.raises(interop.AlbumentationsImportError, match="augkit needs Normalize last"):
        ak.Pipeline.from_albumentations(A.Compose([A.Normalize(), A.HorizontalFlip()]))
    with pytest.raises(interop.AlbumentationsImportError, match=r"max_pixel_value=1\.0"):
        ak.Pipeline.from_albumentations(A.Compose([A.Normalize(max_pixel_value=1.0)]))


def test_a_single_transform_imports():
    assert ak.Pipeline.from_albumentations(A.VerticalFlip(p=0.25), seed=1).ops == [ak.VerticalFlip(p=0.25)]


def test_bad_sources(tmp_path):
    with pytest.raises(TypeError, match="source must be an albumentations Compose.*got int"):
        ak.Pipeline.from_albumentations(3)
    with pytest.raises(FileNotFoundError, match="Albumentations file .*nope.yaml' not found"):
        ak.Pipeline.from_albumentations(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="must be what A.to_dict / A.save write"):
        ak.Pipeline.from_albumentations({"ops": []})
    (tmp_path / "bad.yaml").write_text("transform: [unclosed\n")
    with pytest.raises(ValueError, match="does not parse as YAML/JSON"):
        ak.Pipeline.from_albumentations(tmp_path / "bad.yaml")


def test_one_row_adds_a_transform(monkeypatch):
    compose = A.Compose([A.Transpose(p=1.0)])
    with pytest.raises(interop.AlbumentationsImportError, match=r"\[0\] Transpose: no augkit equivalent yet"):
        ak.Pipeline.from_albumentations(compose)
    row = interop.Row("Transpose", lambda a: [ak.HorizontalFlip(p=a["p"])])  # stand-in op, for the mechanism only
    monkeypatch.setitem(interop.ROWS, "Transpose", row)
    assert ak.Pipeline.from_albumentations(compose).ops == [ak.HorizontalFlip(p=1.0)]


# transforms with augkit equivalents from the geometry and photometric issues --------------------
def _geometric_photometric_compose() -> A.Compose:
    """Ten transforms with fixed values (p=1), each an exact augkit mapping (checked one by one below)."""
    return A.Compose([
        A.Affine(scale=(1.1, 1.1), rotate=(12, 12), shear={"x": (8, 8), "y": (0, 0)}, keep_ratio=True, p=1.0),
        A.Rotate(limit=(-10, -10), border_mode=1, p=1.0),  # cv2.BORDER_REPLICATE
        A.Resize(40, 56),
        A.CenterCrop(32, 48),
        A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(1.4, 1.4), hue=(0, 0), p=1.0),
        A.GaussianBlur(blur_limit=(5, 5), sigma_limit=(0.8, 0.8), p=1.0),
        A.RandomGamma(gamma_limit=(80, 80), p=1.0),
        A.Posterize(num_bits=5, p=1.0),
        A.InvertImg(p=1.0),
        A.ToGray(p=1.0),
    ], seed=0)  # fmt: skip


def test_geometric_and_photometric_compose_gives_albumentations_pixels():
    img = _photo()
    compose = _geometric_photometric_compose()
    want = compose(image=img)["image"].astype(np.float64)
    pipe = ak.Pipeline.from_albumentations(compose)
    assert [type(op).__name__ for op in pipe.ops] == [
        "Affine", "Affine", "Rotate", "Resize", "CenterCrop", "ColorJitter", "GaussianBlur", "Gamma", "Posterize",
        "Invert", "Grayscale",
    ]  # fmt: skip  (rotation and shear compose in Albumentations' order as two Affines, still one warp)
    got = pipe(img).astype(np.float64)
    assert got.shape == want.shape == (32, 48, 3)
    # Albumentations resamples four times (augkit once) and rounds to uint8 after every transform
    assert np.abs(got - want).mean() <= 3.0
    assert np.median(np.abs(got - want)) <= 2.0


# Warps: augkit composes its matrix in float32 about the image centre, OpenCV in float64 about the
# corner, so a pixel whose bilinear value sits on a .5 rounding boundary can land one level apart
# (at most 1% of values, one level each): "exact" for a warp means mean <= 0.01 levels.
WARP_ROUNDING = 0.01


@pytest.mark.parametrize(
    ("transform", "op", "tolerance"),
    [
        (A.Affine(rotate=(20, 20), shear={"x": (10, 10), "y": (0, 0)}, p=1), None, 0.01),
        (A.Affine(scale=(1.2, 1.2), rotate=(20, 20), translate_percent=(0.125, 0.125), keep_ratio=True, p=1),
         ak.Affine(scale=(1.2, 1.2), rotate=(20, 20), translate=(0.125, 0.125)), WARP_ROUNDING),
        (A.Affine(rotate=(20, 20), border_mode=1, interpolation=0, fill=255, p=1),
         ak.Affine(rotate=(20, 20), border="replicate", interpolation="nearest", fill=1.0), WARP_ROUNDING),
        (A.Rotate(limit=(20, 20), p=1), ak.Rotate((20, 20)), WARP_ROUNDING),
        (A.ShiftScaleRotate(shift_limit=(0.125, 0.125), scale_limit=(0.2, 0.2), rotate_limit=(20, 20), p=1),
         ak.Affine(scale=(1.2, 1.2), rotate=(20, 20), translate=(0.125, 0.125)), WARP_ROUNDING),
        (A.Resize(32, 40), ak.Resize((32, 40), antialias=False), 0.2),
        (A.CenterCrop(31, 40), ak.CenterCrop((31, 40)), 0.0),
        (A.ToGray(p=1), ak.Grayscale(p=1), 0.0),
        (A.InvertImg(p=1), ak.Invert(p=1), 0.0),
        (A.Solarize(threshold_range=(0.4, 0.4), p=1), ak.Solarize(0.4, p=1), 0.0),
        (A.Posterize(num_bits=3, p=1), ak.Posterize(3, p=1), 0.0),
        (A.RandomGamma(gamma_limit=(70, 70), p=1), ak.Gamma((0.7, 0.7), p=1), 0.6),
        (A.GaussianBlur(blur_limit=(7, 7), sigma_limit=(1.5, 1.5), p=1), ak.GaussianBlur(1.5, kernel_size=7, p=1), 0.0),
        (A.GaussianBlur(blur_limit=0, sigma_limit=(1.5, 1.5), p=1), ak.GaussianBlur(1.5, p=1), 0.0),
        (A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(0.5, 0.5), hue=(0, 0), p=1),
         ak.ColorJitter(saturation=(0.5, 0.5), p=1), 0.6),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, float) else "",
)
def test_each_exact_row_gives_albumentations_pixels(transform, op, tolerance):
    """Mean |difference| in uint8 levels on a photo, fixed params; the importer's op is the one named."""
    img = _photo()
    want = A.Compose([transform], seed=0)(image=img)["image"].astype(np.float64)
    pipe = ak.Pipeline.from_albumentations(A.Compose([transform]))
    if op is not None:
        assert pipe.ops == [op]
    got = pipe(img).astype(np.float64)
    assert np.abs(got - want).mean() <= tolerance


def test_new_rows_carry_arguments_with_albumentations_meaning():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = ak.Pipeline.from_albumentations(A.Compose([
            A.RandomRotate90(p=0.8),
            A.RandomResizedCrop(size=(32, 40), scale=(0.3, 1.0), ratio=(0.5, 2.0)),
            A.RandomCrop(24, 30),
            A.Affine(rotate=(-15, 15), translate_percent=(-0.1, 0.1), p=0.7),
            A.ShiftScaleRotate(shift_limit=0.05, scale_limit=0.1, rotate_limit=30, border_mode=2, fill=51, p=0.6),
            A.GaussianBlur(sigma_limit=(0.5, 2.0), p=0.3),
            A.RandomBrightnessContrast(brightness_limit=(-0.1, 0.2), contrast_limit=(-0.2, 0.3), p=0.4),
            A.ColorJitter(brightness=0.2, contrast=0.3, saturation=0.4, hue=0.1, p=0.9),
            A.Equalize(p=0.2),
            A.Solarize(threshold_range=(0.3, 0.6), p=0.2),
            A.Posterize(num_bits=(3, 6), p=0.25),
        ]))  # fmt: skip
    assert pipe.ops == [
        ak.Rot90(p=0.6),  # k in {0, 1, 2, 3} with p=0.8 is k in {1, 2, 3} with p=0.6
        ak.RandomResizedCrop(size=(32, 40), scale=(0.3, 1.0), ratio=(0.5, 2.0), antialias=False),
        ak.RandomCrop(size=(24, 30)),
        ak.Affine(rotate=(-15, 15), translate=(-0.1, 0.1), p=0.7),
        ak.Affine(scale=(0.9, 1.1), rotate=(-30, 30), translate=(-0.05, 0.05), border="reflect", fill=0.2, p=0.6),
        ak.GaussianBlur(sigma=(0.5, 2.0), p=0.3),
        ak.SomeOf((ak.Contrast((0.8, 1.3)), ak.Brightness((0.9, 1.2))), n=2, p=0.4),  # both or neither
        ak.ColorJitter(brightness=(0.8, 1.2), contrast=(0.7, 1.3), saturation=(0.6, 1.4), hue=(-0.1, 0.1), p=0.9),
        ak.Equalize(p=0.2),
        ak.Solarize((0.3, 0.6), p=0.2),
        ak.Posterize((3, 6), p=0.25),
    ]


def test_one_of_and_some_of_convert_children_recursively():
    pipe = ak.Pipeline.from_albumentations(A.Compose([
        A.OneOf([A.HorizontalFlip(p=3.0 / 4), A.InvertImg(p=0.25),
                 A.SomeOf([A.ToGray(p=0.5), A.VerticalFlip(p=1.0)], n=1, p=1.0)], p=0.7),
        A.SomeOf([A.Solarize(p=1.0), A.InvertImg(p=0.4), A.RandomGamma(p=1.0)], n=2, p=0.9),
    ]))  # fmt: skip
    assert pipe.ops == [
        ak.OneOf((ak.HorizontalFlip(p=1.0), ak.Invert(p=1.0),
                  ak.SomeOf((ak.OneOf((ak.Grayscale(p=1.0),), p=0.5), ak.VerticalFlip(p=1.0)), n=1)),
                 weights=(0.75, 0.25, 1.0), p=0.7),  # A.OneOf: children's p are the weights, the chosen one applies
        ak.SomeOf((ak.Solarize(p=1.0), ak.OneOf((ak.Invert(p=1.0),), p=0.4), ak.Gamma(p=1.0)), n=2, p=0.9),
    ]  # fmt: skip  (A.SomeOf: a chosen child still applies with its own p)
    with pytest.raises(interop.AlbumentationsImportError, match=r"\[0\.1\] Sharpen"):
        ak.Pipeline.from_albumentations(A.Compose([A.OneOf([A.InvertImg(), A.Sharpen()])]))


def test_one_of_frequencies_follow_albumentations():
    """A.OneOf of InvertImg (weight 3) and ToGray (weight 1), p=0.8, on grey-free pixels: each sample's outcome."""
    pipe = ak.Pipeline.from_albumentations(A.Compose([A.OneOf([A.InvertImg(p=0.75), A.ToGray(p=0.25)], p=0.8)]), seed=3)
    x = torch.tensor([[[0.2]], [[0.5]], [[0.9]]]).expand(3, 1, 1).reshape(1, 3, 1, 1).repeat(4000, 1, 1, 1)
    out = pipe(x)[:, :, 0, 0]
    inverted = torch.isclose(out, 1 - x[:, :, 0, 0], atol=1e-5).all(1)
    grey = (out.max(1).values - out.min(1).values < 1e-5)
    untouched = torch.isclose(out, x[:, :, 0, 0], atol=1e-6).all(1)
    assert (inverted.int() + grey.int() + untouched.int() == 1).all()
    for got, want in ((inverted, 0.8 * 0.75), (grey, 0.8 * 0.25), (untouched, 0.2)):
        assert abs(got.float().mean().item() - want) < 4 * (want * (1 - want) / 4000) ** 0.5


def test_augkit_export_of_every_new_op_round_trips():
    ops = [
        ak.Affine(scale=(0.9, 1.1), rotate=10, translate=0.1, shear=5, border="reflect"),
        ak.Rotate(20, p=0.5), ak.Translate(0.1), ak.Rot90(p=0.3),
        ak.RandomResizedCrop(size=(40, 40)), ak.RandomCrop(size=(32, 32), pad=2),
        ak.Brightness(), ak.Saturation(), ak.Hue(), ak.ColorJitter(0.2, 0.2, 0.2, 0.05), ak.Gamma(),
        ak.Grayscale(), ak.Invert(), ak.Solarize(), ak.Posterize(), ak.Equalize(), ak.AutoContrast(),
        ak.Sharpness(), ak.GaussianBlur(), ak.Erasing(),
        ak.OneOf([ak.Invert(), ak.Gamma(), ak.Rotate(5)], weights=(1, 2, 3), p=0.7),
        ak.SomeOf([ak.Solarize(), ak.Posterize(), ak.Equalize()], n=(1, 2), p=0.9),
        ak.Resize(32), ak.CenterCrop(28),
    ]  # fmt: skip
    pipe = ak.Pipeline(ops, seed=2)
    back = ak.Pipeline.from_albumentations(pipe.to_albumentations())
    assert back.ops == pipe.ops and back.seed == pipe.seed
    x = torch.rand(2, 3, 48, 64)
    assert torch.equal(back(x), pipe(x))


def test_new_differences_warn_once():
    cases = [
        (A.ColorJitter(brightness=0.2, hue=0.1), "random order"),
        (A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.1), "adds b (x + b)"),
        (A.Affine(translate_percent=(-0.1, 0.1), p=1.0), "whole pixels"),
        (A.CenterCrop(10, 10), "(H - h) // 2"),
        (A.Equalize(), "PIL's ImageOps.equalize"),
        (A.GaussianBlur(sigma_limit=(0.5, 2.0)), "from the largest sigma"),
    ]
    for transform, text in cases:
        with pytest.warns(UserWarning, match=re.escape(text)):
            ak.Pipeline.from_albumentations(A.Compose([transform]))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ak.Pipeline.from_albumentations(A.Compose([transform]))
