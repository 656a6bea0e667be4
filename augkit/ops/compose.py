"""Per-sample composition: OneOf and SomeOf, as exclusive ``apply`` masks over their children.

A container draws which children each sample applies, then its children's params, and stores
them flat in its own params under ``"<j>.<key>"`` (nested containers nest the prefix:
``"0.1.factor"``). A child's ``apply`` there is already the final decision (container fired,
child chosen), so a backend runs a container as its children in order, each with its own
params: ``leaves`` and ``leaf_params`` do that flattening. No Python loop over samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from ..random import Draw
from .base import Op, check_number, check_range
from .geometric import SizingOp

__all__ = ["Container", "OneOf", "SomeOf", "leaves", "leaf_params", "branch_params"]


def _check_ops(name: str, ops: Any) -> tuple[Op, ...]:
    if isinstance(ops, Op) or isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence):
        raise ValueError(f"{name}.ops must be a list of augkit ops, got {type(ops).__name__}")
    ops = tuple(ops)
    if not ops:
        raise ValueError(f"{name}.ops must hold at least one op, got an empty list")
    for i, op in enumerate(ops):
        if not isinstance(op, Op):
            raise ValueError(f"{name}.ops[{i}] must be an augkit op (e.g. ak.Brightness()), got {type(op).__name__}")
        if type(op).__name__ == "Normalize":
            raise ValueError(f"{name}.ops[{i}] is Normalize, which must be the pipeline's last op, not inside {name}")
        if isinstance(op, SizingOp):
            raise ValueError(f"{name}.ops[{i}] is {type(op).__name__}, a sizing op; put sizing ops outside {name}")
    return ops


def _kind(ops: Sequence[Op]) -> str:
    """"container": neither a geometric op of a run nor a photometric one (backends run its leaves)."""
    return "container"


@dataclass(frozen=True)
class Container(Op):
    """Base of ops that run other ops per sample. Subclasses define ``branches`` and ``sample``."""

    def branches(self) -> list[tuple[str, Op]]:
        """(key prefix, child op) in the order the children run."""
        raise NotImplementedError

    def _child_params(self, prefix: str, op: Op, n: int, rng: Draw, chosen: Tensor) -> dict[str, Tensor]:
        """The child's own params with ``apply`` replaced by ``chosen`` (n,) bool, keys prefixed."""
        cp = op.sample(n, rng)
        cp["apply"] = chosen if not isinstance(op, Container) else cp["apply"] & chosen
        if isinstance(op, Container):  # push the decision down to the grandchildren
            for k in [k for k in cp if k.endswith(".apply")]:
                cp[k] = cp[k] & chosen
        return {f"{prefix}.{k}": v for k, v in cp.items()}


@dataclass(frozen=True)
class OneOf(Container):
    """Each sample applies exactly one of ``ops`` (with probability ``p``), chosen per sample.

    ``weights`` (default: equal) are relative choice probabilities. The chosen op is applied
    whatever its own ``p`` (as ``A.OneOf`` does). Params: ``apply``, ``choice`` (B,) int64
    (-1 where the container did not fire) and each child's params under ``"<j>.<key>"``.
    """

    ops: tuple[Op, ...] = ()
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        ops = _check_ops("OneOf", self.ops)
        object.__setattr__(self, "ops", ops)
        object.__setattr__(self, "kind", _kind(ops))
        if self.weights is not None:
            w = self.weights
            if isinstance(w, (str, bytes)) or not isinstance(w, Sequence) or len(w) != len(ops):
                raise ValueError(f"OneOf.weights must be None or {len(ops)} numbers (one per op), got {w!r}")
            w = tuple(check_number(f"OneOf.weights[{i}]", v, low=0.0) for i, v in enumerate(w))
            if not sum(w) > 0:
                raise ValueError(f"OneOf.weights must not all be 0, got {w!r}")
            object.__setattr__(self, "weights", w)

    def branches(self) -> list[tuple[str, Op]]:
        return [(str(j), op) for j, op in enumerate(self.ops)]

    def probabilities(self) -> list[float]:
        w = self.weights or (1.0,) * len(self.ops)
        return [v / sum(w) for v in w]

    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        u = rng.rand(2)
        apply = u[0] < self.p
        cum = torch.tensor(list(_cumsum(self.probabilities()))[:-1], device=rng.device)  # (k-1,) thresholds
        choice = torch.searchsorted(cum, u[1], right=True)  # (n,) in [0, k)
        choice = torch.where(apply, choice, -1)
        out = {"apply": apply, "choice": choice}
        for j, (prefix, op) in enumerate(self.branches()):
            out |= self._child_params(prefix, op, n, rng.child(j), choice == j)
        return out


