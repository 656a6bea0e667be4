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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .ops import Contrast, GaussianNoise, HorizontalFlip, Normalize, Op, VerticalFlip, Zoom

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["Row", "ROWS", "register", "from_albumentations", "AlbumentationsImportError", "Unsupported"]

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
            f"Transforms with an augkit equivalent: {', '.join(sorted(ROWS))}"
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


def _brightness_contrast(a: Args) -> list[Op]:
    if not _is_zero(a.get("brightness_limit")):
        raise Unsupported(f"brightness_limit={a['brightness_limit']!r}: augkit has no brightness op yet")
    lo, hi = _pair(a, "contrast_limit")
    return [Contrast(factor=(1.0 + lo, 1.0 + hi), p=_p(a))]


def _brightness_contrast_warning(a: Args) -> str:
    return ("RandomBrightnessContrast imported as Contrast: Albumentations multiplies (x * f), augkit blends with "
            "the image's mean grey (m + f * (x - m)); same factors, brighter/darker images differ (docs/ecosystem.md)")


def _color_jitter(a: Args) -> list[Op]:
    for key, still in (("brightness", (1.0, 1.0)), ("saturation", (1.0, 1.0)), ("hue", (0.0, 0.0))):
        if key in a and _pair(a, key) != still:
            raise Unsupported(f"{key}={a[key]!r}: augkit imports ColorJitter with contrast only for now")
    return [Contrast(factor=_pair(a, "contrast"), p=_p(a))]


def _affine(a: Args) -> list[Op]:
    for key in ("rotate", "shear", "translate_percent", "translate_px"):
        if not _is_zero(a.get(key)):
            raise Unsupported(f"{key}={a[key]!r}: augkit imports Affine with scale only (a Zoom) for now")
    _require(a, "fit_output", False, "output resized to fit")
    _require(a, "interpolation", 1, "not bilinear")
    _require(a, "border_mode", 0, "not a constant border")
    _require(a, "balanced_scale", False, "zoom in and out drawn equally often")
    scale = a.get("scale")
    sx, sy = (scale.get("x"), scale.get("y")) if isinstance(scale, Mapping) else (scale, scale)
    sx_pair = _pair({"scale": sx}, "scale")
    if not a.get("keep_ratio", False) and not (sx_pair == _pair({"scale": sy}, "scale") and sx_pair[0] == sx_pair[1]):
        raise Unsupported(f"scale={scale!r} with keep_ratio=False draws x and y scales independently (anisotropic); "
                          "set keep_ratio=True for a Zoom")
    fill = a.get("fill", 0.0)
    if isinstance(fill, (list, tuple)):
        if len(set(fill)) != 1:
            raise Unsupported(f"fill={fill!r}: augkit's Zoom fills every channel with one value")
        fill = fill[0]
    if not 0.0 <= float(fill) <= 255.0:
        raise Unsupported(f"fill={fill!r}: expected a uint8 value in [0, 255]")
    return [Zoom(scale=sx_pair, fill=float(fill) / 255.0, p=_p(a))]


def _affine_warning(a: Args) -> str | None:
    if _p(a) == 0.5:
        return ("Affine imported as Zoom with p=0.5 (Albumentations' default p; augkit's Zoom defaults to 1.0): "
                "half the images are not zoomed")
    return None


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
    Row("ColorJitter", _color_jitter),
    Row("Affine", _affine, _affine_warning),
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
    if isinstance(t, BaseCompose):
        d["p"] = t.p
        d["transforms"] = [_serialize(c) for c in t.transforms]
        processors = getattr(t, "processors", None) or {}
        for key, proc in (("bbox_params", "bboxes"), ("keypoint_params", "keypoints")):  # A.to_dict keeps the format
            params = getattr(processors.get(proc), "params", None)
            d[key] = None if proc not in processors else {"format": getattr(params, "format", None)}
        return d
    try:
        d.update(t.get_transform_init_args())
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
