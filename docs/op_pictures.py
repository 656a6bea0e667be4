"""Draw docs/images/ops/<Op>.jpg: a bundled photograph, then four copies through the op (p = 1).

Run from the repository root: ``python docs/op_pictures.py``. Deterministic (seed 0).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import augkit as ak  # noqa: E402
from augkit.images import sample_images  # noqa: E402

SIDE, COPIES = 112, 4
OUT = Path(__file__).parent / "images" / "ops"


def ops() -> dict[str, ak.Op]:
    always = lambda op: dataclasses.replace(op, p=1.0)  # noqa: E731
    return {
        "Brightness": ak.Brightness((0.5, 1.5)),
        "Saturation": ak.Saturation((0.0, 2.0)),
        "Hue": ak.Hue((-0.3, 0.3)),
        "ColorJitter": ak.ColorJitter(0.4, 0.4, 0.4, 0.1),
        "Gamma": ak.Gamma((0.5, 2.0)),
        "Grayscale": always(ak.Grayscale()),
        "Invert": always(ak.Invert()),
        "Solarize": ak.Solarize((0.3, 0.8)),
        "Posterize": ak.Posterize((1, 4)),
        "Equalize": always(ak.Equalize()),
        "AutoContrast": always(ak.AutoContrast()),
        "Sharpness": ak.Sharpness((0.0, 4.0)),
        "GaussianBlur": ak.GaussianBlur((0.5, 3.0)),
        "Erasing": always(ak.Erasing(value=0.5)),
        "OneOf": ak.OneOf([ak.Invert(), ak.Grayscale(), ak.GaussianBlur((2.0, 3.0))]),
        "SomeOf": ak.SomeOf([ak.Invert(), ak.Hue(0.3), ak.Erasing()], n=(1, 2)),
        "RandAugment": ak.RandAugment(),
        "TrivialAugment": ak.TrivialAugment(),
    }


def strip(images: torch.Tensor) -> Image.Image:
    """(N, 3, S, S) float in [0, 1] -> one row, 4 px apart on white."""
    n = len(images)
    canvas = np.full((SIDE, n * SIDE + (n - 1) * 4, 3), 255, np.uint8)
    for i, t in enumerate(images):
        canvas[:, i * (SIDE + 4) : i * (SIDE + 4) + SIDE] = (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(canvas)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    img = np.asarray(Image.fromarray(sample_images(("chelsea",))["chelsea"]).resize((SIDE + 40, SIDE), Image.BILINEAR))
    img = img[:, 20 : 20 + SIDE]
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].repeat(COPIES, 1, 1, 1)
    original = x[:1].float() / 255
    for name, op in ops().items():
        y = ak.Pipeline([op], seed=0)(x)
        strip(torch.cat([original, y])).save(OUT / f"{name}.jpg", quality=85)
    for name, mix in [("MixUp", ak.MixUp(alpha=1.0, num_classes=4, seed=0)), ("CutMix", ak.CutMix(alpha=1.0, num_classes=4, seed=0))]:
        cats = {k: v for k, v in sample_images().items()}
        batch = torch.stack([
            torch.from_numpy(np.asarray(Image.fromarray(v).resize((SIDE, SIDE), Image.BILINEAR)).copy()).permute(2, 0, 1)
            for v in cats.values()
        ]).float() / 255
        y, _ = mix(batch, torch.arange(4))
        strip(torch.cat([batch, y])).save(OUT / f"{name}.jpg", quality=85)
    print(f"wrote {len(list(OUT.glob('*.jpg')))} pictures to {OUT}")


if __name__ == "__main__":
    main()
