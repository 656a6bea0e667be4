"""Import an Albumentations pipeline: ``ak.Pipeline.from_albumentations(compose)``.

Table-driven: ``ROWS`` holds one ``Row`` per Albumentations transform name, with a function
from that transform's serialized arguments (what ``A.to_dict`` writes) to augkit ops. A new
augkit op is one more row (``register``). Containers (``Compose``, ``Sequential`` with
``p=1``) are flattened; anything without a row, or with arguments augkit cannot reproduce,
is collected, and one ``AlbumentationsImportError`` names them all. Where the import is
faithful up to a documented difference, a row warns once (``docs/ecosystem.md``).

Accepted sources: a live ``A.Compose`` (or any Albumentations transform), the dict
``A.to_dict`` returns, or a JSON / YAML file (or text) written by ``A.save``. Files are read
with ``yaml.safe_load``: no class named in the file is imported or instantiated.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .ops import (
    Affine,
    Brightness,
    CenterCrop,
    ColorJitter,
    Contrast,
    Equalize,
    Gamma,
    GaussianBlur,
    GaussianNoise,
    Grayscale,
    HorizontalFlip,
    Invert,
    Normalize,
    OneOf,
    Op,
    Posterize,
    RandomCrop,
    RandomResizedCrop,
    Resize,
    Rot90,
    Rotate,
    Solarize,
    SomeOf,
    VerticalFlip,
    Zoom,
)

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["Row", "ROWS", "register", "mapped", "from_albumentations", "AlbumentationsImportError", "Unsupported"]

Args = Mapping[str, Any]


class Unsupported(Exception):
    """Raised by a row's ``convert`` when these arguments have no augkit equivalent (the message says why)."""


class AlbumentationsImportError(ValueError):
    """Some transforms do not map; ``unsupported`` lists ``(position, name, reason)`` for each."""

    def __init__(self, unsupported: list[tuple[str, str, str]]) -> None:
        self.unsupported = unsupported
        items = "; ".join(f"[{pos}] {name}: {why}" for pos, name, why in unsupported)
        super().__init__(
            f"cannot import {len(unsupported)} Albumentations transform(s) into augkit: {items}. "
            f"Transforms with an augkit equivalent: {', '.join(mapped())}"
        )


@dataclass(frozen=True)
class Row:
    """One Albumentations transform: its class name, the conversion, and a difference to warn about once.

    ``convert(args)`` gets the transform's serialized arguments (``p`` included) and returns
    augkit ops (none for a transform that augkit does implicitly), or raises ``Unsupported``.
    ``warn(args)`` returns a message to warn once (per message), or ``None``.
    """

    name: str
    convert: Callable[[Args], list[Op]]
    warn: Callable[[Args], str | None] | None = None


ROWS: dict[str, Row] = {}
_WARNED: set[str] = set()


def mapped() -> list[str]:
    """The Albumentations transform names that import (rows that only explain why not are left out)."""
    return sorted(name for name, row in ROWS.items() if not getattr(row.convert, "never_maps", False))


def register(row: Row) -> Row:
    """Add (or replace) the row for ``row.name``."""
    ROWS[row.name] = row
    return row


# argument helpers ----------------------------------------------------------------------------
def _pair(args: Args, key: str) -> tuple[float, float]:
    v = args.get(key)
    try:
        lo, hi = (float(x) for x in v)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise Unsupported(f"{key} must be a (lo, hi) pair, got {v!r}") from None
    return lo, hi


