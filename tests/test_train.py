"""augkit.train: regularizers, trainer, learning curve and the study (tiny models, few epochs)."""

import numpy as np
import pytest
import torch
from torch import nn

import augkit as ak
from augkit import train as T
from augkit.cli import main
from augkit.train import study as S

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(scope="module")
def digits():
    return S.split_digits(S.load_digits())


def _small(data, n):
    return data[0][:n], data[1][:n]


# Penalty ----------------------------------------------------------------------------------
def test_penalty_value_and_gradient_skip_biases_and_norm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.LayerNorm(12), nn.Linear(12, 2))
    for p in model.parameters():  # norm params away from 0/1 so a penalty on them would show
        nn.init.uniform_(p, 0.5, 1.5)
    l1, l2 = 0.3, 0.7
    value = T.Penalty(l1=l1, l2=l2)(model)
    conv_w, lin_w = model[0].weight, model[4].weight
    expected = sum(l1 * w.abs().sum() + l2 * (w**2).sum() for w in (conv_w, lin_w))
    torch.testing.assert_close(value, expected)
    value.backward()
    for w in (conv_w, lin_w):  # d/dw (l1 |w| + l2 w^2) = l1 sign(w) + 2 l2 w
        torch.testing.assert_close(w.grad, l1 * torch.sign(w.detach()) + 2 * l2 * w.detach())
    skipped = [model[0].bias, model[1].weight, model[1].bias, model[3].weight, model[3].bias, model[4].bias]
    for p in skipped:
        assert p.grad is None or torch.all(p.grad == 0)


def test_penalty_zero_and_bad_input():
    assert float(T.Penalty()(T.build_cnn(width=2, depth=1))) == 0.0
    for kw in ({"l1": -1e-4}, {"l2": -0.1}, {"l2": float("nan")}, {"l1": "1"}):
        with pytest.raises(ValueError, match=r"Penalty\.l[12] must be a finite number >= 0"):
            T.Penalty(**kw)


# EarlyStopping ----------------------------------------------------------------------------
def test_early_stopping_scripted_sequence_stops_and_restores_best():
    losses = [1.0, 0.8, 0.9, 0.7, 0.75, 0.72, 0.71, 0.6]
    model = nn.Linear(1, 1)
    stop = T.EarlyStopping("val_loss", patience=3)
    stopped_at = None
    for epoch, v in enumerate(losses, start=1):
        with torch.no_grad():
            model.weight.fill_(epoch)  # weights remember which epoch they came from
        if stop.update(v, model):
            stopped_at = epoch
            break
    assert (stopped_at, stop.best_epoch, stop.best_value) == (7, 4, 0.7)
    stop.restore(model)
    assert float(model.weight.detach()) == 4.0


def test_early_stopping_accuracy_mode_and_min_delta():
    stop = T.EarlyStopping("val_acc", patience=2, min_delta=0.05)
    # 0.53 is not better than 0.5 by more than 0.05; 0.6 is
    assert [stop.update(v) for v in (0.5, 0.53, 0.6, 0.62, 0.64)] == [False, False, False, False, True]
    assert stop.best_epoch == 3 and stop.best_value == 0.6


def test_early_stopping_bad_input():
    with pytest.raises(ValueError, match="monitor must be one of"):
        T.EarlyStopping(monitor="val_los")
    for p in (0, -3, 1.5):
        with pytest.raises(ValueError, match="patience must be an int >= 1"):
            T.EarlyStopping(patience=p)
    with pytest.raises(ValueError, match="min_delta"):
        T.EarlyStopping(min_delta=-0.1)
    with pytest.raises(RuntimeError, match="no weights recorded"):
        T.EarlyStopping().restore(nn.Linear(1, 1))


def test_trainer_early_stopping_keeps_best_val_loss_weights(digits):
    train, val, _ = digits
    model = T.build_cnn(width=8, depth=1, seed=0)
    stop = T.EarlyStopping("val_loss", patience=2)
    tr = T.Trainer(model, torch.optim.Adam(model.parameters(), lr=3e-2), device="cpu", early_stopping=stop,
                   max_epochs=25, seed=0)
    hist = tr.fit(_small(train, 64), _small(val, 100))
    vl = hist.val_loss
    assert hist.best_epoch == int(np.argmin(vl)) + 1
    assert hist.stopped_epoch == len(vl)
    if hist.early_stopped:
        assert hist.stopped_epoch - hist.best_epoch == 2
    # the model holds the best epoch's weights: its validation loss is the recorded minimum
    assert tr.evaluate(_small(val, 100))[0] == pytest.approx(min(vl), rel=1e-5)


def test_trainer_val_monitor_needs_val_data(digits):
    model = T.build_cnn(width=2, depth=1)
    tr = T.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), device="cpu", early_stopping=T.EarlyStopping())
    with pytest.raises(ValueError, match="monitors 'val_loss' but val_data is None"):
        tr.fit(_small(digits[0], 8))


