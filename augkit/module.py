"""``Augment``: a pipeline as a ``torch.nn.Module`` (train = augment, eval = pass through).

Drop it in front of a model (``nn.Sequential(ak.Augment(pipe), model)``), move it with
``.to()`` (it has no parameters or buffers: the pipeline runs on the input's device), and
switch it with ``train()`` / ``eval()`` like dropout. Recipes (Lightning, Hugging Face
``datasets``): ``docs/ecosystem.md``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .params import Params
from .pipeline import Pipeline

__all__ = ["Augment"]

_MODULE_STREAM = -3  # sample_key tag: keeps Augment's per-epoch generators apart from the loaders'


class Augment(nn.Module):
    """Run ``pipe`` on (B, C, H, W) or (C, H, W) batches in training mode.

    Args:
        pipe: the training augmentation.
        eval_pipe: what eval mode runs instead (e.g. ``ak.Pipeline([ak.Normalize(...)])``);
            ``None``: no augmentation, only the conversion every pipeline does (uint8 / 255 ->
            float32 in [0, 1]), so the model sees the same dtype and scale in both modes.
        seed: the loader seed mixed into per-item keys when ``forward`` gets ``index`` (as
            ``ak.loader(..., seed=seed)``).

    Randomness: by default each call continues ``pipe``'s own generator (as ``pipe(x)``).
    After ``set_epoch(e)``, the draws of epoch ``e`` come from a generator keyed by
    (``pipe.seed``, ``e``), so a run resumed at epoch ``e`` sees the augmentations an
    uninterrupted run saw (for the same batch order). With ``index`` (the items' dataset
    indices), each item's params are those ``ak.loader`` gives item i at epoch e, whatever the
    batch order or size (the reproducibility contract, docs/data.md).

    Shape:
        Input: (B, C, H, W) or (C, H, W), uint8 or float in [0, 1], any device.
        Output: float32, same shape (after ``Normalize``: normalized values), same device.
    """

    pipe: Pipeline
    eval_pipe: Pipeline

    def __init__(self, pipe: Pipeline, eval_pipe: Pipeline | None = None, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(pipe, Pipeline):
            raise TypeError(f"pipe must be an ak.Pipeline, got {type(pipe).__name__}")
        if eval_pipe is not None and not isinstance(eval_pipe, Pipeline):
            raise TypeError(f"eval_pipe must be an ak.Pipeline or None, got {type(eval_pipe).__name__}")
        _compile_eagerly()
        self.pipe = pipe
        self.eval_pipe = eval_pipe if eval_pipe is not None else Pipeline([], seed=0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.seed = seed
        self.epoch: int | None = None
        self._generators: dict[tuple[torch.device, int], torch.Generator] = {}

    def extra_repr(self) -> str:
        ops = ", ".join(type(op).__name__ for op in self.pipe.ops)
        ev = ", ".join(type(op).__name__ for op in self.eval_pipe.ops) or "pass through"
        return f"train: [{ops}] (seed={self.pipe.seed}), eval: [{ev}], epoch={self.epoch}"

    def set_epoch(self, epoch: int | None) -> None:
        """Key the following draws by (``pipe.seed``, ``epoch``); ``None`` goes back to ``pipe``'s own generator."""
        if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
            raise ValueError(f"epoch must be an int >= 0 or None, got {epoch!r}")
        if epoch != self.epoch:
            self._generators.clear()  # one epoch's generators at a time
        self.epoch = epoch

    def generator(self, device: torch.device | str) -> torch.Generator:
        """The generator the next training call on ``device`` draws from."""
        device = torch.device(device)
        if self.epoch is None:
            return self.pipe.generator(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        g = self._generators.get((device, self.epoch))
        if g is None:
            from .data.datasets import sample_key

            key = sample_key(_MODULE_STREAM, self.pipe.seed, self.epoch)
            g = self._generators[(device, self.epoch)] = torch.Generator(device=device).manual_seed(key)
        return g

    def forward(self, x: Tensor, params: Params | None = None, index: Tensor | None = None) -> Tensor:
        """Augment ``x`` (training) or run the eval pipeline (eval).

        Args:
            x: (B, C, H, W) or (C, H, W) batch.
            params: replay a draw of ``pipe`` (from ``pipe(x, return_params=True)``).
            index: (B,) dataset indices of the items: keys each item's params as ``ak.loader``
                does (item i at epoch e, loader seed ``seed``, this rank), whatever the batch.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor (B,C,H,W) or (C,H,W), got {type(x).__name__}")
        if not self.training:
            return self.eval_pipe(x)
        n = x.shape[0] if x.dim() == 4 else 1
        if params is None and index is not None:
            from .data.datasets import current_rank, epoch_base
            from .random import item_keys

            index = torch.as_tensor(index, dtype=torch.int64, device=x.device).reshape(-1)
            if index.shape[0] != n:
                raise ValueError(f"index must hold one dataset index per sample ({n}), got shape {tuple(index.shape)}")
            base = epoch_base(self.pipe.seed, self.seed, self.epoch or 0, current_rank())
            params = self.pipe.sample(n, x.device, keys=item_keys(base, index))
        elif params is None and self.epoch is not None:
            params = self.pipe.sample(n, x.device, generator=self.generator(x.device))
        return self.pipe(x, params=params)


def _compile_eagerly() -> None:
    """Mark ``Augment.forward`` with ``torch.compiler.disable``, once, on first use (the import of
    torch._dynamo costs seconds, so not at ``import augkit``). The pipeline plans per shape,
    reuses buffers and checks values on the host: under ``torch.compile`` it runs eagerly (one
    graph break) and the model around it compiles."""
    if not getattr(Augment.forward, "_augkit_eager", False):
        eager = torch.compiler.disable(Augment.forward)
        setattr(eager, "_augkit_eager", True)  # noqa: B010
        setattr(Augment, "forward", eager)  # noqa: B010