def _cumsum(xs: list[float]) -> list[float]:
    out, t = [], 0.0
    for x in xs:
        t += x
        out.append(t)
    return out


def _check_n(value: Any, k: int) -> tuple[int, int]:
    expected = f"an int or (lo, hi) with 0 <= lo <= hi <= {k} (the number of ops)"
    try:
        lo, hi = check_range("SomeOf.n", value, low=0, high=k, scalar=lambda v: (v, v), scalar_doc="(x, x)")
    except ValueError:
        raise ValueError(f"SomeOf.n must be {expected}, got {value!r}") from None
    if (lo, hi) != (int(lo), int(hi)):
        raise ValueError(f"SomeOf.n must be {expected}, got {value!r}")
    return int(lo), int(hi)


@dataclass(frozen=True)
class SomeOf(Container):
    """Each sample applies a random subset of ``ops`` of size k ~ U{lo, ..., hi}, in the listed order.

    ``n`` is an int or (lo, hi) with hi <= len(ops). Subsets of one size are equally likely;
    chosen ops apply whatever their own ``p``. Params: ``apply``, ``count`` (B,) int64 (0 where
    the container did not fire) and each child's params under ``"<j>.<key>"``.
    """

    ops: tuple[Op, ...] = ()
    n: tuple[int, int] | int = (1, 2)

    def __post_init__(self) -> None:
        super().__post_init__()
        ops = _check_ops("SomeOf", self.ops)
        object.__setattr__(self, "ops", ops)
        object.__setattr__(self, "kind", _kind(ops))
        object.__setattr__(self, "n", _check_n(self.n, len(ops)))

    def branches(self) -> list[tuple[str, Op]]:
        return [(str(j), op) for j, op in enumerate(self.ops)]

    def sample(self, n: int, rng: Draw) -> dict[str, Tensor]:
        apply = rng.rand(1)[0] < self.p
        lo, hi = cast(tuple[int, int], self.n)  # a pair after __post_init__
        count = torch.where(apply, rng.integers(lo, hi + 1), 0)  # (n,)
        keys = rng.rand(len(self.ops))  # (k, n): a sample's k smallest keys pick its subset
        rank = keys.argsort(0).argsort(0)
        out = {"apply": apply, "count": count}
        for j, (prefix, op) in enumerate(self.branches()):
            out |= self._child_params(prefix, op, n, rng.child(j), rank[j] < count)
        return out


def branch_params(params: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The params stored under ``"<prefix>."`` with the prefix removed."""
    head = prefix + "."
    return {k[len(head) :]: v for k, v in params.items() if k.startswith(head)}


def leaves(ops: Sequence[Op]) -> list[Op]:
    """``ops`` with every container replaced by its children, recursively, in running order."""
    out: list[Op] = []
    for op in ops:
        out.extend(leaves([c for _, c in op.branches()]) if isinstance(op, Container) else [op])
    return out


def leaf_params(ops: Sequence[Op], values: Sequence[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
    """Each leaf's params (as ``leaves(ops)`` orders them) out of the params of ``ops``."""
    out: list[dict[str, Tensor]] = []
    for op, v in zip(ops, values, strict=True):
        if isinstance(op, Container):
            br = op.branches()
            out.extend(leaf_params([c for _, c in br], [branch_params(v, prefix) for prefix, _ in br]))
        else:
            out.append(v)
    return out
