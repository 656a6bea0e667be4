"""PIL image -> 8-bit numpy array: the one conversion every entry point uses (no torch).

``pipe(pil_image)``, the data module (``to_chw_uint8``) and ``augkit expand`` all read PIL
images through ``pil_to_array``, so a palette, YCbCr, HSV, CMYK, 16-bit or float image means the
same everywhere: its colours (never palette indices or raw channels), scaled to 8 bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["pil_to_array", "is_pil", "PIL_MODES"]

_KEPT = ("L", "RGB", "RGBA")
_TO_RGB = ("P", "CMYK", "YCbCr", "HSV", "RGBX")  # colours, no alpha of their own
_WITH_ALPHA = ("PA", "LA", "La", "RGBa")  # -> RGBA (alpha kept) or their colours without alpha
_SIXTEEN = ("I;16", "I;16L", "I;16B", "I;16N")
PIL_MODES = _KEPT + _TO_RGB + _WITH_ALPHA + _SIXTEEN + ("1", "I", "F")
FLOAT_TOLERANCE = 1e-3  # as augkit.ops.FLOAT_TOLERANCE


def is_pil(x: Any) -> bool:
    """Whether ``x`` is a PIL image (False when Pillow is not importable)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, Image.Image)


def pil_to_array(img: Any, what: str = "image", alpha: bool = True) -> np.ndarray:
    """A PIL image -> writable numpy uint8 (H, W) for grey or (H, W, 3|4) for colour.

    Args:
        img: a PIL image in any mode of ``PIL_MODES``.
        what: names the image in error messages.
        alpha: keep an alpha channel as RGBA (``False``: drop it, grey stays (H, W)).

    Grey stays grey: ``1`` -> 0/255, 16-bit ``I;16*`` and ``I`` holding 0..65535 -> round(v / 257),
    ``F`` holding [0, 1] -> round(255 v). ``P``, ``CMYK``, ``YCbCr``, ``HSV`` -> RGB colours.
    Raises ValueError for values outside those ranges and TypeError for other modes (e.g. LAB).
    """
    mode = img.mode
    if mode in _KEPT:
        if mode == "RGBA" and not alpha:
            img = img.convert("RGB")
        return np.array(img, dtype=np.uint8)
    if mode in _TO_RGB:
        if mode == "P" and alpha and "transparency" in img.info:
            return np.array(img.convert("RGBA"), dtype=np.uint8)
        return np.array(img.convert("RGB"), dtype=np.uint8)
    if mode in _WITH_ALPHA:
        if alpha:
            return np.array(img.convert("RGBA"), dtype=np.uint8)
        return np.array(img.convert("RGBA"), dtype=np.uint8)[..., :3] if mode in ("PA", "RGBa") else _grey_of(img)
    if mode == "1":
        return np.array(img.convert("L"), dtype=np.uint8)
    if mode in _SIXTEEN or mode == "I":
        v = np.asarray(img).astype(np.int64)  # (H, W)
        lo, hi = (int(v.min()), int(v.max())) if v.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ValueError(f"{what}: 32-bit integer image (PIL mode {mode!r}) holds values in [{lo}, {hi}]; expected 0..65535 (16-bit)")
        return ((v * 255 + 32767) // 65535).astype(np.uint8)  # round(v / 257), exact in integers
    if mode == "F":
        f = np.asarray(img, dtype=np.float32)
        flo, fhi = (float(f.min()), float(f.max())) if f.size else (0.0, 0.0)
        if not (flo >= -FLOAT_TOLERANCE and fhi <= 1 + FLOAT_TOLERANCE):
            raise ValueError(f"{what}: float image (PIL mode 'F') holds values in [{flo:.4g}, {fhi:.4g}]; expected [0, 1]")
        return np.rint(np.clip(f, 0.0, 1.0) * 255).astype(np.uint8)
    raise TypeError(
        f"{what}: PIL mode {mode!r} is not supported; expected one of {', '.join(PIL_MODES)} "
        "(convert it first, e.g. with PIL.ImageCms for LAB)"
    )


def _grey_of(img: Any) -> np.ndarray:
    """The grey plane of an LA / La image (alpha dropped)."""
    return np.array(img.getchannel("L"), dtype=np.uint8)
