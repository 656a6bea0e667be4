"""Draw docs/images/targets.png: boxes, a mask and keypoints over augmented photographs.

Each photo is repeated into a batch of 3 and augmented on the batched tensor path with its
targets (hand-placed boxes, a mask of ellipses inside them, keypoints); the first column is the
input. Run: ``python benchmarks/targets_figure.py [OUT.png]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

import augkit as ak
from augkit.images import sample_images

# per photo: boxes (xyxy pixels), their classes, ellipses (cx, cy, rx, ry, class) for the mask, keypoints
ANNOTATIONS = {
    "chelsea": {
        "boxes": [[132, 84, 212, 148], [292, 110, 344, 164], [232, 220, 292, 268]],
        "labels": [1, 1, 2],
        "ellipses": [(172, 116, 38, 30, 1), (318, 137, 25, 26, 1), (262, 244, 28, 22, 2)],
        "keypoints": [[172, 116], [318, 137], [262, 250]],
    },
    "coffee": {
        "boxes": [[76, 120, 480, 390], [172, 16, 410, 280], [320, 66, 424, 330]],
        "labels": [1, 2, 3],
        "ellipses": [(278, 255, 200, 130, 1), (288, 140, 80, 50, 2)],
        "keypoints": [[288, 140], [366, 290]],
    },
}
COLOURS = np.array([[0, 0, 0], [255, 200, 0], [0, 160, 255], [255, 60, 160]], dtype=np.float32)


def mask_of(shape: tuple[int, int], ellipses: list[tuple]) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    m = np.zeros((h, w), np.uint8)
    for cx, cy, rx, ry, k in ellipses:
        m[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1] = k
    return m


def draw(ax, img: np.ndarray, mask: np.ndarray, boxes: np.ndarray, labels, kps: np.ndarray, vis: np.ndarray) -> None:
    shown = img.astype(np.float32)
    on = mask > 0
    shown[on] = 0.55 * shown[on] + 0.45 * COLOURS[mask[on]]
    ax.imshow(shown.astype(np.uint8))
    for (x1, y1, x2, y2), k in zip(boxes, labels):
        ax.add_patch(__import__("matplotlib.patches", fromlist=["Rectangle"]).Rectangle(
            (x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.5, ec=COLOURS[int(k)] / 255))
    for (x, y), v in zip(kps, vis):
        if v:
            ax.plot([x], [y], "o", ms=4, mec="k", mfc="w")
    ax.set_xticks([])
    ax.set_yticks([])


def main(out: str = "docs/images/targets.png") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pipe = ak.Pipeline([ak.RandomResizedCrop((224, 224), scale=(0.35, 1.0)), ak.HorizontalFlip(),
                        ak.Affine(scale=(0.9, 1.1), rotate=20, translate=0.05), ak.Contrast(0.3)], seed=3)
    photos = sample_images(tuple(ANNOTATIONS))
    fig, axes = plt.subplots(len(photos), 4, figsize=(12, 3.2 * len(photos)))
    for row, (name, img) in zip(axes, photos.items()):
        a = ANNOTATIONS[name]
        mask = mask_of(img.shape[:2], a["ellipses"])
        boxes, kps = np.array(a["boxes"], np.float32), np.array(a["keypoints"], np.float32)
        draw(row[0], img, mask, boxes, a["labels"], kps, np.ones(len(kps), bool))
        row[0].set_title(f"{name} (input)")
        b = 3
        x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].repeat(b, 1, 1, 1)
        out_ = pipe(x, masks=torch.from_numpy(mask)[None].repeat(b, 1, 1), boxes=[torch.from_numpy(boxes)] * b,
                    labels=[torch.tensor(a["labels"])] * b, keypoints=[torch.from_numpy(kps)] * b)
        for s in range(b):
            im = (out_["image"][s].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            draw(row[s + 1], im, out_["masks"][s].numpy(), out_["boxes"][s].numpy(), out_["labels"][s].tolist(),
                 out_["keypoints"][s].numpy(), out_["keypoints_visible"][s].numpy())
            row[s + 1].set_title(f"augmented {s + 1}")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=60)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
