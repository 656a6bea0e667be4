"""Op specs: argument checks, serialization, and the distributions they sample."""

import re
import subprocess
import sys

import pytest
import torch
from scipy import stats

import augkit as ak
from augkit.ops import OPS, op_from_dict
from augkit.random import Draw


def keyed(n: int, seed: int) -> Draw:
    """A Draw over n consecutive keys: the statistics below must hold for any keys."""
    return Draw(torch.arange(n, dtype=torch.int64) + seed * 10**9)


# one row per op: (constructor, keys its sample() returns besides "apply")
OP_TABLE = [
    (lambda: ak.HorizontalFlip(p=0.3), set()),
    (lambda: ak.VerticalFlip(p=0.7), set()),
    (lambda: ak.Zoom(scale=(0.8, 1.2), p=0.9), {"scale"}),
    (lambda: ak.Contrast(factor=(0.5, 1.5), p=0.6), {"factor"}),
    (lambda: ak.GaussianNoise(std=(0.01, 0.1), p=0.4), {"std", "seed"}),
    (lambda: ak.Normalize(mean=(0.5,) * 3, std=(0.25,) * 3), set()),
]


@pytest.mark.parametrize("make,keys", OP_TABLE)
def test_sample_shapes_and_apply_rate(make, keys):
    op = make()
    n = 20_000
    p = op.sample(n, keyed(n, 1))
    assert set(p) == {"apply"} | keys
    for t in p.values():
        assert t.shape == (n,)
    assert p["apply"].dtype == torch.bool
    # observed rate within 4 standard errors of p
    se = (op.p * (1 - op.p) / n) ** 0.5
    assert abs(p["apply"].float().mean().item() - op.p) <= 4 * se + 1e-9


@pytest.mark.parametrize("make,key,lo,hi", [
    (lambda: ak.Zoom(scale=(0.7, 1.3)), "scale", 0.7, 1.3),
    (lambda: ak.Contrast(factor=(0.8, 1.2)), "factor", 0.8, 1.2),
    (lambda: ak.GaussianNoise(std=(0.0, 0.05)), "std", 0.0, 0.05),
])
def test_values_are_uniform_on_range(make, key, lo, hi):
    v = make().sample(10_000, keyed(10_000, 2))[key].double()
    assert lo <= v.min() and v.max() <= hi
    assert stats.kstest(v.numpy(), stats.uniform(loc=lo, scale=hi - lo).cdf).pvalue > 0.01


def test_noise_seeds_are_distinct_ints():
    s = ak.GaussianNoise().sample(1000, keyed(1000, 0))["seed"]
    assert s.dtype == torch.int64 and len(set(s.tolist())) == 1000
    assert 0 <= s.min() and s.max() < 2**31


@pytest.mark.parametrize("make,match", [
    (lambda: ak.HorizontalFlip(p=1.5), r"HorizontalFlip.p must be a number in \[0, 1\], got 1.5"),
    (lambda: ak.VerticalFlip(p=-0.1), r"VerticalFlip.p must be a number in \[0, 1\], got -0.1"),
    (lambda: ak.Zoom(scale=(0.0, 1.2)), r"Zoom.scale must be \(lo, hi\) with 0.001 <= lo <= hi <= 1000, got \(0.0, 1.2\)"),
    (lambda: ak.Zoom(scale=(-1, 1.2)), r"Zoom.scale must be"),
    (lambda: ak.Zoom(scale=(1.2, 0.8)), r"Zoom.scale must be \(lo, hi\) with 0.001 <= lo <= hi <= 1000, got \(1.2, 0.8\)"),
    (lambda: ak.Zoom(scale=1.2), r"Zoom.scale must be \(lo, hi\)"),
    (lambda: ak.Zoom(fill=2.0), r"Zoom.fill must be a number in \[0, 1\]"),
    (lambda: ak.Contrast(factor=(1.2, 0.8)), r"Contrast.factor must be \(lo, hi\)"),
    (lambda: ak.Contrast(factor=(-0.5, 1.0)), r"Contrast.factor must be \(lo, hi\)"),
    (lambda: ak.GaussianNoise(std=(-0.1, 0.1)), r"GaussianNoise.std must be \(lo, hi\) with 0 <= lo <= hi <= 1000, or one number x meaning \(0, x\), got \(-0.1, 0.1\)"),
    (lambda: ak.Normalize(mean=(0.5,), std=(0.0,)), r"Normalize.std must be > 0"),
    (lambda: ak.Normalize(mean=(0.5, 0.5), std=(0.2,)), r"same non-zero length"),
    (lambda: ak.Normalize(p=0.5), r"Normalize.p must be 1.0"),
])
def test_bad_arguments_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make,keys", OP_TABLE)
def test_to_dict_round_trip(make, keys):
    op = make()
    assert op_from_dict(op.to_dict()) == op


