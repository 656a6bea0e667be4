"""Params: the per-sample values a pipeline drew, one dict per op, replayable."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class Params:
    """Per-op parameters for a batch of ``batch_size`` samples.

    ``values[i]`` belongs to op ``names[i]``: ``apply`` (B,) bool says which samples the op
    changed; the other keys are (B,) tensors (``Zoom``: ``scale``; ``Contrast``: ``factor``;
    ``GaussianNoise``: ``std`` and ``seed``, the int64 key of each sample's noise field).
    Pass it back as ``pipe(x, params=params)`` to replay exactly.
    """

    names: tuple[str, ...]
    values: tuple[dict[str, Tensor], ...]

    @property
    def batch_size(self) -> int:
        for v in self.values:
            return len(v["apply"])
        return 0

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.values[i]

    def __iter__(self) -> Iterator[tuple[str, dict[str, Tensor]]]:
        return iter(zip(self.names, self.values))

    def to(self, device: torch.device | str) -> Params:
        return Params(self.names, tuple({k: t.to(device) for k, t in v.items()} for v in self.values))

    def select(self, index: Tensor | slice | int) -> Params:
        """Rows ``index`` of every tensor; an int keeps a batch of 1."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Params(self.names, tuple({k: t[index] for k, t in v.items()} for v in self.values))

    @staticmethod
    def cat(parts: list[Params]) -> Params:
        """Join params of the same pipeline along the batch dim."""
        if not parts:
            raise ValueError("Params.cat needs at least one Params")
        names = parts[0].names
        if any(p.names != names for p in parts):
            raise ValueError("Params.cat: all parts must come from the same pipeline")
        values = tuple({k: torch.cat([p.values[i][k] for p in parts]) for k in v} for i, v in enumerate(parts[0].values))
        return Params(names, values)

    def tolist(self) -> list[dict[str, Any]]:
        """Plain Python, one entry per sample: ``[{op_name: {key: value}}]`` (JSON-ready)."""
        host = [{k: t.tolist() for k, t in v.items()} for v in self.values]
        return [
            {f"{i}:{name}": {k: vals[b] for k, vals in h.items()} for i, (name, h) in enumerate(zip(self.names, host))}
            for b in range(self.batch_size)
        ]

    def __repr__(self) -> str:
        lines = [f"Params(batch_size={self.batch_size}"]
        for i, (name, v) in enumerate(self):
            keys = ", ".join(f"{k}: {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}" for k, t in v.items())
            lines.append(f"  [{i}] {name}: {{{keys}}}")
        return "\n".join(lines) + ")"
