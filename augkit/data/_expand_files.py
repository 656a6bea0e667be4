"""File side of ``augkit expand``: decode/encode in workers, atomic writes, manifests, the DST lock.

Nothing here imports torch's math: workers only decode, hash and encode.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import os
import posixpath
import uuid
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
KEPT_EXTENSIONS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}  # format="keep"
MANIFEST = "manifest.jsonl"
INFO = "augkit-expand.json"
LOCK = ".augkit-expand.lock"


# names ----------------------------------------------------------------------------------------------
def out_format(source: str, fmt: str) -> tuple[str, str]:
    """(encoder, extension) of the outputs of ``source``: ``fmt``'s, or with "keep" the source's own.

    "keep": .png/.jpg/.jpeg/.webp keep their format and extension (as spelled); other formats
    (.bmp, .gif, .tif, ...) become PNG, which loses nothing.
    """
    if fmt != "keep":
        return fmt, FORMATS[fmt]
    ext = posixpath.splitext(source)[1]
    kept = KEPT_EXTENSIONS.get(ext.lower())
    return (kept, ext) if kept else ("png", ".png")


def output_name(source: str, copy: int, fmt: str) -> str:
    """``cls/img.jpg`` -> ``cls/img_aug{copy}.{ext}``; copy 0 is the original, ``cls/img_orig.{ext}``."""
    parent, _, name = source.rpartition("/")
    stem = name.rsplit(".", 1)[0]
    tail = "_orig" if copy == 0 else f"_aug{copy}"
    ext = out_format(source, fmt)[1]
    return f"{parent}/{stem}{tail}{ext}" if parent else f"{stem}{tail}{ext}"


def mask_name(output: str) -> str:
    """``cls/img_aug3.jpg`` -> ``cls/img_aug3_mask.png``: where a copy's mask goes (``--annotations``)."""
    return output.rsplit(".", 1)[0] + "_mask.png"


def entry_files(e: dict[str, Any]) -> list[tuple[str, str]]:
    """(file, sha256) of every file a manifest entry owns: its output, and its mask if it has one."""
    files = [(e["output"], e["sha256"])]
    if "mask" in e:
        files.append((e["mask"], e["mask_sha256"]))
    return files


def safe_relative(path: Any) -> bool:
    """Whether ``path`` is a plain relative posix path inside its root (no '..', not absolute, no NUL)."""
    if not isinstance(path, str) or not path or "\0" in path or "\\" in path or path.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


# worker side: decode, encode, atomic write -------------------------------------------------------------
def decode_image(path: str, max_pixels: int | None = None) -> tuple[np.ndarray | None, str | None, dict[str, Any] | None]:
    """Image file -> (HWC uint8 RGB or HW uint8 grey, None, fingerprint), or (None, message, fingerprint).

    Every mode goes through ``augkit.imageconv.pil_to_array`` (alpha dropped): grey stays grey,
    16-bit is scaled to 8 bits, float in [0, 1] is scaled by 255, anything else is refused.
    Images of more than ``max_pixels`` pixels are refused before their pixels are decoded. The
    fingerprint is the source's size, mtime and sha256, of the bytes decoded.
    """
    from PIL import Image

    from ..imageconv import pil_to_array

    fp = None
    try:
        with open(path, "rb") as f:  # one read: the bytes decoded are the bytes hashed
            st = os.fstat(f.fileno())
            data = f.read()
        fp = {"source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns, "source_sha256": hashlib.sha256(data).hexdigest()}
        with Image.open(_NamedBytes(data, os.path.basename(path))) as im:
            w, h = im.size
            if max_pixels is not None and w * h > max_pixels:
                return None, f"{w}x{h} = {w * h:,} pixels is more than max_pixels={max_pixels:,} (raise --max-pixels to process it)", fp
            im.load()
            return pil_to_array(im, "image", alpha=False), None, fp
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, DecompressionBombError)
        return None, f"{type(e).__name__}: {e}", fp


