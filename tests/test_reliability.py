"""Regression tests for the reliability defects of issue 10 (one or more per item, named by it).

Expansion-specific items (5, 10-14, 17, 19, 20, 25) live in tests/test_expand.py. What each
test guarantees is listed in docs/reliability.md.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import augkit as ak

# item 1: a tensor handed to a caller is never written again ----------------------------------------
X8 = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
PIPE1 = ak.Pipeline([ak.HorizontalFlip(p=0.5), ak.Contrast(factor=(0.5, 1.5)), ak.GaussianNoise(std=(0.0, 0.1))], seed=0)


class _Images(Dataset):
    def __init__(self, augment: bool) -> None:
        self.augment = augment

    def __len__(self) -> int:
        return 64 if not self.augment else 8

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.augment:  # a whole batch per index (batch_size=None): the worker sends pipe's own output
            return PIPE1(X8.roll(i, 0))
        return X8[i % 8]


def _augment_batch(items: list[torch.Tensor]) -> torch.Tensor:
    return PIPE1(torch.stack(items))


@pytest.mark.parametrize("where", ["collate_fn", "__getitem__"])
def test_item1_batches_held_from_workers_never_change(where: str) -> None:
    """pipe(x) inside a DataLoader worker: 8 held batches keep the values they arrived with."""
    if where == "collate_fn":
        dl = DataLoader(_Images(False), batch_size=8, num_workers=1, collate_fn=_augment_batch)
    else:
        dl = DataLoader(_Images(True), batch_size=None, num_workers=1)
    held, at_arrival = [], []
    for y in dl:
        held.append(y)
        at_arrival.append(y.clone())
    assert len(held) == 8
    changed = [i for i, (a, b) in enumerate(zip(held, at_arrival)) if not torch.equal(a, b)]
    assert changed == [], f"batches {changed} were overwritten after delivery"


def _keep(y: torch.Tensor, hold: str) -> object:
    if hold == "storage":
        return y.untyped_storage()
    if hold == "view":
        return y[2:5]
    if hold == "numpy":
        return y.numpy()
    if hold == "dlpack":
        return np.from_dlpack(y)
    y.share_memory_()  # "shared": another process may map it; nothing is kept here
    return None


@pytest.mark.parametrize("hold", ["storage", "view", "numpy", "dlpack", "shared"])
def test_item1_output_kept_any_way_is_not_reused(hold: str) -> None:
    pipe = ak.Pipeline([ak.Contrast(factor=(0.5, 1.5))], seed=0)
    y = pipe(X8)
    ref = y.clone()
    kept = _keep(y, hold)
    ptr = y.data_ptr()
    del y
    for _ in range(4):
        out = pipe(X8)
        assert out.data_ptr() != ptr
        del out
    if hold == "storage":
        after = torch.empty(0).set_(kept, 0, ref.shape)
        assert torch.equal(after, ref)
    elif hold == "view":
        assert torch.equal(kept, ref[2:5])
    elif hold in ("numpy", "dlpack"):
        np.testing.assert_array_equal(kept, ref.numpy())


def test_item1_dropped_outputs_are_reused() -> None:
    """The saving is kept: with no holder, two buffers take turns (no fresh page faults)."""
    pipe = ak.Pipeline([ak.Contrast(factor=(0.5, 1.5))], seed=0)
    ptrs = set()
    for _ in range(6):
        y = pipe(X8)
        ptrs.add(y.data_ptr())
    assert len(ptrs) == 2


# item 6: PIL modes are read as their colours ----------------------------------------------------------
def _flip_pipe() -> ak.Pipeline:
    return ak.Pipeline([ak.HorizontalFlip(p=1.0)], seed=0)


@pytest.mark.parametrize("mode", ["P", "YCbCr", "HSV", "CMYK"])
def test_item6_pil_modes_augment_colours_not_raw_channels(mode: str, photos: dict) -> None:
    from PIL import Image

    rgb = Image.fromarray(photos["chelsea"][:48, :64])
    img = rgb.convert(mode) if mode != "P" else rgb.quantize(64)
    want = np.asarray(img.convert("RGB"))[:, ::-1]  # PIL's own conversion, then the flip
    np.testing.assert_array_equal(_flip_pipe()(img), want)


def test_item6_one_conversion_for_pipeline_and_data_module(photos: dict) -> None:
    from PIL import Image

    from augkit.data.datasets import to_hwc_uint8

    img = Image.fromarray(photos["coffee"][:32, :40]).quantize(16)
    np.testing.assert_array_equal(ak.Pipeline([], seed=0)(img), to_hwc_uint8(img))


# item 7: channels-last tensors are refused --------------------------------------------------------
@pytest.mark.parametrize("shape", [(32, 40, 3), (2, 32, 40, 3), (32, 40, 1), (2, 32, 40, 4)])
def test_item7_channels_last_tensor_is_refused(shape: tuple[int, ...]) -> None:
    x = torch.zeros(shape, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"channels-last.*permute"):
        _flip_pipe()(x)


def test_item7_channels_first_tensors_still_pass() -> None:
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.uint8).reshape(2, 3, 4, 5)
    torch.testing.assert_close(_flip_pipe()(x), x.flip(-1).float() / 255)


# item 8: numpy ops keep the input's layout --------------------------------------------------------
OPS_ONE_EACH = [
    ak.HorizontalFlip(p=1.0),
    ak.VerticalFlip(p=1.0),
    ak.Zoom(scale=(1.2, 1.2)),
    ak.Contrast(factor=(0.5, 0.5)),
    ak.GaussianNoise(std=(0.1, 0.1)),
    ak.Normalize(mean=(0.5,), std=(0.25,)),
]


@pytest.mark.parametrize("op", OPS_ONE_EACH, ids=lambda op: type(op).__name__)
@pytest.mark.parametrize("shape", [(24, 20, 1), (24, 20)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_item8_numpy_ops_keep_the_layout(op: ak.Op, shape: tuple[int, ...], dtype: type) -> None:
    img = np.random.default_rng(0).integers(0, 256, shape).astype(dtype)
    if dtype == np.float32:
        img /= 255
    assert ak.Pipeline([op], seed=0)(img).shape == shape


def test_item8_contrast_on_one_channel_matches_the_formula() -> None:
    img = np.arange(24 * 20, dtype=np.uint8).reshape(24, 20, 1)
    out = ak.Pipeline([ak.Contrast(factor=(0.5, 0.5))], seed=0)(img)
    m = img.mean()
    want = np.clip(np.rint(img * 0.5 + m * 0.5), 0, 255)
    np.testing.assert_allclose(out, want, atol=1)


# item 15: per-size caches are bounded by bytes ------------------------------------------------------
def test_item15_numpy_noise_table_is_bounded_by_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from augkit.backends import albu

    assert albu.COUNTER_CACHE_BYTES <= 64 << 20
    monkeypatch.setattr(albu._COUNTERS, "max_bytes", 1 << 20)  # the same code path at a tenth of the size
    albu._COUNTERS.clear()
    for n in range(1, 13):  # 12 distinct sizes of ~100 k values: 4.8 MiB of tables unbounded
        albu.normal_field_np(1, 0.1, 200_000 + 2 * n)
    held = sum(v.nbytes for v in albu._COUNTERS.values())
    assert 0 < held <= 1 << 20
    albu._COUNTERS.clear()


def test_item15_tensor_noise_counters_are_bounded_by_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from augkit import functional as F

    assert F.COUNTER_CACHE_BYTES <= 64 << 20
    monkeypatch.setattr(F._hashed_counter.cache, "max_bytes", 1 << 20)
    F._hashed_counter.cache_clear()
    std = torch.tensor([0.1])
    for n in range(1, 13):  # 12 sizes of ~100 k int32: 4.8 MiB unbounded
        F.normal_field(torch.tensor([n]), std, torch.empty(1, 200_000 + 2 * n))
    held = sum(v.numel() * v.element_size() for v in F._hashed_counter.cache.values())
    assert 0 < held <= 1 << 20
    F._hashed_counter.cache_clear()


def test_item15_cache_bound_keeps_values_exact() -> None:
    from augkit.backends import albu

    a = albu.normal_field_np(7, 0.2, 3001)
    albu._COUNTERS.clear()
    np.testing.assert_array_equal(a, albu.normal_field_np(7, 0.2, 3001))


# item 16: alias-heavy YAML is refused fast; messages are short --------------------------------------
BOMB = """
a: &a [x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
ops: [*h]
"""


def test_item16_alias_bomb_is_refused() -> None:
    with pytest.raises(ValueError, match="aliases") as e:
        ak.Pipeline.from_yaml(BOMB)
    assert len(str(e.value)) < 300


def test_item16_a_few_aliases_are_fine_and_messages_are_truncated() -> None:
    text = "s: &s [0.9, 1.1]\nops:\n  - {name: Zoom, scale: *s}\n  - {name: Contrast, factor: *s}\n"
    with pytest.raises(ValueError, match="unknown top-level key") as e:
        ak.Pipeline.from_yaml(text)
    big = {"ops": "x" * 100_000}
    with pytest.raises(ValueError) as e:
        ak.Pipeline.from_dict(big)
    assert len(str(e.value)) < 400
    ok = ak.Pipeline.from_yaml("ops:\n  - {name: Zoom, scale: &s [0.9, 1.1]}\n  - {name: Contrast, factor: *s}\n")
    assert ok.ops[0].scale == ok.ops[1].factor == (0.9, 1.1)


# item 18: pickling carries no buffers ------------------------------------------------------------
def test_item18_pickle_and_deepcopy_carry_no_buffers() -> None:
    pipe = ak.default_pipeline(0)
    fresh = len(pickle.dumps(pipe))
    x = torch.randint(0, 256, (8, 3, 224, 224), dtype=torch.uint8)
    pipe(x)
    assert len(pickle.dumps(pipe)) < fresh + 16_000  # generator state only; was 66 MB after one 224x224 batch
    twin = copy.deepcopy(pipe)
    p = pipe.sample(8)
    torch.testing.assert_close(twin(x, params=p), pipe(x, params=p), rtol=0, atol=0)
    back = pickle.loads(pickle.dumps(pipe))
    torch.testing.assert_close(back(x, params=p), pipe(x, params=p), rtol=0, atol=0)


def test_pickle_keeps_containers_and_the_fused_mode() -> None:
    """A pipeline with OneOf / RandAugment unpickles (spawned DataLoader workers, deepcopy) and keeps ``fused``."""
    pipe = ak.Pipeline([ak.OneOf([ak.Zoom(), ak.Rotate(20)]), ak.RandAugment(), ak.Contrast()], seed=0, fused="never")
    x = torch.randint(0, 256, (6, 3, 24, 24), dtype=torch.uint8)
    p = pipe.sample(6)
    for twin in (pickle.loads(pickle.dumps(pipe)), copy.deepcopy(pipe)):
        assert twin._tensor.fused == "never"
        torch.testing.assert_close(twin(x, params=p), pipe(x, params=p), rtol=0, atol=0)


# item 21: from_yaml text vs file ---------------------------------------------------------------------
def test_item21_long_one_line_json_is_text_not_a_file_name() -> None:
    ops = ", ".join('{"name": "Zoom", "scale": [0.9, 1.1]}' for _ in range(8))
    text = '{"seed": 3, "ops": [' + ops + "]}"
    assert len(text) > 255 and "\n" not in text
    pipe = ak.Pipeline.from_yaml(text)
    assert pipe.seed == 3 and len(pipe.ops) == 8


def test_item21_mistyped_file_name_says_not_found(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="pipline.yaml"):
        ak.Pipeline.from_yaml(str(tmp_path / "pipline.yaml"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ak.Pipeline.from_yaml(tmp_path / "missing.yaml")


def test_item21_unknown_top_level_key_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown top-level key.*'sed'"):
        ak.Pipeline.from_yaml("sed: 5\nops:\n  - {name: HorizontalFlip}\n")
    with pytest.raises(ValueError, match=r"'sed'"):
        ak.Pipeline.from_dict({"sed": 5, "ops": []})


# item 22: clear errors at the door ---------------------------------------------------------------
def test_item22_requires_grad_input_is_refused_clearly() -> None:
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    with pytest.raises(ValueError, match=r"not differentiable.*detach"):
        ak.default_pipeline(0)(x)
    assert ak.default_pipeline(0)(x.detach()).shape == x.shape


@pytest.mark.parametrize("seed", [2**64, 2**63, -1])
def test_item22_out_of_range_seed_fails_at_construction(seed: int) -> None:
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*63\)"):
        ak.Pipeline([ak.HorizontalFlip()], seed=seed)


def test_item22_largest_seed_works_on_both_backends() -> None:
    pipe = ak.Pipeline([ak.HorizontalFlip(), ak.GaussianNoise()], seed=2**63 - 1)
    pipe(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    pipe(np.zeros((8, 8, 3), dtype=np.uint8))


@pytest.mark.parametrize("ops", [ak.Zoom(), "Zoom", {"name": "Zoom"}, 3])
def test_item22_ops_must_be_a_list(ops: object) -> None:
    with pytest.raises(TypeError, match="ops must be a list of augkit ops") as e:
        ak.Pipeline(ops)  # type: ignore[arg-type]
    if isinstance(ops, ak.Op):
        assert "Pipeline([Zoom(...)])" in str(e.value)


# item 23: loader errors name what is wrong --------------------------------------------------------
class _RGBA(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        c = 4 if i == 2 else 3
        return np.full((100, 100, c), 128, np.uint8), i


def test_item23_worker_image_error_names_the_dataset_index() -> None:
    pipe = ak.Pipeline([ak.Contrast()], seed=0)
    ld = ak.loader(_RGBA(), pipe, batch_size=2, device="cpu", num_workers=1, shuffle=False, backend="albumentations")
    with pytest.raises(ValueError, match=r"dataset\[2\].*4 channels"):
        list(ld)


def test_item23_normalize_channel_mismatch_is_clear_on_the_albumentations_path() -> None:
    class Grey(_RGBA):
        def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
            return np.full((100, 100), 128, np.uint8), i

    pipe = ak.Pipeline([ak.Normalize(mean=(0.5, 0.5), std=(0.2, 0.2))], seed=0)
    ld = ak.loader(Grey(), pipe, batch_size=2, device="cpu", num_workers=0, shuffle=False, backend="albumentations")
    with pytest.raises(ValueError, match=r"Normalize has 2 channel.*dataset\[0\]"):
        list(ld)
    from augkit.data.datasets import to_float

    with pytest.raises(ValueError, match="Normalize has 2 channel"):
        to_float(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), ak.Normalize(mean=(0.5, 0.5), std=(0.2, 0.2)))


def test_item23_iterable_dataset_gets_a_clear_error() -> None:
    from torch.utils.data import IterableDataset

    class Stream(IterableDataset):
        def __iter__(self):  # noqa: ANN204
            yield np.zeros((8, 8, 3), np.uint8)

    with pytest.raises(TypeError, match=r"map-style dataset.*DeviceLoader"):
        ak.loader(Stream(), ak.default_pipeline(0), num_workers=0)


# item 25: negative indices are the same item -----------------------------------------------------
def test_item25_negative_index_is_the_same_item_and_augmentation() -> None:
    imgs = [np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8) for i in range(5)]
    ds = ak.AugmentedDataset(imgs, ak.default_pipeline(0))
    torch.testing.assert_close(ds[-1], ds[4], rtol=0, atol=0)
    torch.testing.assert_close(ds[-5], ds[0], rtol=0, atol=0)
    with pytest.raises(IndexError, match="out of range"):
        ds[5]
    with pytest.raises(IndexError, match="out of range"):
        ds[-6]


# item 9 (and the range part of item 22): values must be finite in float32, ranges are numbers
@pytest.mark.parametrize("make,match", [
    (lambda: ak.Contrast(factor=(1e39, 1e39)), r"Contrast.factor must be \(lo, hi\) with 0 <= lo <= hi <= 1e\+06"),
    (lambda: ak.Zoom(scale=(1e-40, 1.0)), r"Zoom.scale must be \(lo, hi\) with 0.001 <= lo <= hi <= 1000, got \(1e-40, 1.0\)"),
    (lambda: ak.Normalize(std=(1e-46,), mean=(0.5,)), r"Normalize.std must be > 0 \(at least 1e-30\) and finite"),
    (lambda: ak.Normalize(mean=(float("nan"),), std=(0.5,)), r"Normalize.mean must be finite for every channel"),
    (lambda: ak.Normalize(mean=(1e39,), std=(0.5,)), r"Normalize.mean must be finite"),
    (lambda: ak.GaussianNoise(std=(0.0, float("inf"))), r"GaussianNoise.std must be"),
    (lambda: ak.Zoom(scale="12"), r"Zoom.scale must be \(lo, hi\) .*got '12'"),
    (lambda: ak.Contrast(factor=b"12"), r"Contrast.factor must be"),
    (lambda: ak.Zoom(scale=(0.8, "1.2")), r"Zoom.scale must be"),
    (lambda: ak.Normalize(mean="0.5", std="0.5"), r"Normalize.mean and .std must be sequences of numbers"),
])
def test_item9_values_not_finite_in_float32_and_strings_are_rejected(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_item9_largest_accepted_values_give_finite_outputs():
    x = torch.rand(2, 3, 16, 16)
    pipe = ak.Pipeline([ak.Zoom(scale=(1e-3, 1e3)), ak.Contrast(factor=(0.0, 1e6)), ak.Normalize(mean=(0.5,) * 3, std=(1e-30,) * 3)], seed=0)
    assert torch.isfinite(pipe(x)).all()
