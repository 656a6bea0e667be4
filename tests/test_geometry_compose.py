"""Geometry composition on the device path: hand-written float64 matrices as the reference, closed-form
inverses against NumPy, and the ops a run costs on ``meta`` (no linalg, no float64, constant in B)."""

import math

import numpy as np
import pytest
import torch

import augkit as ak
from augkit import geometry as G
from augkit.bench.opcount import OpCounter, count_pipeline_ops


def _about(h: int, w: int, lin, t=(0.0, 0.0)) -> np.ndarray:
    """3x3 of out = lin (in - c) + c + t, c the centre ((W - 1) / 2, (H - 1) / 2)."""
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    m = np.eye(3)
    m[:2, :2] = lin
    m[:2, 2] = c - np.asarray(lin) @ c + np.asarray(t)
    return m


def _box(top, left, bh, bw, size) -> np.ndarray:
    """A (top, left, h, w) box resized to size (H, W), align_corners=False."""
    sy, sx = size[0] / bh, size[1] / bw
    return np.array([[sx, 0, (0.5 - left) * sx - 0.5], [0, sy, (0.5 - top) * sy - 0.5], [0, 0, 1.0]])


def _rot(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])


def _vals(**kw):
    dt = {"apply": torch.bool, "k": torch.int64}
    return {k: torch.tensor([v], dtype=dt.get(k, torch.float32)) for k, v in kw.items()}


H, W = 90, 140


@pytest.mark.parametrize(("op", "values", "ref", "out_hw"), [
    (ak.HorizontalFlip(), _vals(apply=True), np.array([[-1, 0, W - 1], [0, 1, 0], [0, 0, 1.0]]), (H, W)),
    (ak.VerticalFlip(), _vals(apply=True), np.array([[1, 0, 0], [0, -1, H - 1], [0, 0, 1.0]]), (H, W)),
    (ak.VerticalFlip(), _vals(apply=False), np.eye(3), (H, W)),
    (ak.Zoom(), _vals(apply=True, scale=1.3), _about(H, W, np.eye(2) * 1.3), (H, W)),
    (ak.Translate(), _vals(apply=True, translate=[0.1, -0.2]), _about(H, W, np.eye(2), (0.1 * W, -0.2 * H)), (H, W)),
    (ak.Rotate(), _vals(apply=True, angle=25.0), _about(H, W, _rot(25.0)), (H, W)),
    (ak.Affine(rotate=30, shear=20, scale=(0.5, 2)), _vals(apply=True, scale=1.2, angle=-30.0, shear=15.0, translate=[0.05, 0.1]),
     _about(H, W, 1.2 * _rot(-30.0) @ np.array([[1, -math.tan(math.radians(15.0))], [0, 1]]), (0.05 * W, 0.1 * H)), (H, W)),
    (ak.Affine(scale=(0.5, 2), translate=0.2), _vals(apply=True, scale=0.8, angle=0.0, shear=0.0, translate=[0.2, 0.1]),
     _about(H, W, np.eye(2) * 0.8, (0.2 * W, 0.1 * H)), (H, W)),
    (ak.Rot90(p=1.0), _vals(apply=True, k=1), np.array([[0, 1, 0], [-1, 0, W - 1], [0, 0, 1.0]]), [[W, H]]),
    (ak.Rot90(p=1.0), _vals(apply=True, k=2), np.array([[-1, 0, W - 1], [0, -1, H - 1], [0, 0, 1.0]]), [[H, W]]),
    (ak.Rot90(p=1.0), _vals(apply=True, k=3), np.array([[0, -1, H - 1], [1, 0, 0], [0, 0, 1.0]]), [[W, H]]),
    (ak.Resize((40, 70)), _vals(apply=True), _box(0, 0, H, W, (40, 70)), (40, 70)),
    (ak.CenterCrop((50, 60)), _vals(apply=True), _box(20, 40, 50, 60, (50, 60)), (50, 60)),
    (ak.RandomResizedCrop((32, 48)), {**_vals(apply=True), "box": torch.tensor([[7.0, 11.0, 60.0, 80.0]])}, _box(7, 11, 60, 80, (32, 48)), (32, 48)),
])
def test_each_op_matrix_is_the_hand_written_one(op, values, ref, out_hw):
    if isinstance(out_hw, list):  # a quarter turn of a non-square image: per-sample sizes, one op alone
        m, hw = G.op_matrix(op, values, torch.tensor([[H, W]]))
        assert hw.tolist() == out_hw
    else:
        m, hw = G.run_matrix([op], [values], (H, W))
        assert hw == out_hw
    assert m.dtype == torch.float32
    np.testing.assert_allclose(m[0].double().numpy(), ref, rtol=1e-6, atol=1e-4)