class _NamedBytes(io.BytesIO):
    """In-memory bytes that PIL's error messages name by the file's name, not a memory address
    (which differs between runs and would make two manifests of one tree differ)."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self._name = name

    def __repr__(self) -> str:
        return repr(self._name)


def source_fingerprint(path: Path, with_hash: bool) -> dict[str, Any] | None:
    """size and mtime of a source (and its sha256 if ``with_hash``), None if it cannot be read."""
    try:
        st = path.stat()
        fp: dict[str, Any] = {"source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns}
        if with_hash:
            fp["source_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        return fp
    except OSError:
        return None


def encode_write(pixels: np.ndarray, dst: str, out: str, tmp_dir: str, fmt: str, quality: int) -> str:
    """Encode as ``out``'s format, write to ``tmp_dir`` under a short name, rename onto ``dst/out``. Returns the sha256 hex."""
    from PIL import Image

    buf = io.BytesIO()
    enc = KEPT_EXTENSIONS.get(posixpath.splitext(out)[1].lower(), fmt)
    options: dict[str, dict[str, Any]] = {"png": {"format": "PNG", "compress_level": 1}, "jpg": {"format": "JPEG", "quality": quality}, "webp": {"format": "WEBP", "quality": quality}}
    Image.fromarray(pixels).save(buf, **options[enc])
    data = buf.getvalue()
    target = os.path.join(dst, out)
    tmp = os.path.join(tmp_dir, f"{os.getpid()}-{uuid.uuid4().hex}.tmp")  # short: any depth or length of ``out``
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, target)
    return hashlib.sha256(data).hexdigest()


class Now:
    """Stands in for a Future when there are no workers."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value

    def done(self) -> bool:
        return True


class Inline:
    """Stands in for a ProcessPoolExecutor when there are no workers."""

    def submit(self, fn: Any, *args: Any) -> Now:
        return Now(fn(*args))

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None: ...


# manifest files ---------------------------------------------------------------------------------------
def sort_key(entry: dict[str, Any]) -> tuple[str, int]:
    return entry["source"], -1 if entry.get("copy") is None else entry["copy"]


def valid_entry(e: Any) -> bool:
    """The shape of a manifest entry: an output (with sha256) or an error line (output None)."""
    if not isinstance(e, dict) or not safe_relative(e.get("source")):
        return False
    if "error" in e:
        return isinstance(e["error"], str) and e.get("output") is None
    copy = e.get("copy")
    return (
        isinstance(copy, int) and not isinstance(copy, bool) and copy >= 0
        and safe_relative(e.get("output"))
        and isinstance(e.get("sha256"), str) and len(e["sha256"]) == 64
        and ("mask" not in e or e["mask"] == mask_name(e["output"]) and isinstance(e.get("mask_sha256"), str) and len(e["mask_sha256"]) == 64)
    )  # fmt: skip


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """Valid entries of a manifest; a line cut short by a crash, invalid UTF-8 or a malformed entry is skipped."""
    try:
        raw = path.read_bytes()
    except OSError:
        return []
    entries = []
    for line in raw.splitlines():
        try:
            entry = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if valid_entry(entry):
            entries.append(entry)
    return entries


def read_info(path: Path) -> dict[str, Any] | None:
    """An ``augkit-expand*.json`` as a dict with a dict ``config``; None if missing; ValueError if malformed."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ValueError(f"cannot read {path} ({type(e).__name__}: {e})") from None
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        raise ValueError(f"{path} has the wrong shape: expected an object with a 'config' object")
    return info


def write_atomic(path: Path, text: str, tmp_dir: Path) -> None:
    """Write ``text`` to ``tmp_dir`` (same file system), then rename it onto ``path``."""
    tmp = tmp_dir / f"{uuid.uuid4().hex}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)


def append_line(fd: int, line: str) -> None:
    """Append one whole line to the file open (O_APPEND) at ``fd``: short writes are continued; on an
    error (a full disk) the file is cut back to where the line began, so no torn line stays."""
    data = line.encode()
    start = os.fstat(fd).st_size
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            if n <= 0:
                raise OSError(errno.EIO, "os.write wrote nothing")
            view = view[n:]
    except OSError:
        try:
            os.ftruncate(fd, start)
        except OSError:
            pass
        raise


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
    hint = "pass overwrite=True (--overwrite) to replace it"
    for p in ours:
        if p.suffix != ".json":
            continue
        try:
            old = read_info(p)
        except ValueError as e:
            raise ValueError(f"{e}; {hint}") from None
        if old is None:
            continue
        diff = sorted(k for k in set(config) | set(old["config"]) if config.get(k) != old["config"].get(k))
        if diff:
            raise ValueError(f"DST {str(dst)!r} was made with different settings ({', '.join(diff)} differ, see {p.name}); {hint}, or choose another DST")


