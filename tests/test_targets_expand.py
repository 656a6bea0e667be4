"""augkit expand with annotations: masks written beside the copies, boxes/keypoints in the manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import augkit as ak
from augkit.cli import main
from augkit.data.expand import expand

PIPE = [ak.HorizontalFlip(), ak.VerticalFlip(), ak.Zoom(scale=(0.8, 1.25)), ak.Contrast()]


def make(root: Path, n: int = 5) -> tuple[Path, Path]:
    """SRC with n images (sizes differ); boxes, keypoints and a class-id mask (box k holds k + 1)
    for all but the last; one mask lies inside SRC (it must not be taken for an image)."""
    rng = np.random.default_rng(0)
    src = root / "src"
    (src / "a").mkdir(parents=True)
    (root / "masks").mkdir()
    lines = []
    for i in range(n):
        h, w = 40 + 4 * (i % 2), 48
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(src / "a" / f"{i}.png")
        if i == n - 1:
            continue
        boxes = [[4, 4, 16, 20], [24, 10, 44, 30]]
        mask = np.zeros((h, w), np.uint8)
        for k, (x1, y1, x2, y2) in enumerate(boxes):
            mask[y1:y2, x1:x2] = k + 1
        where = src / "a" / f"{i}_m.png" if i == 0 else root / "masks" / f"{i}.png"
        Image.fromarray(mask).save(where)
        lines.append({"source": f"a/{i}.png", "mask": str(where.relative_to(root)), "boxes": boxes, "labels": ["cat", "dog"],
                      "keypoints": [[10.0, 12.0], [34.0, 20.0]]})
    ann = root / "ann.jsonl"
    ann.write_text("".join(json.dumps(a) + "\n" for a in lines))
    return src, ann


def _manifest(dst: Path) -> list[dict]:
    return [json.loads(line) for line in (dst / "manifest.jsonl").read_text().splitlines()]


def test_expand_writes_masks_and_targets_that_match(tmp_path):
    src, ann = make(tmp_path)
    dst = tmp_path / "dst"
    pipe = ak.Pipeline(PIPE, seed=0)
    s = expand(src, dst, copies=3, pipeline=pipe, annotations=ann, workers=0, device="cpu", batch_size=4)
    assert s.sources == 5 and s.written == 15  # the mask inside SRC is not a source
    entries = _manifest(dst)
    with_targets = [e for e in entries if "targets" in e]
    assert len(with_targets) == 12 and all("mask" in e for e in with_targets)
    assert all("targets" not in e and "mask" not in e for e in entries if e["source"] == "a/4.png")
    checked = 0
    for e in with_targets:
        mask = np.array(Image.open(dst / e["mask"]))
        img = Image.open(dst / e["output"])
        assert mask.shape == (img.height, img.width)
        t = e["targets"]
        assert t["labels"] == [["cat", "dog"][k] for k in t["box_keep"]] and len(t["keypoints_visible"]) == 2
        for box, k in zip(t["boxes"], t["box_keep"]):
            ys, xs = np.nonzero(mask == k + 1)
            np.testing.assert_allclose(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1.0)
            checked += 1
    assert checked >= 20
    # the same copies whatever the batch size: identical mask files and targets
    again = tmp_path / "again"
    expand(src, again, copies=3, pipeline=pipe, annotations=ann, workers=0, device="cpu", batch_size=1)
    assert sorted(map(json.dumps, (_strip(e) for e in _manifest(again)))) == sorted(map(json.dumps, (_strip(e) for e in entries)))


def _strip(e: dict) -> dict:
    return {k: v for k, v in e.items() if k not in ("sha256",)}


def test_cli_annotations_and_bad_annotation_files(tmp_path):
    src, ann = make(tmp_path, 3)
    assert main(["expand", str(src), str(tmp_path / "d"), "--copies", "1", "--workers", "0", "--device", "cpu",
                 "--annotations", str(ann), "--quiet"]) == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source": "a/0.png", "box": []}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl line 1 has unknown key\(s\) \['box'\]"):
        expand(src, tmp_path / "e", copies=1, annotations=bad, workers=0, device="cpu")
    bad.write_text('{"source": "a/0.png", "boxes": [[5, 0, 1, 1]]}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl line 1 \(a/0.png\): boxes must be xyxy with x2 >= x1"):
        expand(src, tmp_path / "f", copies=1, annotations=bad, workers=0, device="cpu")


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(src: Path, dst: Path, ann: Path, **kw):
    return expand(src, dst, copies=2, pipeline=ak.Pipeline(PIPE, seed=0), annotations=ann, workers=0, device="cpu", **kw)


def test_resume_verifies_masks_and_rewrites_damaged_or_missing_ones(tmp_path):
    src, ann = make(tmp_path)
    ref = tmp_path / "ref"
    _run(src, ref, ann)
    dst = tmp_path / "dst"
    shutil.copytree(ref, dst)
    # a partial run: one masked copy was never recorded and its files never written
    lines = (dst / "manifest.jsonl").read_text().splitlines(keepends=True)
    n = next(i for i, x in enumerate(lines) if json.loads(x)["output"] == "a/3_aug2.png")
    last = json.loads(lines.pop(n))
    assert last["mask"] == "a/3_aug2_mask.png"
    (dst / "manifest.jsonl").write_text("".join(lines))
    (dst / last["output"]).unlink()
    (dst / last["mask"]).unlink()
    # and masks of recorded copies damaged: cut short, or gone, while their images are intact
    cut, gone = dst / "a" / "1_aug2_mask.png", dst / "a" / "2_aug1_mask.png"
    cut.write_bytes(cut.read_bytes()[:40])
    gone.unlink()
    s = _run(src, dst, ann)
    assert (s.written, s.skipped) == (3, 10 - 3)  # the unrecorded copy and the two with bad masks
    assert _tree(dst) == _tree(ref)  # same bytes everywhere, manifest included
    entries = _manifest(dst)
    assert len(entries) == 10 and len({e["output"] for e in entries}) == 10
    for e in entries:
        assert _sha(dst / e["output"]) == e["sha256"]
        if "mask" in e:
            assert _sha(dst / e["mask"]) == e["mask_sha256"]


def test_merge_rejects_another_shards_entry_whose_mask_is_damaged(tmp_path):
    src, ann = make(tmp_path)
    dst = tmp_path / "dst"
    _run(src, dst, ann, shard="1/2")
    part = [json.loads(x) for x in (dst / "manifest.part-1-of-2.jsonl").read_text().splitlines()]
    victim = next(e for e in part if "mask" in e)
    (dst / victim["mask"]).write_bytes(b"not a png")
    s = _run(src, dst, ann, shard="0/2")  # the last shard merges, verifying the other shard's files
    assert s.merged and s.rejected == 1
    info = json.loads((dst / "augkit-expand.json").read_text())
    assert info["rejected"] == [{"source": victim["source"], "output": victim["output"],
                                 "reason": f"mask {victim['mask']!r} is missing or does not have the recorded sha256"}]
    assert victim["output"] not in {e["output"] for e in _manifest(dst)}


def test_prune_removes_the_masks_of_stale_outputs(tmp_path):
    src, ann = make(tmp_path)
    dst = tmp_path / "dst"
    _run(src, dst, ann)
    gone = ["a/1_aug1.png", "a/1_aug1_mask.png", "a/1_aug2.png", "a/1_aug2_mask.png"]
    assert all((dst / f).is_file() for f in gone)
    (src / "a" / "1.png").unlink()
    s = _run(src, dst, ann)
    assert s.stale == ("a/1_aug1.png", "a/1_aug2.png") and not s.pruned
    assert all((dst / f).is_file() for f in gone)  # reported, kept
    s = _run(src, dst, ann, prune=True)
    assert s.pruned and s.stale == ("a/1_aug1.png", "a/1_aug2.png")
    assert not any((dst / f).exists() for f in gone)
    entries = _manifest(dst)
    owned = {e["output"] for e in entries} | {e["mask"] for e in entries if "mask" in e}
    assert owned == {p.relative_to(dst).as_posix() for p in (dst / "a").iterdir()}  # no orphans, nothing missing
    assert all(_sha(dst / e["mask"]) == e["mask_sha256"] for e in entries if "mask" in e)
