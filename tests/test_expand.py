"""augkit expand: determinism across batch/workers/shards, manifest, resume after SIGKILL, bad input."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import augkit as ak
from augkit.cli import main
from augkit.data.expand import ExpandError, copy_key, expand, to_uint8
from augkit.images import sample_images

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
ROOT = Path(__file__).resolve().parents[1]
COPIES = 3


def make_src(root: Path, n: int, lo: int = 32, hi: int = 48, grey_every: int = 5) -> Path:
    """ImageFolder layout from the bundled photos: root/<photo name>/<i>.png, mixed sizes, some grey."""
    rng = np.random.default_rng(0)
    photos = list(sample_images().items())
    for i in range(n):
        name, im = photos[i % len(photos)]
        size = (int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1)))
        img = Image.fromarray(im).resize(size, Image.BILINEAR)
        if grey_every and i % grey_every == grey_every - 1:
            img = img.convert("L")
        (root / name).mkdir(parents=True, exist_ok=True)
        img.save(root / name / f"{i:03d}.png")
    return root


def tree(root: Path, skip_parts: bool = False) -> dict[str, bytes]:
    """Every file below ``root`` (hidden ones included) -> its bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not (skip_parts and ".part-" in p.name):
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def manifest(dst: Path) -> list[dict]:
    return [json.loads(line) for line in (dst / "manifest.jsonl").read_text().splitlines()]