def verify_entry(dst: Path, e: dict[str, Any], fmt: str, trusted: set[tuple[str, str]]) -> str | None:
    """Why a merged entry must not be listed (None if it may): its name, place and bytes are checked."""
    if not valid_entry(e):
        return "malformed entry"
    if "error" in e:
        return None
    if e["output"] != output_name(e["source"], e["copy"], fmt):
        return f"output {e['output']!r} is not the name of copy {e['copy']} of {e['source']!r}"
    target = dst / e["output"]
    try:
        if not target.resolve().is_relative_to(dst.resolve()):
            return f"output {e['output']!r} lies outside DST"
    except (OSError, RuntimeError):
        return f"output {e['output']!r} cannot be resolved"
    for name, digest in entry_files(e):
        if (name, digest) not in trusted and sha256_file(dst / name) != digest:
            what = "output" if name == e["output"] else "mask"
            return f"{what} {name!r} is missing or does not have the recorded sha256"
    return None


def merge_parts(
    dst: Path, config: dict[str, Any], n_shards: int, n_sources: int, version: str, tmp_dir: Path, trusted: set[tuple[str, str]]
) -> tuple[bool, list[dict[str, str]]]:
    """If every shard of ``n_shards`` is complete with ``config``, write the merged manifest and info.

    Every entry of a part manifest is verified (``verify_entry``) unless this process wrote or
    verified it (``trusted``: (output, sha256) pairs); the rejected ones are left out and returned.
    """
    infos, entries = [], []
    for i in range(n_shards):
        try:
            info = read_info(dst / part_name(INFO, (i, n_shards)))
        except ValueError:
            return False, []
        if info is None or info.get("status") != "complete" or info["config"] != config:
            return False, []
        infos.append(info)
        entries += read_manifest(dst / part_name(MANIFEST, (i, n_shards)))
    kept: dict[tuple[Any, ...], dict[str, Any]] = {}
    rejected = []
    for e in entries:  # a duplicate is kept once, the first that passes
        key = (e["source"], e.get("copy"), e.get("output"))
        if key in kept or (e.get("stale") and not (dst / e["output"]).exists()):
            continue  # (a stale output another shard pruned is simply gone)
        why = verify_entry(dst, e, config["format"], trusted)
        if why is None:
            kept[key] = e
        else:
            rejected.append({"source": str(e.get("source")), "output": str(e.get("output")), "reason": why})
    entries = sorted(kept.values(), key=sort_key)
    errors = [{"source": e["source"], "error": e["error"]} for e in entries if "error" in e]
    stale = [e for e in entries if e.get("stale")]
    counts = {"sources": n_sources, "outputs": len(entries) - len(errors) - len(stale), "errors": len(errors)}
    if stale:
        counts["stale"] = len(stale)
    merged = {"augkit_version": version, "config": config, "counts": counts, "errors": errors}
    if rejected:
        merged["rejected"] = rejected
    write_atomic(dst / MANIFEST, manifest_text(entries), tmp_dir)
    write_atomic(dst / INFO, json.dumps(merged, indent=2, sort_keys=True) + "\n", tmp_dir)
    if n_shards == 1:  # one shard: the merged files say it all
        for name in (MANIFEST, INFO):
            (dst / part_name(name, (0, 1))).unlink(missing_ok=True)
    return True, rejected


# the lock -----------------------------------------------------------------------------------------------
class DstLock:
    """An exclusive ``flock`` on a file in DST, holding the owner's pid; released when the process ends.

    ``acquire`` raises ``RuntimeError`` naming the holder's pid if another process holds it (or,
    with ``blocking``, waits for it). The file is removed on ``release`` while still locked; a
    process that was waiting on the removed file sees another inode at the path and tries again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, what: str, blocking: bool = False) -> DstLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                raise RuntimeError(
                    f"{what} is in use by another augkit expand (pid {holder or 'unknown'}, lock {self.path}); "
                    "wait for it to finish or stop it"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)
            self.fd = None


def held_by_other(path: Path) -> str | None:
    """The pid text of the process holding the lock at ``path``, or None if no one holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(fd) or "unknown"
    finally:
        os.close(fd)
    return None


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
