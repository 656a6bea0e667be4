"""The benchmark suite runs end to end on tiny sizes and checks peers honestly. No timing assertions."""

import json

import pytest
import torch

import augkit as ak
from augkit.bench import bench, format_table
from augkit.bench import peers as P
from augkit.bench.suite import bandwidth_bound_s, check_output, run_bench
from augkit.cli import main
from augkit.images import sample_batch

REF = {"shape": (8, 3, 16, 16), "dtype": torch.float32, "min": 0.0, "max": 1.0}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    r = bench(sizes=(16,), batch_size=8, device="cpu", quick=True,
              json=out / "r.json", markdown=out / "r.md", plot=out / "r.png")
    return r, out


def test_quick_run_times_every_available_case(quick):
    r, _ = quick
    rows = {row["case"]: row for row in r["rows"]}
    for case in ("augkit", "kornia", "torch", "albumentations", "albumentations-workers"):
        assert rows[case]["status"] == "ok", rows[case]
        assert rows[case]["img_s"] > 0 and len(rows[case]["times_s"]) == 5
    assert rows["augkit"]["augkit_ratio"] == pytest.approx(1.0)
    assert rows["kornia"]["augkit_ratio"] == pytest.approx(rows["augkit"]["img_s"] / rows["kornia"]["img_s"])
    want_tv = "ok" if P.torchvision_available() else "skipped"
    assert rows["torchvision"]["status"] == want_tv
    # cases from other features run when present and say why when not
    assert rows["albu-backend"]["status"] == ("ok" if hasattr(ak.Pipeline, "to_albumentations") else "skipped")
    assert rows["loader-augkit"]["status"] == ("ok" if hasattr(ak, "loader") else "skipped")
    (bound,) = r["bounds"]
    assert bound["img_s"] > 0 and bound["size"] == 16
    assert rows["augkit"]["pct_bound"] == pytest.approx(100 * rows["augkit"]["img_s"] / bound["img_s"])
    assert all(t["value"] is None for t in r["targets"])  # size 16, batch 8: no target applies
    # issue 12's photometric case: augkit, Kornia and Albumentations on the same pipeline
    for case in ("color-augkit", "color-kornia", "color-albumentations"):
        assert rows[case]["status"] == "ok" and rows[case]["group"] == "color", rows[case]
    assert rows["color-kornia"]["augkit_ratio"] == pytest.approx(rows["color-augkit"]["img_s"] / rows["color-kornia"]["img_s"])
    assert any(t["what"] == "color pipeline: augkit / Kornia" for t in r["targets"])


def test_outputs_are_written(quick):
    r, out = quick
    data = json.loads((out / "r.json").read_text())
    assert data["machine"]["cores"] >= 1 and data["machine"]["versions"]["kornia"]
    assert [row["case"] for row in data["rows"]] == [row["case"] for row in r["rows"]]
    md = (out / "r.md").read_text()
    assert "| 16 | augkit Pipeline (batched) |" in md and "uint8→float32 copy, reused buffer" in md
    assert (out / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = format_table(r)
    assert "Kornia AugmentationSequential" in table and "Targets" not in table  # targets: docs/benchmarks.md


def test_check_output_rejects_peers_doing_less_work():
    x = sample_batch(16, 8)
    good = ak.default_pipeline(0)(x)
    assert check_output(good, x, REF) is None
    assert "dtype" in check_output(good.to(torch.float64), x, REF) or "float64" in check_output(good.double(), x, REF)
    assert "(4, 3, 16, 16)" in check_output(good[:4], x, REF)
    assert "spans" in check_output(good * 1.5 - 0.2, x, REF)  # e.g. Kornia's noise without the clamp
    assert "differ from the input" in check_output(x.float() / 255, x, REF)  # a peer that does nothing
    assert "torch.Tensor" in check_output(good.numpy(), x, REF)


def test_torch_reference_matches_augkit_for_fixed_params():
    """The plain-torch peer does the same work: with the randomness pinned, it agrees with augkit."""
    x = sample_batch(32, 4)
    for ops in ([ak.HorizontalFlip(p=1.0), ak.VerticalFlip(p=1.0)], [ak.Zoom(scale=(1.5, 1.5))],
                [ak.Zoom(scale=(0.7, 0.7))], [ak.Contrast(factor=(0.5, 0.5))]):
        ours = ak.Pipeline(ops, seed=0)(x)
        ref = P.torch_reference(ops, torch.device("cpu"))(x)
        assert (ours - ref).abs().mean() < 1e-3, ops
    flips = P.torch_reference([ak.HorizontalFlip(p=1.0)], torch.device("cpu"))(x)
    assert torch.equal(flips, x.flip(3).float() / 255)


def test_albumentations_peer_collates_to_the_same_batch():
    x = sample_batch(16, 3)
    imgs = [im.permute(1, 2, 0).numpy() for im in x]
    y = P.collate_float(imgs)
    assert y.is_contiguous() and y.dtype == torch.float32
    assert torch.allclose(y, x.float() / 255, rtol=0, atol=1e-7)
    compose = P.albumentations_compose(ak.default_pipeline(0).ops)
    out = P.collate_float([compose(image=im)["image"] for im in imgs])
    assert out.shape == x.shape and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    with pytest.raises(TypeError, match="Normalize"):
        P.albumentations_compose([ak.Normalize()])


def test_bandwidth_bound_is_measured():
    assert bandwidth_bound_s((2, 3, 8, 8), torch.device("cpu"), repeats=3) > 0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="peers must be among"):
        run_bench(sizes=(16,), peers=("kornia", "dali"))
    with pytest.raises(ValueError, match="sizes"):
        run_bench(sizes=(4,))
    with pytest.raises(ValueError, match="device"):
        run_bench(sizes=(16,), device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda"):
            run_bench(sizes=(16,), device="cuda")


def test_cli_bench_quick(tmp_path, capsys):
    rc = main(["bench", "--quick", "--sizes", "16", "--batch-size", "4", "--device", "cpu", "--peers", "kornia,torch",
               "--repeats", "2", "--warmup", "1", "--json", str(tmp_path / "b.json")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "augkit Pipeline (batched)" in text and "plain torch reference" in text and "Albumentations" not in text
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["config"]["repeats"] == 2 and data["config"]["peers"] == ["kornia", "torch"]