def decode(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        return np.asarray(im)


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    return make_src(tmp_path_factory.mktemp("src"), 8)


@pytest.fixture(scope="module")
def reference(src, tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("ref") / "out"
    summary = expand(src, dst, copies=COPIES, seed=3, batch_size=32, workers=0, device="cpu")
    assert summary.written == 8 * COPIES and summary.skipped == 0 and summary.merged
    return dst


@pytest.mark.parametrize(("batch_size", "workers", "shards"), list(itertools.product((1, 7, 32), (0, 2), (1, 3))))
def test_outputs_identical_across_batch_size_workers_and_shards(src, reference, tmp_path, batch_size, workers, shards):
    dst = tmp_path / "out"
    for i in reversed(range(shards)):  # any order of processing
        s = expand(src, dst, copies=COPIES, seed=3, batch_size=batch_size, workers=workers, shard=f"{i}/{shards}", device="cpu")
        assert s.merged == (i == 0)  # the merged manifest appears when the last shard finishes
    assert tree(dst, skip_parts=True) == tree(reference)


def test_shard_parts_partition_the_images(src, reference, tmp_path):
    dst = tmp_path / "out"
    parts = [expand(src, dst, copies=COPIES, seed=3, shard=(i, 3), device="cpu") for i in range(3)]
    assert sum(p.sources for p in parts) == 8 and sum(p.written for p in parts) == 8 * COPIES
    part_sources = [{json.loads(x)["source"] for x in (dst / f"manifest.part-{i}-of-3.jsonl").read_text().splitlines()} for i in range(3)]
    assert set.union(*part_sources) == {e["source"] for e in manifest(reference)}
    assert sum(map(len, part_sources)) == 8  # disjoint


def test_layout_mirrors_imagefolder(src, reference):
    sources = sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png"))
    expected = {f"{s[:-4]}_aug{k}.png" for s in sources for k in range(1, COPIES + 1)}
    assert set(tree(reference)) == expected | {"manifest.jsonl", "augkit-expand.json"}
    for s in sources:  # grey stays grey, RGB stays RGB, size kept
        src_img, out_img = decode(src / s), decode(reference / f"{s[:-4]}_aug1.png")
        assert src_img.shape == out_img.shape


def test_manifest_lists_every_output_with_params_and_sha256(src, reference):
    entries = manifest(reference)
    assert len(entries) == 8 * COPIES
    assert entries == sorted(entries, key=lambda e: (e["source"], e["copy"]))
    pipe = ak.default_pipeline(3)
    for e in entries:
        data = (reference / e["output"]).read_bytes()
        assert e["sha256"] == hashlib.sha256(data).hexdigest()
        assert e["output"] == e["source"][:-4] + f"_aug{e['copy']}.png"
        # the key: a sha256 hash of (seed, source, copy), computed here independently
        digest = hashlib.sha256(f"augkit-expand\0{3}\0{e['source']}\0{e['copy']}".encode()).digest()
        assert e["key"] == copy_key(3, e["source"], e["copy"]) == int.from_bytes(digest[:8], "little") >> 1
        params = pipe.sample_keyed([e["key"]])
        assert e["params"] == params.tolist()[0]
        # replaying the recorded params on the source, one image at a time, gives the written pixels
        x = torch.from_numpy(decode(src / e["source"]).copy())
        x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]
        want = to_uint8(pipe(x, params=params))[0].permute(1, 2, 0).squeeze(-1).numpy()
        np.testing.assert_array_equal(decode(reference / e["output"]), want)
    assert len({e["key"] for e in entries}) == len(entries)
    info = json.loads((reference / "augkit-expand.json").read_text())
    assert info["config"]["pipeline"] == {"ops": pipe.to_dict()["ops"]} and info["config"]["seed"] == 3
    assert info["config"]["copies"] == COPIES and info["augkit_version"] == ak.__version__
    assert info["counts"] == {"sources": 8, "outputs": 8 * COPIES, "errors": 0} and info["errors"] == []


def test_to_uint8_rounds_half_to_even():
    y = torch.tensor([0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.2, 1.0, 1.0004, -0.0004])
    assert to_uint8(y).tolist() == [0, 0, 2, 2, 51, 255, 255, 0]


def test_seed_and_pipeline_change_the_outputs(src, reference, tmp_path):
    other = expand(src, tmp_path / "a", copies=1, seed=4, device="cpu")
    assert other.written == 8
    a = (tmp_path / "a" / "astronaut" / "000_aug1.png").read_bytes()
    assert a != (reference / "astronaut" / "000_aug1.png").read_bytes()
    pipe = ak.Pipeline([ak.HorizontalFlip(p=1.0)], seed=0)
    expand(src, tmp_path / "b", copies=1, pipeline=pipe, device="cpu")
    np.testing.assert_array_equal(decode(tmp_path / "b" / "astronaut" / "000_aug1.png"), decode(src / "astronaut" / "000.png")[:, ::-1])


def test_include_original_and_jpg(src, tmp_path):
    s = expand(src, tmp_path / "o", copies=1, include_original=True, device="cpu")
    assert s.written == 16
    np.testing.assert_array_equal(decode(tmp_path / "o" / "coffee" / "001_orig.png"), decode(src / "coffee" / "001.png"))
    e = [e for e in manifest(tmp_path / "o") if e["copy"] == 0]
    assert len(e) == 8 and all(x["params"] is None for x in e)
    expand(src, tmp_path / "j", copies=1, format="jpg", quality=80, device="cpu")
    with Image.open(tmp_path / "j" / "coffee" / "001_aug1.jpg") as im:
        assert im.format == "JPEG"


def test_resume_skips_verified_outputs_and_redoes_the_rest(src, reference, tmp_path):
    dst = tmp_path / "out"
    shutil.copytree(reference, dst)
    (dst / "astronaut" / "000_aug1.png").unlink()
    bad = dst / "chelsea" / "002_aug2.png"
    bad.write_bytes(bad.read_bytes()[:50])  # corrupt: the manifest sha256 no longer matches
    s = expand(src, dst, copies=COPIES, seed=3, device="cpu")
    assert (s.written, s.skipped) == (2, 8 * COPIES - 2)
    assert tree(dst) == tree(reference)


def test_resume_after_sigkill_leaves_no_corrupt_file_and_finishes_identically(tmp_path):
    src = make_src(tmp_path / "src", 60, lo=48, hi=64)
    ref = tmp_path / "ref"
    expand(src, ref, copies=4, seed=1, device="cpu")
    reference = tree(ref)
    dst = tmp_path / "dst"
    cmd = [sys.executable, "-m", "augkit.cli", "expand", str(src), str(dst), "--copies", "4", "--seed", "1"]
    cmd += ["--workers", "0", "--batch-size", "4", "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    part = dst / "manifest.part-0-of-1.jsonl"
    for lines in (12, 60):  # kill a first run, then the resumed run further on
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if part.is_file() and part.read_text().count("\n") >= lines:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
        assert not (dst / "manifest.jsonl").exists()
        finished = {k: v for k, v in tree(dst).items() if not k.startswith(".augkit-tmp")}
        images = [k for k in finished if k.endswith(".png")]
        assert lines <= len(images) < len(reference) - 2
        for k in images:  # every image in DST is complete: the same bytes as the uninterrupted run's
            assert finished[k] == reference[k], k
        for line in part.read_text().splitlines():  # the manifest holds whole lines only
            json.loads(line)
    s = expand(src, dst, copies=4, seed=1, device="cpu")
    assert s.skipped >= 60 and s.written + s.skipped == len(reference) - 2
    assert tree(dst) == reference  # the temporary folder is gone too


def corrupt_src(tmp_path: Path) -> Path:
    src = make_src(tmp_path / "src", 4)
    (src / "coffee" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    good = (src / "astronaut" / "000.png").read_bytes()
    (src / "rocket" / "truncated.png").write_bytes(good[: len(good) // 2])
    return src


def test_corrupt_image_fails_naming_the_file(tmp_path, capsys):
    src, dst = corrupt_src(tmp_path), tmp_path / "dst"
    with pytest.raises(ExpandError, match="broken.png"):
        expand(src, dst, copies=2, device="cpu", batch_size=1)
    for p in dst.rglob("*.png"):  # only complete outputs
        decode(p)
    assert not list(dst.glob(".augkit-tmp*")) and not (dst / "manifest.jsonl").exists()
    assert main(["expand", str(src), str(tmp_path / "dst2"), "--copies", "1", "--workers", "2", "--quiet"]) == 1
    assert "broken.png" in capsys.readouterr().err


def test_corrupt_image_skip_is_recorded(tmp_path, capsys):
    src, dst = corrupt_src(tmp_path), tmp_path / "dst"
    assert main(["expand", str(src), str(dst), "--copies", "2", "--on-error", "skip", "--workers", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 unreadable" in out and "broken.png" in out and "truncated.png" in out and "images/s" in out
    errors = [e for e in manifest(dst) if "error" in e]
    assert [e["source"] for e in errors] == ["coffee/broken.png", "rocket/truncated.png"]
    assert all(e["output"] is None and e["copy"] is None and "sha256" not in e for e in errors)
    info = json.loads((dst / "augkit-expand.json").read_text())
    assert info["counts"] == {"sources": 6, "outputs": 8, "errors": 2}
    assert len(list(dst.rglob("*_aug*.png"))) == 8
    s = expand(src, dst, copies=2, on_error="skip", device="cpu")  # the re-run retries them, the rest is done
    assert (s.written, s.skipped, len(s.errors)) == (0, 8, 2)


def test_bad_arguments(src, tmp_path):
    with pytest.raises(ValueError, match="must lie outside SRC"):
        expand(src, src / "aug", copies=1)
    with pytest.raises(ValueError, match="must lie outside SRC"):
        expand(src, src, copies=1)
    with pytest.raises(FileNotFoundError, match="missing"):
        expand(tmp_path / "missing", tmp_path / "d", copies=1)
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    (tmp_path / "empty" / "cls" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="holds no images"):
        expand(tmp_path / "empty", tmp_path / "d", copies=1)
    for copies in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="copies must be an integer >= 1"):
            expand(src, tmp_path / "d", copies=copies)
    for shard in ("3/3", "1", "a/b", "-1/2", "0/0", "1/2/3", (2, 1)):
        with pytest.raises(ValueError, match="shard must be 'I/N'"):
            expand(src, tmp_path / "d", copies=1, shard=shard)
    with pytest.raises(ValueError, match="Normalize"):
        expand(src, tmp_path / "d", copies=1, pipeline=ak.Pipeline([ak.Normalize()]))
    assert not (tmp_path / "d").exists()
    assert main(["expand", str(src), str(tmp_path / "d"), "--copies", "0"]) == 1


def test_clashing_outputs_are_refused(tmp_path):
    src = make_src(tmp_path / "src", 2)
    Image.open(src / "astronaut" / "000.png").save(src / "astronaut" / "000.jpg")
    with pytest.raises(ValueError, match="000.jpg.*000.png|000.png.*000.jpg"):
        expand(src, tmp_path / "d", copies=1, format="png")
    s = expand(src, tmp_path / "k", copies=1, device="cpu")  # format="keep": 000_aug1.jpg and 000_aug1.png
    assert s.written == 3 and (tmp_path / "k" / "astronaut" / "000_aug1.jpg").is_file()


def test_existing_dst_with_other_settings_is_refused_unless_overwrite(src, reference, tmp_path):
    dst = tmp_path / "out"
    shutil.copytree(reference, dst)
    with pytest.raises(ValueError, match="seed differ"):
        expand(src, dst, copies=COPIES, seed=4)
    with pytest.raises(ValueError, match="pipeline differ"):
        expand(src, dst, copies=COPIES, seed=3, pipeline=ak.Pipeline([ak.HorizontalFlip()], seed=3))
    assert tree(dst) == tree(reference)
    s = expand(src, dst, copies=COPIES, seed=4, overwrite=True, device="cpu")
    assert s.written == 8 * COPIES and s.skipped == 0
    assert json.loads((dst / "augkit-expand.json").read_text())["config"]["seed"] == 4
    assert (dst / "astronaut" / "000_aug1.png").read_bytes() != (reference / "astronaut" / "000_aug1.png").read_bytes()


def test_pipeline_file_errors_name_the_file_and_key(src, tmp_path):
    bad_key = tmp_path / "bad_key.yaml"
    bad_key.write_text("ops:\n  - name: Zoom\n    scal: [0.9, 1.1]\n")
    with pytest.raises(ValueError, match=r"bad_key\.yaml.*scal"):
        expand(src, tmp_path / "d", copies=1, pipeline=bad_key)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("ops: [\n  - name: Zoom\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*does not parse"):
        expand(src, tmp_path / "d", copies=1, pipeline=str(bad_yaml))
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        expand(src, tmp_path / "d", copies=1, pipeline=tmp_path / "nope.yaml")
    good = tmp_path / "good.yaml"
    ak.Pipeline([ak.VerticalFlip(p=1.0)], seed=0).to_yaml(good)
    assert main(["expand", str(src), str(tmp_path / "g"), "--copies", "1", "--pipeline", str(good), "--quiet"]) == 0
    np.testing.assert_array_equal(decode(tmp_path / "g" / "rocket" / "003_aug1.png"), decode(src / "rocket" / "003.png")[::-1])


def test_pipeline_seed_plays_no_part(src, reference, tmp_path):
    no_seed = tmp_path / "no_seed.yaml"  # Pipeline.from_yaml draws a random seed for it
    no_seed.write_text(ak.default_pipeline(0).to_yaml().replace("seed: 0\n", ""))
    expand(src, tmp_path / "d", copies=COPIES, seed=3, pipeline=no_seed, device="cpu")
    assert tree(tmp_path / "d") == tree(reference)
    s = expand(src, tmp_path / "d", copies=COPIES, seed=3, pipeline=ak.default_pipeline(99), device="cpu")
    assert (s.written, s.skipped) == (0, 8 * COPIES)


@cuda
def test_cuda_outputs_identical_across_batch_sizes(src, tmp_path):
    trees = []
    for bs in (1, 7, 32):
        expand(src, tmp_path / f"b{bs}", copies=COPIES, seed=3, batch_size=bs, device="cuda")
        trees.append(tree(tmp_path / f"b{bs}"))
    assert trees[0] == trees[1] == trees[2]