def test_from_dict_rejects_unknown_op_and_keys():
    with pytest.raises(ValueError, match=r"unknown op 'Twirl'; expected one of"):
        op_from_dict({"name": "Twirl", "degrees": 10})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['angle'\] for op Zoom"):
        op_from_dict({"name": "Zoom", "angle": 3})
    geometric = {"Affine", "Rotate", "Translate", "Rot90", "RandomResizedCrop", "Resize", "CenterCrop", "RandomCrop"}
    assert {"HorizontalFlip", "VerticalFlip", "Zoom", "Contrast", "GaussianNoise", "Normalize"} | geometric <= set(OPS)


def test_ops_module_imports_without_kornia_or_albumentations():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('kornia', 'albumentations', 'cv2'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import augkit.ops, augkit.functional, augkit.params\n"
        "assert not any(m.split('.')[0] in ('kornia', 'albumentations') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_positional_arguments_are_the_op_values():
    assert ak.Zoom((0.7, 1.1)).scale == (0.7, 1.1) and ak.Zoom((0.7, 1.1)).p == 1.0
    assert ak.Contrast((0.5, 1.5)).factor == (0.5, 1.5)
    assert ak.GaussianNoise((0.0, 0.1)).std == (0.0, 0.1)
    assert ak.HorizontalFlip(0.3).p == 0.3  # as torchvision's RandomHorizontalFlip(p)
    with pytest.raises(TypeError):
        ak.Zoom((0.7, 1.1), 0.5)  # p and fill are keyword-only


def _scalar_table() -> list[tuple[str, str, str, str]]:
    """(argument, meaning, example, builds) rows of docs/ops.md's "One number for a range" table."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "ops.md").read_text()
    section = text.split("### One number for a range", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([\w.]+)` \| ([^|]+) \| `([^`]+)` \| `([^`]+)` \|$", section, flags=re.M)
    return [(arg, meaning.strip(), example, builds) for arg, meaning, example, builds in rows]


_SCALAR_ROWS = _scalar_table()


def test_scalar_table_is_there():
    assert len(_SCALAR_ROWS) >= 19  # the parser found the table (a renamed heading must not empty it)


@pytest.mark.parametrize(("arg", "meaning", "example", "builds"), _SCALAR_ROWS, ids=[r[0] for r in _SCALAR_ROWS])
def test_documented_scalar_range(arg, meaning, example, builds):
    import ast

    cls_name, field = arg.split(".")
    op = eval(example, {name: getattr(ak, name) for name in dir(ak) if not name.startswith("_")})  # noqa: S307 (our docs)
    assert type(op).__name__ == cls_name
    want = ast.literal_eval(builds)
    assert getattr(op, field) == pytest.approx(want)
    # the meaning column, applied by hand to the example's number, gives the same range
    x = float(re.search(r"[=(]([\d.]+)\)$", example).group(1))  # the example's one number, e.g. 15 in Rotate(15)
    by_hand = {
        "(-x, x)": (-x, x), "(-x, x), 0 <= x <= 0.5": (-x, x), "(max(0, 1 - x), 1 + x)": (max(0.0, 1 - x), 1 + x),
        "(0, x)": (0.0, x), "(x, x)": (x, x),
    }[meaning]  # fmt: skip
    assert by_hand == pytest.approx(want)


def test_no_undocumented_argument_takes_one_number():
    """Every (lo, hi) field that accepts one number is in the table; the rest reject it with a clear error."""
    import dataclasses

    documented = {row[0] for row in _SCALAR_ROWS}
    checked = []
    for name, cls in OPS.items():
        if issubclass(cls, ak.ops.compose.Container):
            continue  # SomeOf.n is in the table; OneOf has no range
        for f in dataclasses.fields(cls):
            default = f.default
            is_range = (isinstance(default, tuple) and len(default) == 2) or "tuple[float, float]" in str(f.type)
            if f.name == "size" or name == "Normalize" or not is_range:
                continue  # output sizes take one int s = (s, s); Normalize's mean/std are per channel, not ranges
            accepted = []
            for x in (0.1, 1, 4):
                try:
                    cls(**{f.name: x})
                    accepted.append(x)
                except ValueError as e:
                    assert f"{name}.{f.name}" in str(e)  # the error names the argument
            key = f"{name}.{f.name}"
            assert bool(accepted) == (key in documented), key
            checked.append(key)
    assert {"ColorJitter.hue", "Zoom.scale", "Gamma.gamma", "Erasing.ratio"} <= set(checked)
