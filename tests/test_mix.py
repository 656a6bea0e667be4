"""MixUp / CutMix: Beta draws, soft labels sum to 1 and equal the pixel mixing ratio, boxes, loader."""

import re

import numpy as np
import pytest
import torch
from scipy import stats

import augkit as ak
from augkit.mix import _log_gamma_variate, cutmix_boxes, sample_beta
from augkit.random import Draw


@pytest.mark.parametrize("a", [0.05, 0.2, 1.0, 3.0])
def test_beta_draws_match_scipy(a):
    rng = Draw(torch.arange(20000, dtype=torch.int64), seed=1)
    lam = sample_beta(a, a, rng).double().numpy()
    assert np.isfinite(lam).all() and (lam >= 0).all() and (lam <= 1).all()
    # in float64 log space (float32 rounds a fifth of Beta(0.05, 0.05) draws to exactly 1)
    logit = (_log_gamma_variate(a, rng.child(0)) - _log_gamma_variate(a, rng.child(1))).double().numpy()
    beta = stats.beta(a, a)  # symmetric: P(logit <= t) = 1 - F(sigmoid(-t)), precise for t > 0 too
    cdf = lambda t: np.where(t < 0, beta.cdf(1 / (1 + np.exp(-t))), 1 - beta.cdf(1 / (1 + np.exp(t))))  # noqa: E731
    assert stats.kstest(logit, cdf).pvalue > 1e-3
    if a >= 1.0:  # smaller alphas put percents of the mass within float32 rounding of 1
        assert stats.kstest(lam, stats.beta(a, a).cdf).pvalue > 1e-3


def test_mixup_labels_equal_pixel_ratio():
    k, n = 5, 64
    # image b is the constant b / n: the mixed value tells the mixing ratio exactly
    x = (torch.arange(n, dtype=torch.float32) / n).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    labels = torch.arange(n) % k
    mix = ak.MixUp(alpha=0.4, num_classes=k, seed=0)
    y, soft, p = mix(x, labels, return_params=True)
    assert soft.shape == (n, k) and torch.allclose(soft.sum(1), torch.ones(n))
    idx, lam = p["index"], p["lam"]
    assert sorted(idx.tolist()) == list(range(n))  # a permutation
    assert torch.allclose(y[:, 0, 0, 0], lam * x[:, 0, 0, 0] + (1 - lam) * x[idx, 0, 0, 0], atol=1e-6)
    for b in range(n):  # the label weights are the pixel weights
        ref = torch.zeros(k)
        ref[labels[b]] += lam[b]
        ref[labels[idx[b]]] += 1 - lam[b]
        assert torch.allclose(soft[b], ref, atol=1e-6)
    assert len(set(lam.tolist())) == n  # per-sample lambda
    y2, soft2 = mix(x, labels, params=p)
    assert torch.equal(y2, y) and torch.equal(soft2, soft)


def test_cutmix_box_area_is_the_label_weight():
    k, n, h, w = 4, 200, 24, 40
    x = torch.zeros(n, 1, h, w)
    x_id = (torch.arange(n, dtype=torch.float32) + 1).view(n, 1, 1, 1).expand(n, 1, h, w).contiguous()
    labels = torch.arange(n) % k
    mix = ak.CutMix(alpha=1.0, num_classes=k, seed=3)
    y, soft, p = mix(x_id, labels, return_params=True)
    own = (y == x_id).float().mean((1, 2, 3))  # share of each image that is still its own
    assert torch.allclose(soft.sum(1), torch.ones(n))
    for b in range(n):
        if labels[b] != labels[p["index"][b]]:
            assert soft[b, labels[b]] == pytest.approx(float(own[b]), abs=1e-6)
    # the pasted pixels are the partner's, and the box is torchvision's
    boxes = cutmix_boxes(p["lam"], p["center"], h, w)
    x1, y1, x2, y2 = boxes[0].tolist()
    assert torch.all(y[0, :, y1:y2, x1:x2] == x_id[p["index"][0], :, y1:y2, x1:x2])
    rx, ry = int(p["center"][0, 0] * w), int(p["center"][0, 1] * h)
    r = 0.5 * float(np.sqrt(1 - float(p["lam"][0])))
    assert (x1, y1, x2, y2) == (max(rx - int(r * w), 0), max(ry - int(r * h), 0), min(rx + int(r * w), w), min(ry + int(r * h), h))
    # lam is corrected by clipping: the mean own share is above the mean drawn lam
    assert float(own.mean()) > float(p["lam"].mean())
    assert x.shape == y.shape


def test_p_and_soft_label_input():
    mix = ak.MixUp(alpha=1.0, num_classes=3, p=0.0, seed=0)
    x = torch.rand(8, 3, 4, 4)
    y, soft = mix(x, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    assert torch.equal(y, x) and torch.equal(soft.argmax(1), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    y, soft2 = ak.CutMix(num_classes=3, seed=0)(x, soft)  # chained: soft labels in
    assert torch.allclose(soft2.sum(1), torch.ones(8))


BAD = [
    (lambda: ak.MixUp(alpha=0, num_classes=3), "MixUp.alpha must be a number in [0.001, 1000], got 0"),
    (lambda: ak.CutMix(num_classes=0), "CutMix.num_classes must be an int >= 1, got 0"),
    (lambda: ak.MixUp(num_classes=3)(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1])), "MixUp: x must be a (B, C, H, W) float tensor"),
    (lambda: ak.MixUp(num_classes=3)(torch.zeros(2, 3, 4, 4), torch.tensor([0, 3])), "MixUp: labels must be ints in [0, 3), got min 0 max 3"),
    (lambda: ak.MixUp(num_classes=3)(torch.zeros(2, 3, 4, 4), torch.tensor([0])), "MixUp: labels must be a tensor with the batch size 2"),
    (lambda: ak.CutMix(num_classes=3)(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4)), "CutMix: labels must be (B,) ints or (B, 3) soft labels"),
]


@pytest.mark.parametrize("make,msg", BAD)
def test_bad_input(make, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        make()


class _Labelled(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 24

    def __getitem__(self, i: int):
        return np.full((8, 8, 3), i * 10, np.uint8), i % 4


def test_loader_mix_after_augmentation():
    pipe = ak.Pipeline([ak.Brightness((0.9, 1.1))], seed=0)
    mix = ak.MixUp(alpha=0.5, num_classes=4, seed=1)
    run = [[(x.clone(), y.clone()) for x, y in ak.loader(_Labelled(), pipe, batch_size=8, num_workers=0, mix=mix, device="cpu")]
           for _ in range(2)]
    for x, y in run[0]:
        assert x.shape == (8, 3, 8, 8) and y.shape == (8, 4) and torch.allclose(y.sum(1), torch.ones(8))
        assert (y.max(1).values < 1).any()  # mixed
    # a new loader with the same seeds replays epoch 0
    again = [(x, y) for x, y in ak.loader(_Labelled(), pipe, batch_size=8, num_workers=0, mix=mix, device="cpu")]
    assert all(torch.equal(a[1], b[1]) and torch.equal(a[0], b[0]) for a, b in zip(run[0], again, strict=True))
    with pytest.raises(TypeError, match="mix must be an ak.MixUp or ak.CutMix"):
        ak.loader(_Labelled(), pipe, mix="mixup", device="cpu")