def test_composed_run_and_inverse_equal_numpy_products():
    ops = [ak.HorizontalFlip(), ak.Zoom(), ak.Translate(), ak.Rotate(), ak.VerticalFlip(), ak.Resize((64, 80))]
    vals = [_vals(apply=True), _vals(apply=True, scale=0.9), _vals(apply=True, translate=[0.1, 0.05]), _vals(apply=True, angle=12.0),
            _vals(apply=False), _vals(apply=True)]
    ref = _box(0, 0, H, W, (64, 80)) @ _about(H, W, _rot(12.0)) @ _about(H, W, np.eye(2), (0.1 * W, 0.05 * H)) @ _about(H, W, np.eye(2) * 0.9) \
        @ np.array([[-1, 0, W - 1], [0, 1, 0], [0, 0, 1.0]])
    rm = G.compose(ops, vals, (H, W))
    np.testing.assert_allclose(rm.matrix()[0].double().numpy(), ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(rm.inverse()[0].double().numpy(), np.linalg.inv(ref)[:2], rtol=1e-5, atol=1e-4)
    assert rm.clip is None  # it rotates: no separable crop box


def test_inverse_2x3_is_numpys_inverse():
    g = torch.Generator().manual_seed(0)
    m = torch.eye(3).repeat(50, 1, 1)
    m[:, :2] = torch.randn(50, 2, 3, generator=g, dtype=torch.float64).float() * 3
    ref = np.linalg.inv(m.double().numpy())[:, :2]
    np.testing.assert_allclose(G.inverse_2x3(m).double().numpy(), ref, rtol=1e-4, atol=1e-4)


def test_clip_is_the_crop_box_mapped_back_by_hand():
    ops = [ak.HorizontalFlip(), ak.Zoom(), ak.CenterCrop((40, 50))]
    vals = [_vals(apply=True), _vals(apply=True, scale=2.0), _vals(apply=True)]
    clip = G.run_clip(ops, vals, (H, W))
    # the crop box (25..74 x 20..59 in the zoomed, flipped image) back through zoom 2 and the flip
    pre = _about(H, W, np.eye(2) * 2.0) @ np.array([[-1, 0, W - 1], [0, 1, 0], [0, 0, 1.0]])
    corners = np.linalg.inv(pre) @ np.array([[45, 94], [25, 64], [1, 1.0]])
    x0, x1 = sorted(corners[0])
    y0, y1 = sorted(corners[1])
    np.testing.assert_allclose(clip[0].numpy(), [x0, y0, x1, y1], atol=1e-4)


GEOMETRY_PIPES = {
    "seed": lambda: ak.default_pipeline(),
    "affine": lambda: ak.Pipeline([ak.Affine(rotate=15, translate=0.1), ak.Contrast()], seed=0),
    "rrc": lambda: ak.Pipeline([ak.RandomResizedCrop(224), ak.HorizontalFlip(), ak.Contrast(), ak.GaussianNoise()], seed=0),
    "crops": lambda: ak.Pipeline([ak.Rot90(), ak.HorizontalFlip(), ak.Translate(0.1), ak.RandomCrop(200, pad=8)], seed=0),
}
LIMITS = {"seed": 60, "affine": 45}  # non-view ops per call on ``meta`` (docs/gpu.md)


@pytest.mark.parametrize("name", sorted(GEOMETRY_PIPES))
def test_geometry_ops_per_call_are_few_and_constant_in_batch(name):
    pipe = GEOMETRY_PIPES[name]()
    a, b = (count_pipeline_ops(pipe, (n, 3, 224, 224)) for n in (16, 96))
    assert a.by_name == b.by_name
    assert not {"linalg_inv_ex", "eye", "repeat"} & set(a.by_name), a.by_name
    assert a.ops <= LIMITS.get(name, 10**9), a.by_name


def test_compose_stays_float32_without_linalg_on_the_device():
    pipe = ak.Pipeline([ak.Zoom(), ak.Affine(rotate=10, shear=5, translate=0.1), ak.HorizontalFlip(), ak.RandomResizedCrop(64, antialias=False)], seed=0)
    p = pipe.fill_sized(pipe.sample(8), (100, 120)).to("meta")
    seen: list[torch.dtype] = []

    class Dtypes(OpCounter):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = super().__torch_dispatch__(func, types, args, kwargs)
            seen.extend(t.dtype for t in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(t, torch.Tensor))
            return out

    with Dtypes() as c:
        rm = G.compose(pipe.ops, list(p.values), (100, 120))
        rm.inverse()
    assert torch.float64 not in seen and not any("linalg" in k for k in c.count.by_name), c.count.by_name
    assert rm.lin is not None and rm.out_hw == (64, 64)


def test_flip_and_zoom_runs_take_the_fast_path_with_the_general_loops_bits(monkeypatch):
    """``compose``'s fast path for runs of flips and Zooms (the seed pipeline's) equals the
    general loop bit for bit, for every order of up to three such ops."""
    import itertools

    choices = [ak.HorizontalFlip(), ak.VerticalFlip(), ak.Zoom(scale=(0.5, 1.5), p=0.7)]
    for r in (1, 2, 3):
        for ops in itertools.product(choices, repeat=r):
            p = ak.Pipeline(list(ops), seed=r).sample(40)
            vals = [p[i] for i in range(r)]
            fast = G.compose(ops, vals, (20, 30))
            with monkeypatch.context() as m:
                m.setattr(G, "_CENTRE_FIXING", ())  # the general loop
                slow = G.compose(ops, vals, (20, 30))
            assert fast.lin is None and fast.shift is None and fast.clip is None and fast.out_hw == slow.out_hw == (20, 30)
            assert slow.lin is None and slow.shift is None and torch.equal(fast.scale, slow.scale), ops
            assert torch.equal(fast.applies, slow.applies) and torch.equal(fast.matrix(), slow.matrix())