# Standardize ------------------------------------------------------------------------------
def test_standardize_uses_training_statistics_only(digits):
    train, val, _ = digits
    x = train[0][:100]
    std = T.Standardize.fit(x)
    ref = x.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(std.mean, [ref.mean()], rtol=1e-9)
    np.testing.assert_allclose(std.std, [ref.std()], rtol=1e-9)
    assert T.Standardize.fit(x.float() / 255).mean == pytest.approx(std.mean)
    # the study's pipeline depends on the training images only, never on validation data
    arm = S.Arm("s", "5", standardize=True)
    op = S.make_pipeline(arm, x, seed=0).ops[-1]
    assert isinstance(op, ak.Normalize) and op.mean == std.mean and op.std == std.std
    assert T.Standardize.fit(val[0]).mean != std.mean
    # applied through the pipeline: (x / 255 - mean) / std
    y = ak.Pipeline([std.to_op()], seed=0)(x)
    torch.testing.assert_close(y, ((x.double() / 255 - std.mean[0]) / std.std[0]).float(), atol=1e-5, rtol=1e-5)


def test_standardize_bad_input():
    with pytest.raises(ValueError, match=r"\(N,C,H,W\)"):
        T.Standardize.fit(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"float images must be in \[0, 1\]"):
        T.Standardize.fit(torch.full((2, 1, 4, 4), 3.0))
    with pytest.raises(ValueError, match="every channel must vary"):
        T.Standardize.fit(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))


# build_cnn ---------------------------------------------------------------------------------
def test_build_cnn_parameter_count():
    # depth 1, width 4: conv 1*4*9+4, head Linear(4*4, 16) and Linear(16, 10)
    assert T.count_params(T.build_cnn(width=4, depth=1)) == 40 + (16 * 16 + 16) + (16 * 10 + 10)
    by_width = [T.count_params(T.build_cnn(width=w, depth=2)) for w in (4, 8, 16, 32)]
    by_depth = [T.count_params(T.build_cnn(width=8, depth=d)) for d in (1, 2, 3, 4)]
    assert by_width == sorted(set(by_width)) and by_depth == sorted(set(by_depth))
    out = T.build_cnn(in_channels=3, num_classes=7, width=4, depth=4)(torch.rand(2, 3, 8, 8))
    assert out.shape == (2, 7)


def test_build_cnn_seed_and_bad_input():
    a, b = T.build_cnn(width=4, seed=1), T.build_cnn(width=4, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    with pytest.raises(ValueError, match="width must be an int >= 1"):
        T.build_cnn(width=0)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)"):
        T.build_cnn(dropout=1.0)


def test_dropout_only_in_training_mode():
    x = torch.rand(16, 1, 8, 8)
    model = T.build_cnn(width=8, depth=1, dropout=0.5, seed=0)
    model.eval()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
    model.train()
    assert not torch.allclose(model(x), model(x))
    plain = T.build_cnn(width=8, depth=1, dropout=0.0, seed=0).train()
    torch.testing.assert_close(plain(x), plain(x), rtol=0, atol=0)


# Trainer ------------------------------------------------------------------------------------
class CountingPipeline(ak.Pipeline):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls: list[tuple[torch.dtype, int]] = []

    def __call__(self, x, **kw):
        self.calls.append((x.dtype, x.shape[0]))
        return super().__call__(x, **kw)


def test_trainer_feeds_uint8_batches_through_the_pipeline(digits):
    train, val, _ = digits
    pipe = CountingPipeline([ak.Zoom(scale=(0.9, 1.1)), ak.Normalize(mean=(0.3,), std=(0.4,))], seed=0)
    model = T.build_cnn(width=4, depth=1, seed=0)
    tr = T.Trainer(model, torch.optim.Adam(model.parameters()), pipe, device="cpu", max_epochs=2, batch_size=16)
    hist = tr.fit(_small(train, 40), _small(val, 20))
    assert pipe.calls == [(torch.uint8, 16), (torch.uint8, 16), (torch.uint8, 8)] * 2
    assert [type(op) for op in tr.eval_pipeline.ops] == [ak.Normalize]  # no augmentation at evaluation
    assert len(hist.train_loss) == len(hist.val_acc) == hist.stopped_epoch == hist.best_epoch == 2
    assert hist.wall_time > 0


def test_trainer_is_reproducible_and_penalty_shrinks_weights(digits):
    train = _small(digits[0], 48)

    def run(penalty):
        model = T.build_cnn(width=4, depth=1, seed=0)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        T.Trainer(model, opt, ak.Pipeline([ak.GaussianNoise()], seed=3), "cpu", penalty, max_epochs=3, seed=1).fit(train)
        return torch.cat([p.detach().flatten() for p in T.regularize.penalized_parameters(model)])

    a, b = run(None), run(None)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert run(T.Penalty(l2=0.05)).norm() < a.norm()


