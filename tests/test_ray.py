"""Ray Data: ``expand --engine ray`` equals the local engine (and survives a killed driver);
``ak.ray.Augment`` rows depend on their key only. One local Ray (2 CPUs) for the whole module."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import ray  # in the dev extra: these tests run, never skip
import ray.data
import torch
from PIL import Image

import augkit as ak
from augkit.cli import main
from augkit.data.expand import ExpandError, expand, to_uint8
from augkit.data.expand_ray import expand_ray
from augkit.images import sample_images

ROOT = Path(__file__).resolve().parents[1]
COPIES = 3


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def make_src(root: Path, n: int, lo: int = 24, hi: int = 40) -> Path:
    """root/<photo>/<i>.png from the bundled photos: mixed sizes, every 4th grey."""
    rng = np.random.default_rng(0)
    photos = list(sample_images().items())
    for i in range(n):
        name, im = photos[i % len(photos)]
        img = Image.fromarray(im).resize((int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))))
        img = img.convert("L") if i % 4 == 3 else img
        (root / name).mkdir(parents=True, exist_ok=True)
        img.save(root / name / f"{i:03d}.png")
    return root


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    return make_src(tmp_path_factory.mktemp("src"), 10)


@pytest.fixture(scope="module")
def reference(src, tmp_path_factory) -> dict[str, bytes]:
    dst = tmp_path_factory.mktemp("ref") / "out"
    expand(src, dst, copies=COPIES, seed=3, include_original=True, workers=0, device="cpu")
    return tree(dst)


# expand --engine ray -------------------------------------------------------------------------------
@pytest.mark.parametrize("actors", [1, 2])
def test_ray_engine_writes_the_local_engines_tree_byte_for_byte(src, reference, tmp_path, actors):
    s = expand_ray(src, tmp_path / "out", copies=COPIES, seed=3, include_original=True, workers=actors, batch_size=2)
    assert (s.sources, s.written, s.skipped, s.merged) == (10, 10 * (COPIES + 1), 0, True)
    assert s.device == f"ray ({actors} actor{'s' if actors > 1 else ''} on cpu)"
    assert tree(tmp_path / "out") == reference  # outputs, manifest.jsonl and augkit-expand.json
    again = expand_ray(src, tmp_path / "out", copies=COPIES, seed=3, include_original=True, workers=actors)
    assert (again.written, again.skipped) == (0, 10 * (COPIES + 1))  # resume: all verified, Ray not even needed


def test_ray_engine_unreadable_images_skip_like_local_or_fail_naming_them(tmp_path):
    src = make_src(tmp_path / "src", 4)
    (src / "astronaut" / "bad.png").write_bytes(b"not a png")
    local = expand(src, tmp_path / "local", copies=1, seed=2, on_error="skip", workers=0, device="cpu")
    remote = expand_ray(src, tmp_path / "ray", copies=1, seed=2, on_error="skip", workers=1)
    assert [e[0] for e in remote.errors] == [e[0] for e in local.errors] == ["astronaut/bad.png"]
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")  # the error (naming the file) is in both manifests alike
    with pytest.raises(ExpandError, match="cannot read image .*bad.png"):
        expand_ray(src, tmp_path / "fail", copies=1, seed=2, workers=1)


def test_ray_engine_writes_annotation_masks_and_targets_like_local(tmp_path):
    from test_targets_expand import PIPE, make  # SRC with masks, boxes and keypoints (docs/targets.md)

    src, ann = make(tmp_path)
    pipe = ak.Pipeline(PIPE, seed=0)
    expand(src, tmp_path / "local", copies=2, pipeline=pipe, annotations=ann, workers=0, device="cpu")
    expand_ray(src, tmp_path / "ray", copies=2, pipeline=pipe, annotations=ann, workers=1)
    local = tree(tmp_path / "local")
    assert sum("mask" in k for k in local) == 8  # 4 annotated sources x 2 copies
    assert tree(tmp_path / "ray") == local


def _alive_expand_actors() -> list[int]:
    """Pids of Ray actor processes of the expand engine on this machine."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and b"_ExpandActor" in (d / "cmdline").read_bytes() and (d / "stat").read_text().split()[2] != "Z":
                pids.append(int(d.name))
        except OSError:
            pass
    return pids


