"""File side of ``augkit expand``: decode/encode in workers, atomic writes, manifests. No torch."""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
MANIFEST = "manifest.jsonl"
INFO = "augkit-expand.json"


# worker side: decode, encode, atomic write (no torch) ---------------------------------------------
def decode_image(path: str) -> tuple[np.ndarray | None, str | None]:
    """Image file -> (HWC uint8 RGB or HW uint8 grey, None), or (None, message) if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            im = im if im.mode in ("L", "RGB") else im.convert("RGB")
            return np.asarray(im, dtype=np.uint8).copy(), None
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, DecompressionBombError)
        return None, f"{type(e).__name__}: {e}"


def encode_write(pixels: np.ndarray, dst: str, out: str, tmp_dir: str, fmt: str, quality: int) -> str:
    """Encode, write to ``tmp_dir``, rename onto ``dst/out`` atomically. Returns the sha256 hex."""
    from PIL import Image

    buf = io.BytesIO()
    options: dict[str, dict[str, Any]] = {"png": {"format": "PNG", "compress_level": 1}, "jpg": {"format": "JPEG", "quality": quality}, "webp": {"format": "WEBP", "quality": quality}}
    Image.fromarray(pixels).save(buf, **options[fmt])
    data = buf.getvalue()
    target = os.path.join(dst, out)
    tmp = os.path.join(tmp_dir, f"{os.getpid()}-{out.replace('/', '__')}")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, target)
    return hashlib.sha256(data).hexdigest()


class Now:
    """Stands in for an AsyncResult when there are no workers."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value

    def ready(self) -> bool:
        return True


class Inline:
    def apply_async(self, fn: Any, args: tuple) -> Now:
        return Now(fn(*args))

    def close(self) -> None: ...

    def join(self) -> None: ...

    def terminate(self) -> None: ...


# manifest files -----------------------------------------------------------------------------------
def sort_key(entry: dict[str, Any]) -> tuple[str, int]:
    return entry["source"], -1 if entry.get("copy") is None else entry["copy"]


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """Entries of a manifest; a line cut short by a crash is ignored."""
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "source" in entry:
            entries.append(entry)
    return entries


def write_atomic(path: Path, text: str, tmp_dir: Path) -> None:
    """Write ``text`` to ``tmp_dir`` (same file system), then rename it onto ``path``."""
    tmp = tmp_dir / f"{uuid.uuid4().hex}-{path.name}"
    tmp.write_text(text)
    os.replace(tmp, path)


def manifest_text(entries: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in sorted(entries, key=sort_key))


def sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def part_name(name: str, shard: tuple[int, int]) -> str:
    stem, ext = name.rsplit(".", 1)
    return f"{stem}.part-{shard[0]}-of-{shard[1]}.{ext}"


def check_config(dst: Path, config: dict[str, Any], overwrite: bool) -> None:
    """Refuse a DST made with other settings (unless ``overwrite``: then forget its manifests)."""
    ours = sorted(dst.glob("augkit-expand*.json")) + sorted(dst.glob("manifest*.jsonl"))
    if overwrite:
        for p in ours:
            p.unlink()
        return
    for p in ours:
        if p.suffix != ".json":
            continue
        try:
            old = json.loads(p.read_text())["config"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"cannot read {p} ({type(e).__name__}: {e}); pass overwrite=True (--overwrite) to replace it") from None
        diff = sorted(k for k in set(config) | set(old) if config.get(k) != old.get(k))
        if diff:
            raise ValueError(
                f"DST {str(dst)!r} was made with different settings ({', '.join(diff)} differ, see {p.name}); "
                "pass overwrite=True (--overwrite) to replace it, or choose another DST"
            )


def merge_parts(dst: Path, config: dict[str, Any], n_shards: int, n_sources: int, version: str, tmp_dir: Path) -> bool:
    """If every shard of ``n_shards`` is complete with ``config``, write the merged manifest and info."""
    infos, entries = [], []
    for i in range(n_shards):
        try:
            info = json.loads((dst / part_name(INFO, (i, n_shards))).read_text())
        except (OSError, ValueError):
            return False
        if info.get("status") != "complete" or info.get("config") != config:
            return False
        infos.append(info)
        entries += read_manifest(dst / part_name(MANIFEST, (i, n_shards)))
    unique = {(e["source"], e.get("copy"), e.get("output")): e for e in entries}
    entries = sorted(unique.values(), key=sort_key)
    errors = [{"source": e["source"], "error": e["error"]} for e in entries if "error" in e]
    merged = {
        "augkit_version": version,
        "config": config,
        "counts": {"sources": n_sources, "outputs": len(entries) - len(errors), "errors": len(errors)},
        "errors": errors,
    }
    write_atomic(dst / MANIFEST, manifest_text(entries), tmp_dir)
    write_atomic(dst / INFO, json.dumps(merged, indent=2, sort_keys=True) + "\n", tmp_dir)
    if n_shards == 1:  # one shard: the merged files say it all
        for name in (MANIFEST, INFO):
            (dst / part_name(name, (0, 1))).unlink(missing_ok=True)
    return True