def test_trainer_bad_input(digits):
    model = T.build_cnn(width=2, depth=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="max_epochs must be an int >= 1"):
        T.Trainer(model, opt, max_epochs=0)
    tr = T.Trainer(model, opt, device="cpu", max_epochs=1)
    with pytest.raises(ValueError, match=r"train_data images must be \(N,C,H,W\)"):
        tr.fit((torch.zeros(4, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ValueError, match="labels must be"):
        tr.fit((torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(3, dtype=torch.long)))


# learning curve, offline copies, plots, study -----------------------------------------------
def test_learning_curve_nested_sizes_and_bad_fractions(digits, tmp_path):
    train, val, test = digits
    small_val = _small(val, 50)

    def build(sub, seed):
        model = T.build_cnn(width=4, depth=1, seed=seed)
        return T.Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), device="cpu", max_epochs=2, seed=seed)

    curve = T.learning_curve([0.02, 0.05], train, small_val, build, seeds=[0, 1], test_data=_small(test, 50),
                             path=tmp_path / "lc.png")
    assert curve.sizes == [round(0.02 * len(train[0])), round(0.05 * len(train[0]))]
    assert len(curve.runs) == 2 and all(len(r) == 2 for r in curve.runs)
    m, s = curve.error("test")
    assert m.shape == (2,) and np.all((m >= 0) & (m <= 1))
    assert (tmp_path / "lc.png").stat().st_size > 0
    small, big = S.subset_indices(100, 0.1), S.subset_indices(100, 0.5)
    assert torch.equal(big[:10], small)  # nested
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"fractions\[1\] must be a number in \(0, 1\]"):
            T.learning_curve([0.5, bad], train, val, build)
        with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\]"):
            S.run_study(tmp_path, fraction=bad)


def test_offline_copies_are_keyed_by_seed_index_copy(digits):
    x = digits[0][0][:12]
    idx = torch.arange(100, 112)
    full = S.expand_in_memory(x, idx, copies=2, seed=5)  # (24, 1, 8, 8): copy 0 of all, then copy 1
    part = S.expand_in_memory(x[4:7], idx[4:7], copies=2, seed=5)
    assert full.dtype == torch.uint8 and full.shape == (24, 1, 8, 8)
    torch.testing.assert_close(part[:3], full[4:7], rtol=0, atol=0)
    torch.testing.assert_close(part[3:], full[16:19], rtol=0, atol=0)
    assert not torch.equal(full[:12], full[12:])
    assert not torch.equal(full, S.expand_in_memory(x, idx, copies=2, seed=6))


def test_plot_history_marks_stop(tmp_path):
    h = T.History(train_loss=[1.0, 0.5, 0.3, 0.2], train_acc=[0.5, 0.7, 0.8, 0.9], val_loss=[1.1, 0.7, 0.8, 0.9],
                  val_acc=[0.4, 0.6, 0.6, 0.55], best_epoch=2, stopped_epoch=4, early_stopped=True)
    p = T.plot_history(h, tmp_path / "h.png")
    assert p.stat().st_size > 0
    with pytest.raises(ValueError, match="at least one epoch"):
        T.plot_history(T.History(), tmp_path / "e.png")


def test_study_smoke_writes_report_and_plots(tmp_path):
    path = S.run_study(tmp_path, quick=True, epochs=1, log=None)
    text = path.read_text()
    for arm in S.default_arms():
        assert f"| {arm.name} |" in text
    assert "| more data x4 |" in text
    assert text.startswith("# augkit study: remedies for overfitting on scikit-learn digits (smoke test)")
    assert "Smoke test, not a study." in text and "supports no finding" in text
    assert "Flips-free augmentation" not in text and "beats" not in text  # one seed: no findings stated
    for png in ("learning_curve.png", "test_accuracy.png", "history_baseline.png", "history_early_stopping.png"):
        assert (tmp_path / png).stat().st_size > 0


def test_cli_study_rejects_bad_fraction(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["study", "--out", str(tmp_path), "--fraction", "1.5"])
    assert e.value.code == 2 and "expected a number in (0, 1], got 1.5" in capsys.readouterr().err


@cuda
def test_trainer_on_cuda(digits):
    model = T.build_cnn(width=4, depth=1, seed=0)
    pipe = ak.Pipeline(S.digit_ops(), seed=0)
    tr = T.Trainer(model, torch.optim.Adam(model.parameters()), pipe, device="cuda", penalty=T.Penalty(l2=1e-4),
                   early_stopping=T.EarlyStopping(patience=1), max_epochs=2)
    hist = tr.fit(_small(digits[0], 64), _small(digits[1], 32))
    assert next(model.parameters()).device.type == "cuda" and hist.stopped_epoch >= 1
