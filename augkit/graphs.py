"""A pipeline call captured as a CUDA graph: drawing params and augmenting, one graph launch per call.

On a GPU the cost of a call at small sizes is launches: drawing params is a few hundred tiny ops
(the counter-based hash), the fused augmentation one or two kernels. ``pipe.compile(x)`` records
them once for x's shape, dtype and device and replays the recording; the keys that seed each
call's params are still drawn from the pipeline's generator outside the graph, so a compiled
pipeline gives exactly the params and outputs the eager one would give, call for call.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .params import Params
from .random import KEY_HIGH

__all__ = ["GraphedPipeline"]


class GraphedPipeline:
    """``pipe(x)`` for one (shape, dtype, CUDA device), replayed from a CUDA graph.

    Args:
        pipe: the pipeline (its generator on x's device draws the keys).
        example: a batch with the shape, dtype and device of every later call.
        copy: return a fresh tensor per call (default). False returns the graph's own output
            buffer, which the next call overwrites: only for a loop that is done with each
            output before the next call (saves one 8-byte-per-element copy).
        warmup: eager calls on a side stream before capture (compiles kernels, fills caches).
    """

    def __init__(self, pipe: Any, example: Tensor, copy: bool = True, warmup: int = 2) -> None:
        if not isinstance(example, Tensor) or example.device.type != "cuda":
            where = example.device if isinstance(example, Tensor) else type(example).__name__
            raise ValueError(f"pipe.compile needs a CUDA tensor batch (B, C, H, W), got {where}")
        if example.dim() != 4:
            raise ValueError(f"pipe.compile needs a (B, C, H, W) batch, got shape {tuple(example.shape)}")
        self.pipe, self.copy = pipe, copy
        self.shape, self.dtype, self.device = tuple(example.shape), example.dtype, example.device
        n = self.shape[0]
        self._x = example.detach().clone()
        self._keys = torch.zeros(n, dtype=torch.int64, device=self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                pipe(self._x, params=pipe.sample(n, self.device, keys=self._keys))
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._params = pipe.sample(n, self.device, keys=self._keys)
            self._y = pipe(self._x, params=self._params)

    def __call__(self, x: Tensor, *, return_params: bool = False) -> Any:
        if tuple(x.shape) != self.shape or x.dtype != self.dtype or x.device != self.device:
            raise ValueError(f"this compiled pipeline takes {self.shape} {self.dtype} on {self.device}, "
                             f"got {tuple(x.shape)} {x.dtype} on {x.device}; compile again for a new shape")
        self._x.copy_(x)
        gen = self.pipe.generator(self.device)
        torch.randint(0, KEY_HIGH - 1, (self.shape[0],), generator=gen, device=self.device, out=self._keys)
        self._graph.replay()
        y = self._y.clone() if self.copy else self._y
        if not return_params:
            return y
        params = Params(self._params.names, tuple({k: t.clone() for k, t in v.items()} for v in self._params.values))
        return y, params