def _is_zero(v: Any) -> bool:
    """True for None, 0, (0, 0) and {"x": (0, 0), "y": (0, 0)}."""
    if v is None:
        return True
    if isinstance(v, Mapping):
        return all(_is_zero(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        return all(_is_zero(x) for x in v)
    return isinstance(v, (int, float)) and float(v) == 0.0


def _p(args: Args) -> float:
    return float(args.get("p", 1.0))


def _require(args: Args, key: str, want: Any, why: str) -> None:
    if key in args and args[key] != want:
        raise Unsupported(f"{key}={args[key]!r} ({why}); augkit needs {key}={want!r}")


# rows ----------------------------------------------------------------------------------------
def _flip(cls: type[Op]) -> Callable[[Args], list[Op]]:
    return lambda a: [cls(p=_p(a))]


def _gauss_noise(a: Args) -> list[Op]:
    if "std_range" not in a:
        raise Unsupported(f"expected Albumentations 2 arguments (std_range), got {sorted(a)}")
    if not _is_zero(a.get("mean_range")):
        raise Unsupported(f"mean_range={a['mean_range']!r}: augkit's noise has mean 0")
    _require(a, "per_channel", True, "one noise value shared by the channels")
    _require(a, "noise_scale_factor", 1.0, "noise drawn at a lower resolution and upscaled")
    return [GaussianNoise(std=_pair(a, "std_range"), p=_p(a))]


def _normalize(a: Args) -> list[Op]:
    _require(a, "normalization", "standard", "another normalization formula")
    _require(a, "max_pixel_value", 255.0, "augkit divides uint8 by 255 and leaves float in [0, 1] as is")
    if _p(a) != 1.0:
        raise Unsupported(f"p={_p(a)}: augkit's Normalize always applies")
    return [Normalize(mean=_floats(a.get("mean")), std=_floats(a.get("std")))]


def _floats(v: Any) -> tuple[float, ...]:
    """A number or a sequence of numbers as a tuple (Normalize checks the values)."""
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def _all_of(ops: list[Op], p: float = 1.0) -> SomeOf:
    """Every op of ``ops``, in order, applied together with probability ``p``."""
    return SomeOf(tuple(replace(op, p=1.0) for op in ops), n=len(ops), p=p)


def _together(ops: list[Op], p: float) -> list[Op]:
    """``ops`` applied all together with probability ``p`` (one Albumentations transform made of several ops)."""
    if p == 1.0 or not ops:
        return [replace(op, p=1.0) for op in ops]
    if len(ops) == 1:
        return [replace(ops[0], p=p)]
    return [_all_of(ops, p)]


def _brightness_contrast(a: Args) -> list[Op]:
    _require(a, "brightness_by_max", True, "brightness relative to the image's mean instead of the maximum value")
    _require(a, "ensure_safe_range", False, "factors narrowed per image to avoid clipping")
    blo, bhi = _pair(a, "brightness_limit")
    clo, chi = _pair(a, "contrast_limit")
    ops: list[Op] = []
    if (clo, chi) != (0.0, 0.0) or (blo, bhi) == (0.0, 0.0):
        ops.append(Contrast(factor=(1.0 + clo, 1.0 + chi)))  # Albumentations: alpha * x + beta, contrast first
    if (blo, bhi) != (0.0, 0.0):
        ops.append(Brightness(factor=(1.0 + blo, 1.0 + bhi)))
    return _together(ops, _p(a))


def _brightness_contrast_warning(a: Args) -> str:
    msg = ("RandomBrightnessContrast imported as Contrast: Albumentations multiplies (x * f), augkit blends with "
           "the image's mean grey (m + f * (x - m)); same factors, brighter/darker images differ (docs/ecosystem.md)")
    if not _is_zero(a.get("brightness_limit")):
        msg += ("; and as Brightness: Albumentations adds b (x + b), augkit multiplies (x * (1 + b)); "
                "same b, dark images change less in augkit")
    return msg


_IDENTITY = {"brightness": (1.0, 1.0), "contrast": (1.0, 1.0), "saturation": (1.0, 1.0), "hue": (0.0, 0.0)}


def _jitter_ranges(a: Args) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """ColorJitter's four ranges (absent: the identity) and the components that change anything."""
    ranges = {key: _pair(a, key) if key in a else still for key, still in _IDENTITY.items()}
    return ranges, [key for key in ranges if ranges[key] != _IDENTITY[key]]


def _color_jitter(a: Args) -> list[Op]:
    ranges, active = _jitter_ranges(a)
    if active == ["contrast"]:  # one component: the order does not matter, and Contrast is that component
        return [Contrast(factor=ranges["contrast"], p=_p(a))]
    return [ColorJitter(**ranges, p=_p(a))]


def _color_jitter_warning(a: Args) -> str | None:
    _, active = _jitter_ranges(a)
    if len(active) < 2 and "hue" not in active:
        return None
    return ("ColorJitter imported as ak.ColorJitter: Albumentations applies brightness, contrast, saturation and "
            "hue in a random order per image, augkit in this fixed order; on uint8 Albumentations shifts the hue "
            "in OpenCV's 180 hue levels (2 degree steps); same factor ranges (docs/ecosystem.md)")


_CV_INTERPOLATION = {0: "nearest", 1: "bilinear"}  # cv2.INTER_NEAREST, cv2.INTER_LINEAR
_CV_BORDER = {0: "constant", 1: "replicate", 2: "reflect"}  # cv2.BORDER_CONSTANT, _REPLICATE, _REFLECT


def _fill(a: Args, key: str = "fill") -> float:
    """A uint8 fill value (one for every channel) in augkit's [0, 1] units."""
    fill = a.get(key, 0.0)
    if isinstance(fill, (list, tuple)):
        if len(set(fill)) != 1:
            raise Unsupported(f"{key}={fill!r}: augkit fills every channel with one value")
        fill = fill[0]
    if isinstance(fill, str) or not 0.0 <= float(fill) <= 255.0:
        raise Unsupported(f"{key}={fill!r}: expected a uint8 value in [0, 255]")
    return float(fill) / 255.0


def _warp_kw(a: Args) -> dict[str, Any]:
    """interpolation, border_mode and fill of a geometric transform as augkit's ``_Warp`` fields."""
    interp, border = a.get("interpolation", 1), a.get("border_mode", 0)
    if interp not in _CV_INTERPOLATION:
        raise Unsupported(f"interpolation={interp!r}: augkit has nearest (0) and bilinear (1) only")
    if border not in _CV_BORDER:
        raise Unsupported(f"border_mode={border!r}: augkit has constant (0), replicate (1) and reflect (2) only")
    return {"interpolation": _CV_INTERPOLATION[interp], "border": _CV_BORDER[border], "fill": _fill(a)}


def _xy(a: Args, key: str, what: str) -> tuple[float, float]:
    """One (lo, hi) range from a value Albumentations may store per axis ({"x": ..., "y": ...})."""
    v = a.get(key)
    if isinstance(v, Mapping):
        x, y = _pair(v, "x"), _pair(v, "y")
        if x != y:
            raise Unsupported(f"{key}={v!r}: x and y ranges differ ({what}); augkit draws both from one range")
        return x
    return _pair(a, key) if v is not None else (0.0, 0.0)


def _affine(a: Args) -> list[Op]:
    _require(a, "fit_output", False, "output resized to fit")
    _require(a, "balanced_scale", False, "zoom in and out drawn equally often")
    if not _is_zero(a.get("translate_px")):
        raise Unsupported(f"translate_px={a['translate_px']!r}: augkit translates by fractions of the size; "
                          "use translate_percent")
    scale = a.get("scale")
    sx, sy = (scale.get("x"), scale.get("y")) if isinstance(scale, Mapping) else (scale, scale)
    sx_pair = _pair({"scale": sx}, "scale")
    if not a.get("keep_ratio", False) and not (sx_pair == _pair({"scale": sy}, "scale") and sx_pair[0] == sx_pair[1]):
        raise Unsupported(f"scale={scale!r} with keep_ratio=False draws x and y scales independently (anisotropic); "
                          "set keep_ratio=True for an isotropic scale")
    shear = a.get("shear")
    if isinstance(shear, Mapping):
        if not _is_zero(shear.get("y")):
            raise Unsupported(f"shear={shear!r}: augkit shears along x only (y range must be (0, 0))")
        shear_x = _pair(shear, "x")
    else:
        shear_x = _pair(a, "shear") if shear is not None else (0.0, 0.0)
    rotate = _pair(a, "rotate") if a.get("rotate") is not None else (0.0, 0.0)
    translate = _xy(a, "translate_percent", "anisotropic translation")
    kw = _warp_kw(a)
    if (rotate, shear_x, translate) == ((0.0, 0.0),) * 3 and kw["interpolation"] == "bilinear" and kw["border"] == "constant":
        return [Zoom(scale=sx_pair, fill=kw["fill"], p=_p(a))]
    if rotate != (0.0, 0.0) and shear_x != (0.0, 0.0):  # the two compose in the other order in one ak.Affine
        first = Affine(scale=sx_pair, rotate=rotate, **kw)  # (checked against Albumentations' pixels in the tests)
        return _together([first, Affine(shear=shear_x, translate=translate, **kw)], _p(a))
    return [Affine(scale=sx_pair, rotate=rotate, translate=translate, shear=shear_x, **kw, p=_p(a))]


def _affine_warning(a: Args) -> str | None:
    if _p(a) == 0.5:
        return ("Affine imported with p=0.5 (Albumentations' default p; augkit's Affine defaults to 1.0): "
                "half the images are not transformed")
    if not _is_zero(a.get("translate_percent")):
        return _TRANSLATE_WARNING
    return None


_TRANSLATE_WARNING = ("Albumentations rounds a translation to whole pixels (towards zero); augkit shifts by the exact "
                      "fraction of the size (sub-pixel), so shifts differ by less than one pixel")


def _rotate(a: Args) -> list[Op]:
    _require(a, "crop_border", False, "output cropped to the rotated image's largest inner box")
    return [Rotate(degrees=_pair(a, "limit"), **_warp_kw(a), p=_p(a))]


def _shift_scale_rotate(a: Args) -> list[Op]:
    shift_x, shift_y = _pair(a, "shift_limit_x"), _pair(a, "shift_limit_y")
    if shift_x != shift_y:
        raise Unsupported(f"shift_limit_x={shift_x!r} and shift_limit_y={shift_y!r} differ; augkit draws both from one range")
    lo, hi = _pair(a, "scale_limit")
    return [Affine(scale=(1.0 + lo, 1.0 + hi), rotate=_pair(a, "rotate_limit"), translate=shift_x, **_warp_kw(a), p=_p(a))]


def _shift_warning(a: Args) -> str | None:
    return _TRANSLATE_WARNING if not _is_zero(a.get("shift_limit_x")) or not _is_zero(a.get("shift_limit_y")) else None


def _rotate90(a: Args) -> list[Op]:
    # Albumentations draws k in {0, 1, 2, 3}; augkit's Rot90 k in {1, 2, 3} when applied: same law with p * 3/4
    return [Rot90(p=round(_p(a) * 0.75, 12))]


def _sizing_p(a: Args, name: str) -> None:
    if _p(a) != 1.0:
        raise Unsupported(f"p={_p(a)}: augkit's {name} sets every sample's size and always applies")


def _linear_resample(a: Args) -> None:
    _require(a, "interpolation", 1, "augkit resamples bilinearly")
    _require(a, "area_for_downscale", None, "INTER_AREA when shrinking")


def _random_resized_crop(a: Args) -> list[Op]:
    _sizing_p(a, "RandomResizedCrop")
    _linear_resample(a)
    size: Any = a.get("size")
    return [RandomResizedCrop(size=tuple(size) if isinstance(size, list) else size, scale=_pair(a, "scale"),
                              ratio=_pair(a, "ratio"), antialias=False)]


def _resize(a: Args) -> list[Op]:
    _sizing_p(a, "Resize")
    _linear_resample(a)
    return [Resize(size=(a["height"], a["width"]), antialias=False)]  # OpenCV's INTER_LINEAR does not antialias


def _crop(cls: type[Op]) -> Callable[[Args], list[Op]]:
    def convert(a: Args) -> list[Op]:
        _sizing_p(a, cls.__name__)
        _require(a, "pad_if_needed", False, "padding a small image up to the crop")
        return [cls(size=(a["height"], a["width"]))]  # type: ignore[call-arg]

    return convert


def _center_crop_warning(a: Args) -> str:
    return ("CenterCrop: Albumentations puts the box at (H - h) // 2, augkit (as torchvision) at round((H - h) / 2): "
            "when H - h is odd and (H - h) / 2 rounds up, augkit's box is one pixel lower (likewise in x)")


def _gaussian_blur(a: Args) -> list[Op]:
    lo, hi = _pair(a, "blur_limit") if not isinstance(a.get("blur_limit"), (int, float)) else (a["blur_limit"],) * 2
    sigma = _pair(a, "sigma_limit")
    if (lo, hi) == (0, 0):
        return [GaussianBlur(sigma=sigma, p=_p(a))]
    if lo != hi:
        raise Unsupported(f"blur_limit={a['blur_limit']!r} draws a kernel size per image; augkit uses one kernel "
                          "size (set blur_limit=(k, k), or 0 to size the kernel from sigma)")
    return [GaussianBlur(sigma=sigma, kernel_size=int(lo), p=_p(a))]


def _gaussian_blur_warning(a: Args) -> str | None:
    limit = a.get("blur_limit")
    sigma = _pair(a, "sigma_limit")
    if _is_zero(limit) and sigma[0] != sigma[1]:
        return ("GaussianBlur with blur_limit=0: Albumentations sizes the kernel from each image's sigma, augkit "
                "from the largest sigma (round(6 sigma + 1) | 1); the extra taps weigh under 0.3%")
    return None


def _to_gray(a: Args) -> list[Op]:
    _require(a, "num_output_channels", 3, "augkit keeps the channel count")
    _require(a, "method", "weighted_average", "augkit uses the ITU-R 601 weights")
    return [Grayscale(p=_p(a))]


def _posterize(a: Args) -> list[Op]:
    bits = a.get("num_bits")
    if isinstance(bits, (int, float)):
        bits = (bits, bits)
    if isinstance(bits, (list, tuple)) and bits and isinstance(bits[0], (list, tuple)):
        raise Unsupported(f"num_bits={bits!r}: augkit draws one bit count for all channels")
    lo, hi = _pair({"num_bits": bits}, "num_bits")
    return [Posterize(bits=(int(lo), int(hi)), p=_p(a))]


def _equalize(a: Args) -> list[Op]:
    _require(a, "by_channels", True, "equalizing the luma only")
    if a.get("mask") is not None or a.get("mask_params"):
        raise Unsupported("mask: augkit equalizes the whole image")
    return [Equalize(p=_p(a))]


def _equalize_warning(a: Args) -> str:
    return ("Equalize: augkit follows PIL's ImageOps.equalize rule; Albumentations' (mode 'cv' or 'pil') maps the "
            "levels slightly differently (a mean of about 2 of 255 levels on a photo)")


def _unsupported(reason: str) -> Callable[[Args], list[Op]]:
    """A row for a transform that has a near augkit op but no exact mapping: the error says why."""

    def convert(a: Args) -> list[Op]:
        raise Unsupported(reason)

    convert.never_maps = True  # type: ignore[attr-defined]
    return convert


def _one_op(ops: list[Op]) -> Op:
    """One op for a container's child: several ops (one transform made of more) applied together."""
    return ops[0] if len(ops) == 1 else _all_of(ops)


def _to_tensor_warning(a: Args) -> str:
    return ("ToTensorV2 dropped: augkit returns a float32 (B, C, H, W) tensor for tensor input already, "
            "and HWC numpy for numpy input")


def _augkit(cls: type[Op], rename: Mapping[str, str] = {}) -> Callable[[Args], list[Op]]:  # noqa: B006 (read only)
    """augkit's own transforms (``Pipeline.to_albumentations``): arguments back to the op's fields."""

    def convert(a: Args) -> list[Op]:
        kw: dict[str, Any] = {rename.get(k, k): tuple(v) if isinstance(v, list) else v for k, v in a.items() if k != "salt"}
        if cls is Normalize:
            kw.pop("p", None)
        return [cls(**kw)]

    return convert


for _row in (
    Row("HorizontalFlip", _flip(HorizontalFlip)),
    Row("VerticalFlip", _flip(VerticalFlip)),
    Row("GaussNoise", _gauss_noise),
    Row("Normalize", _normalize),
    Row("RandomBrightnessContrast", _brightness_contrast, _brightness_contrast_warning),
    Row("ColorJitter", _color_jitter, _color_jitter_warning),
    Row("Affine", _affine, _affine_warning),
    Row("Rotate", _rotate),
    Row("ShiftScaleRotate", _shift_scale_rotate, _shift_warning),
    Row("RandomRotate90", _rotate90),
    Row("RandomResizedCrop", _random_resized_crop),
    Row("Resize", _resize),
    Row("RandomCrop", _crop(RandomCrop)),
    Row("CenterCrop", _crop(CenterCrop), _center_crop_warning),
    Row("GaussianBlur", _gaussian_blur, _gaussian_blur_warning),
    Row("ToGray", _to_gray),
    Row("InvertImg", lambda a: [Invert(p=_p(a))]),
    Row("Solarize", lambda a: [Solarize(threshold=_pair(a, "threshold_range"), p=_p(a))]),
    Row("Posterize", _posterize),
    Row("Equalize", _equalize, _equalize_warning),
    Row("RandomGamma", lambda a: [Gamma(gamma=tuple(g / 100.0 for g in _pair(a, "gamma_limit")), p=_p(a))]),  # type: ignore[arg-type]
    Row("SafeRotate", _unsupported("SafeRotate shrinks the image so its corners stay in view; augkit's Rotate "
                                   "keeps the scale (use Rotate, or Affine with a scale)")),
    Row("Sharpen", _unsupported("Sharpen blends with a Laplacian-kernel sharpened image; augkit's Sharpness is "
                                "PIL's ImageEnhance.Sharpness (a blend with a 3x3 smoothed image), not the same")),
    Row("Erasing", _unsupported("Albumentations' Erasing draws one box clipped to fit and always erases; augkit's "
                                "Erasing is torchvision's RandomErasing (10 attempts, may not erase)")),
    Row("CoarseDropout", _unsupported("several holes of pixel sizes per image; augkit's Erasing fills one box "
                                      "(torchvision's RandomErasing)")),
    Row("ToTensorV2", lambda a: [], _to_tensor_warning),
    Row("AugkitHorizontalFlip", _augkit(HorizontalFlip)),
    Row("AugkitVerticalFlip", _augkit(VerticalFlip)),
    Row("AugkitZoom", _augkit(Zoom, {"fill_value": "fill"})),
    Row("AugkitContrast", _augkit(Contrast)),
    Row("AugkitGaussianNoise", _augkit(GaussianNoise)),
    Row("AugkitNormalize", _augkit(Normalize)),
):
    register(_row)

_CONTAINERS = ("Compose", "Sequential")  # flattened when p == 1
_CHOICE = ("OneOf", "SomeOf", "AugkitOneOf", "AugkitSomeOf")  # converted to ak.OneOf / ak.SomeOf, children recursively


# reading -------------------------------------------------------------------------------------
def _load(source: Any) -> tuple[dict[str, Any], int | None]:
    """The serialized transform tree of ``source`` and the Compose's seed if it has one."""
    if isinstance(source, (str, Path)):
        import yaml

        text_given = isinstance(source, str) and ("\n" in source or source.lstrip().startswith("{"))
        if text_given:
            text, where = str(source), "Albumentations YAML/JSON text"
        else:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"Albumentations file {str(source)!r} not found")
            text, where = path.read_text(), f"Albumentations file {str(source)!r}"
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{where} does not parse as YAML/JSON: {e}") from None
        return _tree(data, where), None
    if isinstance(source, Mapping):
        return _tree(source, "the Albumentations dict"), None
    if hasattr(source, "get_class_fullname"):  # a live Albumentations transform or Compose
        seed = getattr(source, "seed", None)
        return _serialize(source), seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    raise TypeError(
        "source must be an albumentations Compose, the dict A.to_dict returns, or a path to a file A.save wrote, "
        f"got {type(source).__name__}"
    )


def _tree(data: Any, where: str) -> dict[str, Any]:
    if isinstance(data, Mapping) and "transform" in data:
        data = data["transform"]
    if not isinstance(data, Mapping) or "__class_fullname__" not in data:
        raise ValueError(f"{where} must be what A.to_dict / A.save write (a 'transform' with '__class_fullname__'), "
                         f"got {type(data).__name__} with keys {sorted(data) if isinstance(data, Mapping) else '-'}")
    return dict(data)


def _serialize(t: Any) -> dict[str, Any]:
    """A live transform as ``A.to_dict`` writes it, one transform at a time (a Lambda does not stop the others)."""
    from albumentations.core.composition import BaseCompose

    d: dict[str, Any] = {"__class_fullname__": t.get_class_fullname()}
    if isinstance(getattr(t, "op", None), Op):  # augkit's own transforms (to_albumentations) carry their op
        d["op"] = t.op
    if isinstance(t, BaseCompose):
        d["p"] = t.p
        d["transforms"] = [_serialize(c) for c in t.transforms]
        for key in ("n", "replace"):  # SomeOf's (as A.to_dict writes them)
            if hasattr(t, key):
                d[key] = getattr(t, key)
        processors = getattr(t, "processors", None) or {}
        for key, proc in (("bbox_params", "bboxes"), ("keypoint_params", "keypoints")):  # A.to_dict keeps the format
            params = getattr(processors.get(proc), "params", None)
            d[key] = None if proc not in processors else {"format": getattr(params, "format", None)}
        return d
    try:
        d.update(t.get_transform_init_args())
        d.setdefault("p", t.p)  # ShiftScaleRotate leaves it out (A.to_dict adds it)
    except Exception as e:  # e.g. Lambda: not serializable; reported as unsupported with the reason
        d["__not_serializable__"] = f"{type(e).__name__}: {e}"
    return d


def _short(fullname: str) -> str:
    return fullname.rsplit(".", 1)[-1]


def _walk(node: Mapping[str, Any], pos: str, ops: list[Op], bad: list[tuple[str, str, str]], warn: list[str]) -> None:
    name = _short(str(node.get("__class_fullname__")))
    if name in _CONTAINERS:
        if float(node.get("p", 1.0)) != 1.0:
            bad.append((pos or "top", name, f"p={node['p']}: a whole group applied at random has no augkit equivalent"))
        for key, fmt in (("bbox_params", "pascal_voc"), ("keypoint_params", "xy")):  # what augkit's targets take
            value = node.get(key)
            got = value.get("format") if isinstance(value, Mapping) else None
            if value and got != fmt:
                bad.append((pos or "top", name, f"{key} format {got!r}: augkit's targets take {fmt!r} (docs/targets.md); convert them first"))
        for i, child in enumerate(node.get("transforms", [])):
            _walk(child, f"{pos}.{i}" if pos else str(i), ops, bad, warn)
        return
    if name.startswith("Augkit") and isinstance(node.get("op"), Op):
        ops.append(node["op"])  # augkit's own export (AugkitGeometric, AugkitPhotometric, AugkitOneOf ...): the op itself
        return
    if name in _CHOICE:
        _choice(node, name, pos, ops, bad, warn)
        return
    row = ROWS.get(name)
    if row is None:
        bad.append((pos, name, "no augkit equivalent yet"))
        for i, child in enumerate(node.get("transforms", [])):  # name what inside would not map either
            _walk(child, f"{pos}.{i}", [], bad, [])
        return
    if "__not_serializable__" in node:
        bad.append((pos, name, f"its arguments cannot be read ({node['__not_serializable__']})"))
        return
    args = {k: v for k, v in node.items() if k != "__class_fullname__"}
    try:
        new = row.convert(args)
    except Unsupported as e:
        bad.append((pos, name, str(e)))
        return
    except (TypeError, ValueError) as e:  # the augkit op rejected the values
        bad.append((pos, name, f"augkit rejects these arguments: {e}"))
        return
    ops.extend(new)
    message = row.warn(args) if row.warn is not None else None
    if message:
        warn.append(message)


def _choice(node: Mapping[str, Any], name: str, pos: str, ops: list[Op], bad: list[tuple[str, str, str]], warn: list[str]) -> None:
    """A.OneOf (children's p are the choice weights, the chosen one always applies) and A.SomeOf
    (n children drawn uniformly without replacement, run in the listed order, each with its own p)."""
    if name.startswith("Augkit"):  # A.to_dict drops the op (and OneOf's weights); the live transform has it
        bad.append((pos, name, "serialized without its augkit op (A.to_dict drops the weights); import the live "
                               "Compose or save the pipeline with augkit's to_yaml"))
        return
    children: list[Op] = []
    probs: list[float] = []
    count = len(bad)
    for i, child in enumerate(node.get("transforms", [])):
        got: list[Op] = []
        _walk(child, f"{pos}.{i}", got, bad, warn)
        if got:
            children.append(_one_op(got))
            probs.append(float(child.get("p", 1.0)))
    if len(bad) > count:
        return
    if not children:
        bad.append((pos, name, "no transforms inside"))
        return
    p = _p(node)
    if name == "OneOf":
        if not sum(probs) > 0:
            bad.append((pos, name, f"every child has p=0 ({probs}): nothing can be chosen"))
            return
        ops.append(OneOf(tuple(replace(c, p=1.0) for c in children), weights=tuple(probs), p=p))  # forced, as in A
        return
    if node.get("replace", False):
        bad.append((pos, name, "replace=True draws a transform more than once; augkit's SomeOf draws a subset"))
        return
    n = int(node.get("n", 1))
    kept = tuple(c if q == 1.0 else OneOf((replace(c, p=1.0),), p=q) for c, q in zip(children, probs, strict=True))
    ops.append(SomeOf(kept, n=min(n, len(kept)), p=p))


def from_albumentations(source: Any, seed: int | None = None) -> Pipeline:
    """An augkit ``Pipeline`` equivalent to an Albumentations Compose (see the module docstring).

    Args:
        source: ``A.Compose`` (or one transform), the dict ``A.to_dict`` returns, or a path to
            (or the text of) a JSON / YAML file ``A.save`` wrote.
        seed: the pipeline's seed; ``None`` takes the Compose's ``seed`` if it has one.

    Raises:
        AlbumentationsImportError: naming every transform that does not map, and why.
    """
    from .pipeline import Pipeline

    tree, compose_seed = _load(source)
    ops: list[Op] = []
    bad: list[tuple[str, str, str]] = []
    warn: list[str] = []
    _walk(tree, "", ops, bad, warn)
    if bad:
        raise AlbumentationsImportError(bad)
    for message in warn:
        if message not in _WARNED:
            _WARNED.add(message)
            warnings.warn(message, UserWarning, stacklevel=3)
    normalize_at = [i for i, op in enumerate(ops) if isinstance(op, Normalize)]
    if normalize_at and normalize_at[0] != len(ops) - 1:
        raise AlbumentationsImportError([(str(normalize_at[0]), "Normalize", "augkit needs Normalize last; move it to the end")])
    return Pipeline(ops, seed=seed if seed is not None else compose_seed)