def test_killed_ray_driver_resumes_to_the_uninterrupted_tree(tmp_path):
    """SIGKILL a CLI driver (attached to this module's Ray) mid-run; the re-run completes identically."""
    src = make_src(tmp_path / "src", 24, lo=48, hi=64)
    ref = tmp_path / "ref"
    expand(src, ref, copies=2, seed=1, workers=0, device="cpu")
    dst = tmp_path / "dst"
    address = ray.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "augkit.cli", "expand", str(src), str(dst), "--copies", "2", "--seed", "1", "--quiet"]
    cmd += ["--engine", "ray", "--ray-address", address, "--workers", "1", "--batch-size", "1"]
    part = dst / "manifest.part-0-of-1.jsonl"
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if part.is_file() and part.read_text().count("\n") >= 4:
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"the driver ended before it was killed: {proc.stderr.read().decode()[-2000:]}"
        assert _alive_expand_actors()  # its actor is at work
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 60  # the driver's death ends its Ray job: Ray stops its actors
    while _alive_expand_actors() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive_expand_actors()
    info = json.loads((dst / "augkit-expand.part-0-of-1.json").read_text())
    recorded = part.read_text().count("\n")
    assert info["status"] == "running" and 4 <= recorded < 48  # killed mid-run
    assert not (dst / "manifest.jsonl").exists()
    assert main(cmd[3:]) == 0  # the same command again, in this process
    assert tree(dst) == tree(ref)


def test_ray_engine_bad_input(src, tmp_path, capsys):
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        expand_ray(src, tmp_path / "a", copies=1, workers=0)
    with pytest.raises(ValueError, match="num_gpus must be a number >= 0"):
        expand_ray(src, tmp_path / "a", copies=1, num_gpus=-1)
    with pytest.raises(ValueError, match="needs num_gpus > 0"):
        expand_ray(src, tmp_path / "a", copies=1, device="cuda")
    with pytest.raises(ValueError, match="ray_address must be 'auto', 'host:port'"):
        expand_ray(src, tmp_path / "a", copies=1, ray_address="nohost")
    assert not (tmp_path / "a").exists()
    assert main(["expand", str(src), str(tmp_path / "b"), "--copies", "1", "--ray-address", "auto"]) == 2  # usage
    assert "--ray-address only apply with --engine ray" in capsys.readouterr().err


