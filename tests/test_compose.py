"""OneOf / SomeOf: exclusivity, frequencies, subset sizes, pixels, replay, serialization, both backends."""

import itertools
import json
import re

import numpy as np
import pytest
import torch
from scipy import stats

import augkit as ak
from augkit.params import Params


def chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


def batch(photos, n: int = 8, size: int = 48) -> torch.Tensor:
    imgs = [photos[k][:size, : size + 16] for k in ("astronaut", "coffee", "chelsea", "rocket")]
    return torch.stack([chw(imgs[i % 4]) for i in range(n)])


def test_one_of_is_exclusive_with_its_weights():
    op = ak.OneOf([ak.Brightness(), ak.Invert(p=0.0), ak.Hue()], weights=(1, 2, 3), p=0.8)
    p = ak.Pipeline([op], seed=0).sample(12000)[0]
    applies = torch.stack([p[f"{j}.apply"] for j in range(3)])  # (3, n)
    # exactly one child where the container fired (the child's own p does not matter), none elsewhere
    assert torch.equal(applies.sum(0), p["apply"].long())
    assert torch.equal(torch.where(p["apply"], applies.float().argmax(0), -1), p["choice"])
    assert abs(p["apply"].float().mean() - 0.8) < 0.015
    counts = torch.bincount(p["choice"][p["apply"]], minlength=3).numpy()
    assert stats.chisquare(counts, counts.sum() * np.array([1, 2, 3]) / 6).pvalue > 1e-3


def test_one_of_pixels_are_the_chosen_op(photos):
    x = batch(photos, 12)
    kids = [ak.Brightness(factor=(0.5, 0.7)), ak.Invert(), ak.Grayscale()]
    pipe = ak.Pipeline([ak.OneOf(kids)], seed=4)
    y, p = pipe(x, return_params=True)
    assert set(p[0]["choice"].tolist()) == {0, 1, 2}
    for b in range(len(x)):
        j = int(p[0]["choice"][b])
        child = ak.Pipeline([kids[j]])
        q = child.sample(1)
        q.values[0].update({k[2:]: v[b : b + 1] for k, v in p[0].items() if k.startswith(f"{j}.")})
        assert torch.allclose(y[b], child(x[b : b + 1], params=q)[0], atol=1e-6)


def test_some_of_subset_sizes_order_and_uniform_subsets(photos):
    op = ak.SomeOf([ak.Brightness(), ak.Hue(), ak.Gamma(), ak.Invert()], n=(1, 3))
    p = ak.Pipeline([op], seed=1).sample(12000)[0]
    applies = torch.stack([p[f"{j}.apply"] for j in range(4)])
    assert torch.equal(applies.sum(0), p["count"])
    sizes = torch.bincount(p["count"], minlength=4)[1:].numpy()
    assert stats.chisquare(sizes).pvalue > 1e-3  # k uniform on {1, 2, 3}
    two = applies[:, p["count"] == 2].T.tolist()
    subsets = [tuple(s) for s in two]
    counts = np.array([subsets.count(tuple(int(j in c) for j in range(4))) for c in itertools.combinations(range(4), 2)])
    assert counts.sum() == len(subsets) and stats.chisquare(counts).pvalue > 1e-3
    # listed order: Invert then Solarize(0.5) is not Solarize then Invert
    x = batch(photos, 4)
    pipe = ak.Pipeline([ak.SomeOf([ak.Invert(), ak.Solarize(0.5)], n=2)], seed=0)
    ref = ak.Pipeline([ak.Invert(p=1.0), ak.Solarize(0.5)])(x)
    assert torch.allclose(pipe(x), ref)


def test_geometric_children_compose(photos):
    x = batch(photos, 16)
    y, p = ak.Pipeline([ak.OneOf([ak.HorizontalFlip(), ak.VerticalFlip()])], seed=2)(x, return_params=True)
    for b in range(16):
        ref = x[b].flip(-1) if p[0]["choice"][b] == 0 else x[b].flip(-2)
        assert torch.allclose(y[b], ref / 255, atol=1e-6)
    zoom = ak.OneOf([ak.Zoom(scale=(1.5, 1.5)), ak.Brightness(factor=(0.5, 0.5))])
    y, p = ak.Pipeline([zoom], seed=0)(x, return_params=True)
    z = ak.Pipeline([ak.Zoom(scale=(1.5, 1.5))])(x)
    for b in range(16):
        ref = z[b] if p[0]["choice"][b] == 0 else x[b] / 255 * 0.5
        assert torch.allclose(y[b], ref, atol=1e-6)


