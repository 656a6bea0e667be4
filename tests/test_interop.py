"""Albumentations importer: ak.Pipeline.from_albumentations (augkit/interop.py)."""

from __future__ import annotations

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
        A.ColorJitter(brightness=(1, 1), contrast=(0.8, 1.25), saturation=(1, 1), hue=(0, 0), p=0.7),
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
        A.Affine(rotate=10, p=1.0),
        A.Affine(scale=(0.8, 1.2), keep_ratio=False),
    ], bbox_params=A.BboxParams(format="coco"))  # fmt: skip
    with pytest.raises(interop.AlbumentationsImportError) as info:
        ak.Pipeline.from_albumentations(compose)
    named = [(pos, name) for pos, name, _ in info.value.unsupported]
    assert named == [("top", "Compose"), ("1", "Blur"), ("2", "OneOf"), ("2.0", "MotionBlur"), ("3", "GaussNoise"),
                     ("4", "RandomBrightnessContrast"), ("5", "Affine"), ("6", "Affine")]
    msg = str(info.value)
    assert msg.startswith("cannot import 8 Albumentations transform(s) into augkit")
    for reason in ("bbox_params format 'coco'", "per_channel=False", "brightness_limit=", "rotate=", "anisotropic", "no augkit equivalent"):
        assert reason in msg
    assert "Transforms with an augkit equivalent: Affine" in msg


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
