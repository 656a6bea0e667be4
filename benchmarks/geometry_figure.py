"""Draw docs/images/geometry.png: each geometric op on a bundled photo, five draws each.

    PYTHONPATH=. python benchmarks/geometry_figure.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import augkit as ak
from augkit.images import sample_images

ROWS = [
    ("Affine(scale=(0.8, 1.2), rotate=20, translate=0.1, shear=10)", [ak.Affine(scale=(0.8, 1.2), rotate=20, translate=0.1, shear=10)]),
    ("Rotate(30, border='reflect')", [ak.Rotate(30, border="reflect")]),
    ("Translate(0.2, border='replicate')", [ak.Translate(0.2, border="replicate")]),
    ("Rot90(p=1) + CenterCrop(128)", [ak.Rot90(p=1.0), ak.CenterCrop(128)]),
    ("RandomResizedCrop(128)", [ak.RandomResizedCrop(128)]),
    ("Resize((96, 128)) + CenterCrop(96)", [ak.Resize((96, 128)), ak.CenterCrop(96)]),
    ("RandomCrop(112, pad=24, border='reflect')", [ak.RandomCrop(112, pad=24, border="reflect")]),
]
TILE, PAD, LABEL = 128, 4, 18


def main(out: str = "docs/images/geometry.png") -> None:
    photo = np.asarray(Image.fromarray(sample_images(("chelsea",))["chelsea"]).resize((160, 128), Image.BILINEAR))
    x = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].repeat(5, 1, 1, 1)
    w = 6 * (TILE + PAD) + PAD
    canvas = Image.new("RGB", (w, len(ROWS) * (TILE + PAD + LABEL) + PAD), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, ops) in enumerate(ROWS):
        y0 = PAD + r * (TILE + PAD + LABEL)
        draw.text((PAD, y0), "ak." + label, fill="black")
        ys = ak.Pipeline(ops, seed=r)(x)
        tiles = [photo] + [(ys[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for i in range(5)]
        for j, t in enumerate(tiles):
            im = Image.fromarray(np.ascontiguousarray(t))
            im.thumbnail((TILE, TILE))
            canvas.paste(im, (PAD + j * (TILE + PAD), y0 + LABEL))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    print(out)


if __name__ == "__main__":
    main()