def test_unreachable_ray_address_fails_within_seconds(src, tmp_path, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        start = time.monotonic()
        rc = main(["expand", str(src), str(tmp_path / "out"), "--copies", "1", "--engine", "ray", "--ray-address", address])
        assert rc == 1 and time.monotonic() - start < 10 and not (tmp_path / "out").exists()
        err = capsys.readouterr().err
        assert f"ray_address {address!r}: cannot reach 127.0.0.1:{port}" in err and "ray start --head" in err


def test_ray_engine_without_ray_says_how_to_install(src, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)
    rc = main(["expand", str(src), str(tmp_path / "out"), "--copies", "1", "--engine", "ray"])
    assert rc == 1 and "pip install 'augkit[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was written


# ak.ray.Augment --------------------------------------------------------------------------------------
def reference_key(value: int | str, seed: int, epoch: int = 0) -> int:
    """The documented key, computed here from hashlib and struct (not from augkit)."""
    if isinstance(value, str):
        kind, v = 1, int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little", signed=True)
    else:
        kind, v = 0, value
    raw = struct.pack("<5q", -3, seed, epoch, kind, v)
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little") % 2**63


def expected_row(pipe: ak.Pipeline, image: np.ndarray, key: int) -> np.ndarray:
    """One image through the pipeline alone, with the key's params."""
    x = torch.from_numpy(image.copy())
    x = x[None] if x.dim() == 2 else x.permute(2, 0, 1)
    y = to_uint8(pipe(x[None], params=pipe.sample_keyed([key])))[0]
    return y.permute(1, 2, 0).numpy().reshape(image.shape)


@pytest.fixture(scope="module")
def rows(photos) -> list[dict]:
    """Rows of mixed sizes (two of each), RGB and grey (H, W, 1), with string ids. (Ray itself
    reshapes a column that mixes 2-D and 3-D arrays, so grey images carry a channel axis.)"""
    out = []
    for i, im in enumerate(photos.values()):
        for j in range(2):
            img = np.asarray(Image.fromarray(im).resize((32, 32) if j == 0 else (24, 40)))
            out.append({"id": f"img-{i}-{j}", "image": img if i % 3 else img.mean(2, keepdims=True).astype(np.uint8)})
    return out


def test_augment_rows_match_the_pipeline_keyed_by_id_whatever_the_batch_size_or_actors(rows):
    pipe = ak.default_pipeline(5)
    by_batch = {}
    for batch_size, actors in ((1, 2), (3, 1)):
        ds = ray.data.from_items(rows, override_num_blocks=3).map_batches(
            ak.ray.Augment, fn_constructor_kwargs={"pipe": pipe, "device": "cpu"}, batch_size=batch_size,
            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
        )  # fmt: skip
        by_batch[batch_size] = {r["id"]: np.asarray(r["image"]) for r in ds.take_all()}
    assert by_batch[1].keys() == by_batch[3].keys() == {r["id"] for r in rows}
    changed = 0
    for r in rows:
        got = by_batch[1][r["id"]]
        assert got.dtype == np.uint8 and got.shape == r["image"].shape
        np.testing.assert_array_equal(got, by_batch[3][r["id"]])
        np.testing.assert_array_equal(got, expected_row(pipe, r["image"], reference_key(r["id"], 5)))
        changed += not np.array_equal(got, r["image"])
    assert changed == len(rows)  # noise alone changes every image


def test_augment_on_a_plain_numpy_batch_keys_ints_and_epochs():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    images[2] = images[0]
    pipe = ak.default_pipeline(2)
    ids = np.array([7, 3, 7, 100, -4])
    out = ak.ray.Augment(pipe, device="cpu")({"image": images, "id": ids, "label": np.arange(5)})
    assert out["image"].shape == (5, 16, 16, 3) and out["label"].tolist() == [0, 1, 2, 3, 4]
    for i, v in enumerate(ids.tolist()):
        np.testing.assert_array_equal(out["image"][i], expected_row(pipe, images[i], reference_key(v, 2)))
    np.testing.assert_array_equal(out["image"][0], out["image"][2])  # same image, same id: same output
    grey = np.empty(2, dtype=object)  # ragged: a 2-D grey image and an RGB one of another size
    grey[0], grey[1] = images[0, :, :, 0], images[1, :12]
    mixed = ak.ray.Augment(pipe, device="cpu")({"image": grey, "id": ids[:2]})
    assert [m.shape for m in mixed["image"]] == [(16, 16), (12, 16, 3)]
    for i in range(2):
        np.testing.assert_array_equal(mixed["image"][i], expected_row(pipe, grey[i], reference_key(int(ids[i]), 2)))
    later = ak.ray.Augment(pipe, device="cpu", epoch=1)({"image": images, "id": ids})
    assert not np.array_equal(later["image"], out["image"])  # a new epoch, new params
    np.testing.assert_array_equal(later["image"][0], expected_row(pipe, images[0], reference_key(7, 2, epoch=1)))


def test_augment_streams_into_torch_batches_as_in_the_docs(src):
    """docs/scale.md's example: read_images, paths as keys, labels from folders -> Augment -> torch batches."""
    classes = sorted(p.name for p in src.iterdir())
    label = lambda row: {**row, "label": classes.index(row["path"].split("/")[-2])}  # noqa: E731
    images = ray.data.read_images(str(src), size=(32, 32), mode="RGB", include_paths=True).map(label)
    pipe = ak.default_pipeline(seed=0)
    kwargs = dict(batch_size=4, compute=ray.data.ActorPoolStrategy(size=1))
    batches = images.map_batches(ak.ray.Augment, fn_constructor_kwargs=dict(pipe=pipe, key_column="path", epoch=0), **kwargs)
    labels = []
    for batch in batches.select_columns(["image", "label"]).iter_torch_batches(batch_size=4, device="cpu"):
        x = batch["image"].permute(0, 3, 1, 2).float() / 255  # (B, 3, 32, 32) in [0, 1]
        assert x.shape[1:] == (3, 32, 32) and 0 <= x.min() and x.max() <= 1
        labels += batch["label"].tolist()
    expected_labels = [classes.index(p.parent.name) for p in src.rglob("*.png")]
    assert sorted(labels) == sorted(expected_labels)
    # each row is keyed by its path: equal to the pipeline alone on that image with that key and epoch
    originals = {r["path"]: r["image"] for r in images.take_all()}
    epoch1 = images.map_batches(ak.ray.Augment, fn_constructor_kwargs=dict(pipe=pipe, key_column="path", epoch=1), **kwargs)
    for row in epoch1.take_all():
        path, original = row["path"], originals[row["path"]]
        np.testing.assert_array_equal(row["image"], expected_row(pipe, original, reference_key(path, 0, epoch=1)))
        assert not np.array_equal(row["image"], expected_row(pipe, original, reference_key(path, 0, epoch=0)))


def test_augment_bad_input():
    pipe = ak.default_pipeline(0)
    aug = ak.ray.Augment(pipe, device="cpu")
    images = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(KeyError, match="no key_column 'id'"):
        aug({"image": images, "name": np.array(["a", "b"])})
    with pytest.raises(KeyError, match="no image_column 'image'"):
        aug({"img": images, "id": np.arange(2)})
    with pytest.raises(TypeError, match="must be uint8"):
        aug({"image": images.astype(np.float32), "id": np.arange(2)})
    with pytest.raises(TypeError, match="key values must be ints or strings, got float"):
        aug({"image": images, "id": np.array([0.5, 1.5])})
    with pytest.raises(ValueError, match="must not end in Normalize"):
        ak.ray.Augment(ak.Pipeline([ak.Zoom(), ak.Normalize()]))
    with pytest.raises(TypeError, match="pipe must be an ak.Pipeline"):
        ak.ray.Augment("flip")
