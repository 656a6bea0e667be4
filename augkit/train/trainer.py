"""Trainer: batches of uint8 images -> the augkit pipeline on the training device -> model."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..device import resolve_device
from ..ops import Normalize
from ..pipeline import Pipeline
from .regularize import EarlyStopping, Penalty

__all__ = ["History", "Trainer", "resolve_device", "check_data"]

Data = tuple[Tensor, Tensor]  # images (N, C, H, W) uint8 or float in [0, 1], labels (N,) int


@dataclass
class History:
    """Per-epoch record of a ``Trainer.fit`` run; epochs count from 1.

    ``train_loss``/``train_acc`` are running means over the epoch's (augmented) training batches,
    data loss only (no penalty), with dropout active. ``val_*`` are on the validation set in eval
    mode, without augmentation. ``best_epoch`` is the epoch whose weights the model holds at the
    end (early stopping's best when it restores, else the last); ``stopped_epoch`` is the last
    epoch run; ``wall_time`` is seconds for the whole fit.
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_epoch: int = 0
    early_stopped: bool = False
    monitor: str | None = None
    wall_time: float = 0.0

    @property
    def epochs(self) -> list[int]:
        return list(range(1, len(self.train_loss) + 1))

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def check_data(name: str, data: Data) -> Data:
    """Check an (images, labels) pair and return it as tensors."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name} must be a pair (images (N,C,H,W), labels (N,)), got {type(data).__name__}")
    x, y = (torch.as_tensor(v) for v in data)
    if x.dim() != 4:
        raise ValueError(f"{name} images must be (N,C,H,W), got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8 and not x.dtype.is_floating_point:
        raise TypeError(f"{name} images must be uint8 or float in [0, 1], got dtype {x.dtype}")
    if y.dim() != 1 or len(y) != len(x) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"{name} labels must be (N,) integers with N = {len(x)}, got shape {tuple(y.shape)} {y.dtype}")
    if len(x) == 0:
        raise ValueError(f"{name} is empty")
    return x, y.long()


class Trainer:
    """Minimal supervised trainer with every overfitting remedy as a knob.

    Each training step moves a uint8 batch (already on the device) through ``pipeline`` on
    the training device, so augmentation and standardization (``Normalize`` last) run batched
    there. Evaluation uses only the pipeline's trailing ``Normalize`` (no augmentation).

    Args:
        model: a classifier returning logits (B, num_classes).
        optimizer: built over ``model.parameters()``.
        pipeline: augkit pipeline for training batches; ``None`` only converts to [0, 1] floats.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ...
        penalty: ``Penalty`` added to the loss each step, or ``None``.
        early_stopping: ``EarlyStopping`` updated once per epoch, or ``None`` (run ``max_epochs``).
        max_epochs: >= 1.
        batch_size: >= 1.
        seed: seeds batch order and dropout (the pipeline has its own seed).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        pipeline: Pipeline | None = None,
        device: str | torch.device = "auto",
        penalty: Penalty | None = None,
        early_stopping: EarlyStopping | None = None,
        max_epochs: int = 100,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        for name, v in (("max_epochs", max_epochs), ("batch_size", batch_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Trainer: {name} must be an int >= 1, got {v!r}")
        if pipeline is not None and not isinstance(pipeline, Pipeline):
            raise TypeError(f"Trainer: pipeline must be an augkit Pipeline or None, got {type(pipeline).__name__}")
        if penalty is not None and not isinstance(penalty, Penalty):
            raise TypeError(f"Trainer: penalty must be a Penalty or None, got {type(penalty).__name__}")
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
            raise TypeError(f"Trainer: early_stopping must be an EarlyStopping or None, got {type(early_stopping).__name__}")
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.optimizer = optimizer
        self.pipeline = pipeline if pipeline is not None else Pipeline([], seed=seed)
        last = self.pipeline.ops[-1:] if self.pipeline.ops else []
        norm = [op for op in last if isinstance(op, Normalize)]
        self.eval_pipeline = Pipeline(norm, seed=0)
        self.penalty = penalty
        self.early_stopping = early_stopping
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.seed = seed

    def fit(self, train_data: Data, val_data: Data | None = None) -> History:
        """Train; returns the per-epoch ``History``. ``val_data`` is needed to monitor ``val_*``."""
        x, y = check_data("train_data", train_data)
        val = check_data("val_data", val_data) if val_data is not None else None
        stop = self.early_stopping
        if stop is not None and stop.monitor.startswith("val") and val is None:
            raise ValueError(f"Trainer.fit: early stopping monitors {stop.monitor!r} but val_data is None")
        if stop is not None:
            stop.reset()
        dev = self.device
        x, y = x.to(dev), y.to(dev)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        hist = History(monitor=stop.monitor if stop else None)
        devices = [dev] if dev.type == "cuda" else []
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)  # dropout draws from the global RNG of the device
            for _epoch in range(self.max_epochs):
                tl, ta = self._train_epoch(x, y, gen)
                hist.train_loss.append(tl)
                hist.train_acc.append(ta)
                if val is not None:
                    vl, va = self.evaluate(val)
                    hist.val_loss.append(vl)
                    hist.val_acc.append(va)
                if stop is not None:
                    current = {"train_loss": tl, "train_acc": ta}
                    if val is not None:
                        current.update(val_loss=vl, val_acc=va)
                    if stop.update(current[stop.monitor], self.model):
                        hist.early_stopped = True
                        break
        hist.stopped_epoch = len(hist.train_loss)
        hist.best_epoch = hist.stopped_epoch
        if stop is not None and stop.restore_best and stop.best_epoch is not None:
            stop.restore(self.model)
            hist.best_epoch = stop.best_epoch
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        hist.wall_time = time.perf_counter() - t0
        return hist

    def _train_epoch(self, x: Tensor, y: Tensor, gen: torch.Generator) -> tuple[float, float]:
        self.model.train()
        n = len(x)
        order = torch.randperm(n, generator=gen).to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            xb = self.pipeline(x[idx])  # (B, C, H, W) uint8 -> float32, augmented on the device
            logits = self.model(xb)
            loss = F.cross_entropy(logits, y[idx])
            total = loss + self.penalty(self.model) if self.penalty is not None else loss
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == y[idx]).sum()
        return float(loss_sum) / n, float(correct) / n

    @torch.no_grad()
    def evaluate(self, data: Data, batch_size: int = 512) -> tuple[float, float]:
        """Mean cross-entropy and accuracy on ``data`` in eval mode, without augmentation."""
        x, y = check_data("data", data)
        self.model.eval()
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(self.device)
            yb = y[start : start + batch_size].to(self.device)
            logits = self.model(self.eval_pipeline(xb))
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
        return loss_sum / len(x), correct / len(x)
