"""augkit expand: determinism across batch/workers/shards, manifest, resume after SIGKILL, bad input."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
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


# issue 10: reliability regressions (docs/reliability.md) -----------------------------------------------
FLIP = ak.Pipeline([ak.HorizontalFlip(p=1.0)], seed=0)


def test_item5_16bit_and_float_images_are_scaled_not_clipped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    g16 = (np.arange(40 * 48).reshape(40, 48) * 34).astype(np.uint16)  # 0 .. 65246
    Image.fromarray(g16).save(src / "g16.png")
    f32 = np.linspace(0, 1, 40 * 48, dtype=np.float32).reshape(40, 48)
    Image.fromarray(f32).save(src / "f32.tif")
    Image.fromarray(f32 * 255).save(src / "f255.tif")  # not in [0, 1]: refused, never written white
    grey_alpha = Image.fromarray(np.full((40, 48), 90, np.uint8)).convert("LA")
    grey_alpha.save(src / "la.png")
    s = expand(src, tmp_path / "d", copies=1, pipeline=FLIP, on_error="skip", device="cpu", workers=0)
    assert [e[0] for e in s.errors] == ["f255.tif"] and "[0, 1]" in s.errors[0][1]
    want16 = np.rint(g16 / 257).astype(np.uint8)[:, ::-1]
    with Image.open(tmp_path / "d" / "g16_aug1.png") as im:
        assert im.mode == "L"  # grey stays grey, 8-bit
    np.testing.assert_array_equal(decode(tmp_path / "d" / "g16_aug1.png"), want16)
    np.testing.assert_array_equal(decode(tmp_path / "d" / "f32_aug1.png"), np.rint(f32 * 255).astype(np.uint8)[:, ::-1])
    with Image.open(tmp_path / "d" / "la_aug1.png") as im:
        assert im.mode == "L"  # grey stays grey


def test_item5_tif_16bit_goes_through_the_same_scaling(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    g16 = (np.arange(40 * 48).reshape(40, 48) * 34).astype(np.uint16)
    Image.fromarray(g16).save(src / "a.tif")
    expand(src, tmp_path / "d", copies=1, pipeline=FLIP, device="cpu", workers=0)
    np.testing.assert_array_equal(decode(tmp_path / "d" / "a_aug1.png"), np.rint(g16 / 257).astype(np.uint8)[:, ::-1])


def test_item10_edited_source_is_redone_and_vanished_source_reported(tmp_path):
    src = make_src(tmp_path / "src", 6)
    dst = tmp_path / "dst"
    expand(src, dst, copies=2, seed=1, device="cpu", workers=0)
    edited = src / "coffee" / "001.png"
    Image.open(src / "rocket" / "003.png").resize((40, 40)).save(edited)  # new content, same name
    os.utime(src / "chelsea" / "002.png")  # touched only: same bytes, new mtime
    s = expand(src, dst, copies=2, seed=1, device="cpu", workers=0)
    assert (s.written, s.skipped) == (2, 10)
    fresh = tmp_path / "fresh"
    expand(src, fresh, copies=2, seed=1, device="cpu", workers=0)
    assert tree(dst) == tree(fresh)
    (src / "astronaut" / "000.png").unlink()
    s = expand(src, dst, copies=2, seed=1, device="cpu", workers=0)
    assert s.stale == ("astronaut/000_aug1.png", "astronaut/000_aug2.png") and not s.pruned
    assert (dst / "astronaut" / "000_aug1.png").is_file()
    again = expand(src, dst, copies=2, seed=1, device="cpu", workers=0)  # still reported until pruned
    assert again.stale == s.stale
    pruned = expand(src, dst, copies=2, seed=1, device="cpu", workers=0, prune=True)
    assert pruned.pruned and pruned.stale == s.stale
    assert not (dst / "astronaut" / "000_aug1.png").exists()
    assert expand(src, dst, copies=2, seed=1, device="cpu", workers=0).stale == ()
    assert all(e["source"] != "astronaut/000.png" for e in manifest(dst))


def _cli(src: Path, dst: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "augkit.cli", "expand", str(src), str(dst), "--device", "cpu", "--quiet", *extra]


def _wait_for(cond, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_item11_second_run_on_the_same_dst_is_refused_naming_the_holder(tmp_path, capsys):
    src = make_src(tmp_path / "src", 100, lo=56, hi=64)
    dst = tmp_path / "dst"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = _cli(src, dst, "--copies", "3", "--seed", "1", "--workers", "0", "--batch-size", "1")
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert _wait_for(lambda: (dst / "manifest.part-0-of-1.jsonl").is_file())
        for seed in (1, 2):  # same settings or not: one run per DST shard at a time
            with pytest.raises(RuntimeError, match=rf"in use by another augkit expand \(pid {first.pid}"):
                expand(src, dst, copies=3, seed=seed, device="cpu", workers=0)
        with pytest.raises(RuntimeError, match=rf"pid {first.pid}"):  # an overlapping shard split too
            expand(src, dst, copies=3, seed=1, shard="1/2", device="cpu", workers=0)
        assert main(cmd[3:]) == 1  # the command line: one line, exit 1
        err = capsys.readouterr().err
        assert f"pid {first.pid}" in err and "Traceback" not in err and err.count("\n") == 1
        assert first.poll() is None  # all of the above happened while the first run held DST
        assert first.wait(timeout=120) == 0, first.stderr.read().decode()
    finally:
        first.kill()
        first.wait()
    entries = manifest(dst)  # the refused runs changed nothing: the first run's outputs, all listed and intact
    assert len(entries) == 300 and json.loads((dst / "augkit-expand.json").read_text())["config"]["seed"] == 1
    for e in entries:
        assert hashlib.sha256((dst / e["output"]).read_bytes()).hexdigest() == e["sha256"]
    assert not [p.name for p in dst.iterdir() if p.name.startswith(".")]  # no lock or temp folder left


def test_item11_shards_still_run_side_by_side(tmp_path):
    """The lock is per shard: the shards of one split run at once (threads here; flock works per open file)."""
    import threading

    src = make_src(tmp_path / "src", 8)
    dst = tmp_path / "dst"
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            expand(src, dst, copies=2, shard=f"{i}/2", device="cpu", workers=0)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    ref = tmp_path / "ref"
    expand(src, ref, copies=2, device="cpu", workers=0)
    assert tree(dst, skip_parts=True) == tree(ref)


def test_item12_forged_part_entries_are_not_merged(src, tmp_path):
    dst = tmp_path / "dst"
    expand(src, dst, copies=1, seed=3, shard="1/2", device="cpu", workers=0)
    part = dst / "manifest.part-1-of-2.jsonl"
    real = [json.loads(x) for x in part.read_text().splitlines()][0]
    outside = tmp_path / "evil.png"
    outside.write_bytes(b"evil")
    sha = hashlib.sha256(b"evil").hexdigest()
    aug = lambda k: real["output"].replace("_aug1.", f"_aug{k}.")  # noqa: E731
    (dst / aug(9)).symlink_to(outside)  # inside DST by name, outside by place
    forged = [
        {**real, "output": "../evil.png", "sha256": sha},  # outside DST: malformed, dropped on reading
        {**real, "source": "../../etc/passwd"},  # likewise
        {**real, "copy": 7, "output": "astronaut/x_aug7.png", "sha256": sha},  # not the name of that copy
        {**real, "copy": 2, "output": aug(2), "sha256": "0" * 64},  # no such file
        {**real, "copy": 9, "output": aug(9), "sha256": sha},  # a symlink out of DST
        {**real, "sha256": "0" * 64},  # a duplicate of a real entry with another sha256: the real one stays
    ]
    with part.open("a") as f:
        f.writelines(json.dumps(e) + "\n" for e in forged)
    s = expand(src, dst, copies=1, seed=3, shard="0/2", device="cpu", workers=0)
    assert s.merged and s.rejected == 3
    entries = manifest(dst)
    assert all(e["output"] != "../evil.png" and e["source"] != "../../etc/passwd" for e in entries)
    assert {e["sha256"] for e in entries if e["output"] == real["output"]} == {real["sha256"]}
    assert len(entries) == 8 and {e["copy"] for e in entries} == {1}
    info = json.loads((dst / "augkit-expand.json").read_text())
    assert len(info["rejected"]) == 3 and any("outside DST" in r["reason"] for r in info["rejected"])


def _children(pid: int) -> list[int]:
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d))
    return kids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_item13_a_killed_worker_ends_the_run_with_exit_1_and_no_orphans(tmp_path):
    src = make_src(tmp_path / "src", 60, lo=56, hi=64)
    dst = tmp_path / "dst"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cli(src, dst, "--copies", "8", "--workers", "2", "--batch-size", "2"), cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        workers: list[int] = []

        def found() -> bool:  # forked workers share the main process's command line
            try:
                cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
                workers[:] = [k for k in _children(proc.pid) if Path(f"/proc/{k}/cmdline").read_bytes() == cmdline]
            except OSError:
                return False
            return len(workers) == 2

        assert _wait_for(found, 60)
        os.kill(workers[0], signal.SIGKILL)  # as the OOM killer would
        rc = proc.wait(timeout=60)  # it used to hang here forever
        err = proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()
    assert rc == 1 and "worker process died" in err and "Traceback" not in err, err
    assert _wait_for(lambda: not any(_alive(w) for w in workers), 10), "a worker outlived the run"
    for line in (dst / "manifest.part-0-of-1.jsonl").read_text().splitlines():  # what was finished is recorded whole
        json.loads(line)


def test_item13_workers_do_not_outlive_a_killed_main_process(tmp_path):
    src = make_src(tmp_path / "src", 60, lo=56, hi=64)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cli(src, tmp_path / "dst", "--copies", "8", "--workers", "2"), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        kids: list[int] = []

        def found() -> bool:
            kids[:] = _children(proc.pid)
            return len(kids) >= 2

        assert _wait_for(found, 60)
    finally:
        proc.kill()  # SIGKILL: no cleanup code runs in it
        proc.wait()
    assert _wait_for(lambda: not any(_alive(k) for k in kids), 10), "a worker outlived its killed parent"


def test_item14_fifo_named_png_is_not_listed(tmp_path):
    src = make_src(tmp_path / "src", 3)
    os.mkfifo(src / "astronaut" / "pipe.png")
    (src / "astronaut" / "link.png").symlink_to(src / "coffee" / "001.png")  # a symlink to a file counts
    r = subprocess.run(_cli(src, tmp_path / "dst", "--copies", "1", "--workers", "0", "--on-error", "skip"), cwd=ROOT,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "4 images" in r.stdout and not (tmp_path / "dst" / "astronaut" / "pipe_aug1.png").exists()
    assert (tmp_path / "dst" / "astronaut" / "link_aug1.png").is_file()


def test_item17_pixel_cap_and_large_images_batched_alone(tmp_path, monkeypatch):
    src = make_src(tmp_path / "src", 6, lo=48, hi=48)
    with pytest.raises(ExpandError, match=r"000\.png.*max_pixels=2,000"):
        expand(src, tmp_path / "a", copies=1, device="cpu", workers=0, max_pixels=2000)
    s = expand(src, tmp_path / "b", copies=1, device="cpu", workers=0, max_pixels=2000, on_error="skip")
    assert len(s.errors) == 6 and s.written == 0

    ex = sys.modules["augkit.data.expand"]  # the module (augkit.data.expand the name is the function)

    sizes = []

    class Recording(ak.Pipeline):
        def __call__(self, x, **kw):
            sizes.append(x.shape[0])
            return super().__call__(x, **kw)

    monkeypatch.setattr(ex, "BATCH_PIXELS", 2 * 48 * 48)  # "huge" = more than two of these per call
    expand(src, tmp_path / "c", copies=4, pipeline=Recording(FLIP.ops, seed=0), batch_size=32, device="cpu", workers=0)
    assert sum(sizes) == 24 and max(sizes) <= 2
    with pytest.raises(ValueError, match="max_pixels must be an integer >= 1"):
        expand(src, tmp_path / "d", copies=1, max_pixels=0)


def test_item19_non_utf8_and_long_nested_names(tmp_path):
    src = make_src(tmp_path / "src", 2)
    raw = os.fsdecode(b"caf\xe9-\xff.png")  # not UTF-8: surrogate escapes in Python
    shutil.copy(src / "astronaut" / "000.png", src / "astronaut" / raw)
    deep = src / ("a" * 200) / ("b" * 200)
    deep.mkdir(parents=True)
    shutil.copy(src / "coffee" / "001.png", deep / ("c" * 200 + ".png"))
    for workers in (0, 2):
        dst = tmp_path / f"dst{workers}"
        s = expand(src, dst, copies=2, device="cpu", workers=workers)
        assert s.written == 8 and not s.errors
        assert (dst / "astronaut" / os.fsdecode(b"caf\xe9-\xff_aug2.png")).is_file()
        assert (dst / ("a" * 200) / ("b" * 200) / ("c" * 200 + "_aug1.png")).is_file()
    assert tree(tmp_path / "dst0") == tree(tmp_path / "dst2")
    # the key of a UTF-8 name is unchanged: the bytes hashed are the name's UTF-8 bytes
    digest = hashlib.sha256("augkit-expand\0003\0cls/é.png\0001".encode()).digest()
    assert copy_key(3, "cls/é.png", 1) == int.from_bytes(digest[:8], "little") >> 1


def test_item20_damaged_manifest_lines_and_info_are_handled(src, reference, tmp_path):
    dst = tmp_path / "dst"
    shutil.copytree(reference, dst)
    with (dst / "manifest.jsonl").open("ab") as f:
        f.write(b'{"source": "astronaut/000.png"}\n')  # no output
        f.write(b'{"source": ["a"], "copy": 1, "output": "x.png", "sha256": "' + b"0" * 64 + b'"}\n')  # unhashable
        f.write(b"\xff\xfe not utf-8\n")
        f.write(b"[1, 2]\n")
        f.write(b'{"source": "a.png", "copy": "1", "output": {"o": 1}, "sha256": 5}\n')
    s = expand(src, dst, copies=COPIES, seed=3, device="cpu")
    assert (s.written, s.skipped) == (0, 8 * COPIES)
    assert tree(dst) == tree(reference)  # the merge rewrote the manifest without them
    for bad in ('{"config": [1]}', "[1, 2]", '{"config": {"seed": 3}', "\udcff"):
        (dst / "augkit-expand.json").write_bytes(bad.encode(errors="surrogateescape"))
        with pytest.raises(ValueError, match=r"augkit-expand\.json.*(wrong shape|not valid JSON).*overwrite"):
            expand(src, dst, copies=COPIES, seed=3, device="cpu")
    assert main(["expand", str(src), str(dst), "--copies", str(COPIES), "--seed", "3", "--quiet"]) == 1


def test_item25_failed_manifest_write_leaves_whole_lines_only(src, tmp_path, monkeypatch):
    real_write = os.write
    calls = {"n": 0}

    def short_then_full_disk(fd, data):
        calls["n"] += 1
        if calls["n"] == 200:  # a few lines in
            real_write(fd, bytes(data)[:10])
            raise OSError(28, "No space left on device")
        return real_write(fd, bytes(data)[:7])  # short writes, as a nearly full disk may do

    dst = tmp_path / "dst"
    monkeypatch.setattr(os, "write", short_then_full_disk)
    with pytest.raises(OSError, match="No space left"):
        expand(src, dst, copies=COPIES, seed=3, device="cpu", workers=0, batch_size=1)
    monkeypatch.undo()
    lines = (dst / "manifest.part-0-of-1.jsonl").read_text().splitlines()
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)
    s = expand(src, dst, copies=COPIES, seed=3, device="cpu", workers=0)
    assert s.written + s.skipped == 8 * COPIES


def test_issue16_keep_format_and_summary_lines(tmp_path, capsys):
    src = make_src(tmp_path / "src", 3)
    Image.open(src / "astronaut" / "000.png").convert("RGB").save(src / "astronaut" / "jay.jpeg", quality=90)
    dst = tmp_path / "dst"
    assert main(["expand", str(src), str(dst), "--copies", "1", "--workers", "0"]) == 0
    out, err = capsys.readouterr()
    assert "images/s" in out and "100%" in err and re.search(r"\d\d:\d\d<\d\d:\d\d", err)  # a bar with the time left
    with Image.open(dst / "astronaut" / "jay_aug1.jpeg") as im:
        assert im.format == "JPEG"
    with Image.open(dst / "astronaut" / "000_aug1.png") as im:
        assert im.format == "PNG"
    info = json.loads((dst / "augkit-expand.json").read_text())
    assert info["config"]["format"] == "keep" and info["config"]["quality"] == 95
    assert main(["expand", str(src), str(dst), "--copies", "1", "--workers", "0"]) == 0
    out, err = capsys.readouterr()
    assert "images/s" not in out and "nothing to do" in out and "0.0" not in out and "%" not in err