def test_nested_replay_params_json_select_cat(photos):
    x = batch(photos, 6)
    pipe = ak.Pipeline(
        [ak.HorizontalFlip(), ak.OneOf([ak.Equalize(), ak.SomeOf([ak.Hue(), ak.GaussianBlur(), ak.Erasing()], n=(0, 3))]), ak.Contrast()],
        seed=3,
    )
    y, p = pipe(x, return_params=True)
    assert torch.equal(pipe(x, params=p), y)
    rows = p.tolist()
    json.dumps(rows)
    assert "1.2.area" in rows[0]["1:OneOf"] and "0.apply" in rows[0]["1:OneOf"]
    joined = Params.cat([p.select(slice(0, 2)), p.select(slice(2, 6))])
    assert torch.equal(pipe(x, params=joined), y)
    assert torch.allclose(pipe(x[3:4], params=p.select(3)), y[3:4], atol=1e-6)
    back = ak.Pipeline.from_yaml(pipe.to_yaml())
    assert back.ops == pipe.ops and torch.equal(back(x, params=p), y)


def test_albumentations_parity_and_distribution(photos):
    img = photos["chelsea"][:100, :140]
    pipe = ak.Pipeline([ak.OneOf([ak.Brightness(), ak.HorizontalFlip(), ak.SomeOf([ak.Hue(), ak.Posterize()], n=(1, 2))])], seed=0)
    seen = set()
    for _ in range(12):
        ya, p = pipe(img, return_params=True)
        seen.add(int(p[0]["choice"][0]))
        yt = pipe(chw(img), params=p).permute(1, 2, 0).numpy()
        assert np.abs(yt * 255 - ya).max() <= 1.0 + 1e-3
    assert seen == {0, 1, 2}
    compose = pipe.to_albumentations()
    import albumentations as A

    t = compose.transforms[0]
    assert isinstance(t, A.OneOf) and isinstance(t.transforms[2], A.SomeOf)
    choices = [t.get_params()["choice"] for _ in range(3000)]
    assert stats.chisquare(np.bincount(choices, minlength=3)).pvalue > 1e-3
    assert compose(image=img)["image"].shape == img.shape


BAD = [
    (lambda: ak.OneOf([]), "OneOf.ops must hold at least one op, got an empty list"),
    (lambda: ak.OneOf(ak.Invert()), "OneOf.ops must be a list of augkit ops, got Invert"),
    (lambda: ak.OneOf([ak.Invert(), "Hue"]), "OneOf.ops[1] must be an augkit op"),
    (lambda: ak.OneOf([ak.Normalize()]), "OneOf.ops[0] is Normalize"),
    (lambda: ak.OneOf([ak.Invert(), ak.Hue()], weights=(1,)), "OneOf.weights must be None or 2 numbers"),
    (lambda: ak.OneOf([ak.Invert(), ak.Hue()], weights=(1, -1)), "OneOf.weights[1] must be a number in [0"),
    (lambda: ak.OneOf([ak.Invert(), ak.Hue()], weights=(0, 0)), "OneOf.weights must not all be 0"),
    (lambda: ak.SomeOf([ak.Invert(), ak.Hue()], n=3), "SomeOf.n must be an int or (lo, hi) with 0 <= lo <= hi <= 2 (the number of ops), got 3"),
    (lambda: ak.SomeOf([ak.Invert(), ak.Hue()], n=(2, 1)), "SomeOf.n must be"),
    (lambda: ak.SomeOf([ak.Invert(), ak.Hue()], n=1.5), "SomeOf.n must be"),
    (lambda: ak.SomeOf([], n=0), "SomeOf.ops must hold at least one op"),
]


@pytest.mark.parametrize("make,msg", BAD)
def test_bad_arguments(make, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        make()


def test_unknown_names_in_yaml(tmp_path):
    text = "ops:\n- name: OneOf\n  ops:\n  - name: Brightnes\n    factor: [0.8, 1.2]\n"
    with pytest.raises(ValueError, match=r"pipeline YAML: unknown op 'Brightnes'; expected one of \[.*'Brightness'"):
        ak.Pipeline.from_yaml(text)
    f = tmp_path / "p.yaml"
    f.write_text("ops:\n- name: SomeOf\n  n: [1, 1]\n  ops:\n  - name: Hue\n    shfit: 0.1\n")
    with pytest.raises(ValueError, match=r"p.yaml.*unknown key\(s\) \['shfit'\] for op Hue"):
        ak.Pipeline.from_yaml(f)
