"""Pipeline: ordered ops -> sampled per-sample params -> execution on a backend."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import get_worker_info

from .backends.tensor import TensorBackend, output_size
from .imageconv import is_pil, pil_to_array
from .ops import (
    FLOAT_TOLERANCE,
    Contrast,
    Normalize,
    Op,
    Rot90,
    SizingOp,
    check_channels,
    draw_params,
    leaf_params,
    leaves,
    op_from_dict,
)
from .params import Params
from .random import KEY_HIGH, Draw, GeneratorDraw, sample_key
from .targets import check_min_visibility, check_targets, transform_targets

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from .backends.albu import AlbuBackend
    from .module import Augment

__all__ = ["Pipeline", "default_pipeline"]

CHECKS = ("auto", "always", "first", "never")  # when float input's [0, 1] range is checked


class Pipeline:
    """An ordered list of ops with its own seeded randomness.

    Args:
        ops: op specs, applied in order. ``Normalize``, if present, must be last.
        seed: seeds the pipeline's generators (one per device); ``None`` draws a random seed.
        mask_fill: the mask value where a geometric op brings in area from outside the image.
        min_visibility: boxes whose visible fraction falls below this are dropped (0: only
            boxes with no area left). See docs/targets.md.
        check: when float input is checked to lie in [0, 1], which on an accelerator costs a host
            sync: "always", "first" (the first float call per device), "never", or "auto"
            ("always" on the CPU, "first" elsewhere).
        fused: "auto" (fused Triton runs on CUDA when Triton imports), "always" (also on the CPU,
            under ``TRITON_INTERPRET=1``; for tests) or "never" (the torch path only).

    Call it on a (B, C, H, W) or (C, H, W) tensor (uint8, or float in [0, 1]) on any device
    to get float32 on the same device, each sample with its own random parameters. With target
    keywords (``masks``, ``boxes``, ``keypoints``, ``labels``) it returns a dict instead.
    """

    def __init__(
        self, ops: Sequence[Op], seed: int | None = None, *, mask_fill: int = 0, min_visibility: float = 0.0,
        check: str = "auto", fused: str = "auto",
    ) -> None:
        if isinstance(ops, Op) or not isinstance(ops, (list, tuple)):
            hint = f"; wrap one op in a list: Pipeline([{type(ops).__name__}(...)])" if isinstance(ops, Op) else ""
            raise TypeError(f"ops must be a list of augkit ops (e.g. [ak.Zoom()]), got {_short(ops)}{hint}")
        ops = list(ops)
        for i, op in enumerate(ops):
            if not isinstance(op, Op):
                raise TypeError(f"ops[{i}] must be an augkit op (e.g. ak.Zoom()), got {type(op).__name__}")
            if isinstance(op, Normalize) and i != len(ops) - 1:
                raise ValueError(f"Normalize must be the last op, got it at position {i} of {len(ops)}")
        if seed is None:
            seed = int(torch.randint(0, 2**31, ()).item())
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, got {_short(seed)}")
        if not 0 <= seed < KEY_HIGH:  # every generator and key function takes it whole
            raise ValueError(f"seed must be in [0, 2**63), got {seed}")
        if isinstance(mask_fill, bool) or not isinstance(mask_fill, int) or not 0 <= mask_fill <= 255:
            raise ValueError(f"mask_fill must be an int in [0, 255], got {mask_fill!r}")
        if check not in CHECKS:
            raise ValueError(f"check must be one of {list(CHECKS)}, got {check!r}")
        self.ops = ops
        self.seed = seed
        self.mask_fill = mask_fill
        self.min_visibility = check_min_visibility(min_visibility)
        self.check = check
        self._checked: set[torch.device] = set()  # devices whose first float input was checked
        self._generators: dict[tuple[torch.device | str, int | None], torch.Generator] = {}  # by device, and by the name a caller used
        self._tensor = TensorBackend(leaves(ops), fused=fused)  # containers (OneOf, ...) run as their children
        self._names = tuple(type(op).__name__ for op in ops)
        self._array_ops = tuple(bool(getattr(type(op).sample, "array_api", False)) for op in ops)
        self._sized = any(isinstance(op, SizingOp) for op in ops)
        self._shapes: set[tuple[int, int, int]] = set()  # (C, H, W) inputs that passed the shape checks
        self._albu: AlbuBackend | None = None  # built on first numpy call

    def __repr__(self) -> str:
        inner = "".join(f"\n    {op!r}," for op in self.ops)
        extra = "".join(f", {k}={v!r}" for k, v in self._target_options().items())
        return f"Pipeline([{inner}\n], seed={self.seed}{extra})"

    def _target_options(self) -> dict[str, Any]:
        """The target options that differ from their defaults (so older dicts stay as they were)."""
        opts = {"mask_fill": self.mask_fill, "min_visibility": self.min_visibility}
        return {k: v for k, v in opts.items() if v != 0}

    # randomness -----------------------------------------------------------------------
    def generator(self, device: torch.device | str = "cpu") -> torch.Generator:
        """The pipeline's generator on ``device``, seeded with ``seed`` on first use.

        Inside a DataLoader worker it is keyed by (``seed``, the worker's seed) instead, so
        workers do not repeat each other's draws (nor, without persistent workers, the last
        epoch's): torch gives each worker of each epoch its own seed.
        """
        info = get_worker_info()
        worker = None if info is None else int(info.seed)
        g = self._generators.get((device, worker))  # as given: a call per batch skips the normalising below
        if g is not None:
            return g
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:  # the current device, which may change: never cached as given
            dev = torch.device("cuda", torch.cuda.current_device())
        g = self._generators.get((dev, worker))
        if g is None:
            seed = self.seed if worker is None else sample_key(self.seed, worker)
            g = self._generators[(dev, worker)] = torch.Generator(device=dev).manual_seed(seed)
        if dev == torch.device(device):  # a name for the same device ("cpu", cuda:0)
            self._generators[(device, worker)] = g
        return g

    def sample(
        self,
        n: int,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
        *,
        keys: Tensor | None = None,
        hw: tuple[int, int] | Tensor | None = None,
    ) -> Params:
        """Draw params for ``n`` samples on ``device``: a few vectorized calls per op.

        Row i is a pure function of ``keys[i]``: with ``keys`` (n,) int64 given, the same key
        gives the same params on every device, batch size and backend. Without ``keys``, they
        are drawn from ``generator`` (default: the pipeline's own, seeded by ``seed``).
        ``hw``, the input size ((H, W) or (n, 2) per sample), fills in the crop boxes now
        (``fill_sized``); without it they are filled when the params meet an image.
        """
        draw: Draw
        if keys is None:  # words straight from the generator (seeded by ``seed``): no keys to hash
            draw = GeneratorDraw(n, generator if generator is not None else self.generator(device))
            dev = torch.device(device)
            if generator is not None and (draw.device.type != dev.type or dev.index not in (None, draw.device.index)):  # elsewhere
                draw = Draw(torch.randint(0, KEY_HIGH - 1, (n,), generator=draw.gen, device=draw.device).to(device))
        elif keys.shape != (n,):
            raise ValueError(f"keys must have shape ({n},), got {tuple(keys.shape)}")
        else:
            draw = Draw(keys.to(device=device, dtype=torch.int64))  # the seed enters through the keys
        draws = draw.children(len(self.ops))
        params = Params(self._names, tuple(draw_params(op, n, d, a) for op, d, a in zip(self.ops, draws, self._array_ops)))
        return params if hw is None else self.fill_sized(params, hw)

    def fill_sized(self, params: Params, hw: tuple[int, int] | Tensor) -> Params:
        """Add the size-dependent params (crop ``box`` (B, 4)) for inputs of size ``hw``.

        ``hw``: (H, W) for every sample or a (B, 2) int tensor. Each sizing op sees each sample's
        size at its own position (after earlier sizing ops and quarter turns). Boxes already
        present are kept (a replay), so this is idempotent.
        """
        if not self._sized or not len(params):
            return params
        n = params.batch_size
        dev = params[0]["apply"].device
        # sizes known on the host: cached device constants, no host-to-device copy per call
        cur = hw.to(device=dev, dtype=torch.int64) if isinstance(hw, Tensor) else _size_vector((int(hw[0]), int(hw[1])), dev)
        cur = cur.expand(n, 2) if cur.dim() == 1 else cur
        values = list(params.values)
        for i, op in enumerate(self.ops):
            if isinstance(op, SizingOp):
                if "box" not in values[i]:
                    values[i] = op.sample_sized(values[i], cur)
                cur = _size_vector(op.size, dev).expand(n, 2)
            elif isinstance(op, Rot90):
                odd = (torch.where(values[i]["apply"], values[i]["k"], 0) % 2 == 1)[:, None]
                cur = torch.where(odd, cur.flip(1), cur)
        return Params(params.names, tuple(values))

    def sample_keyed(self, keys: Any, device: torch.device | str = "cpu", hw: tuple[int, int] | Tensor | None = None) -> Params:
        """Params whose row i depends only on ``keys[i]``, ints in [0, 2**63) (not on ``seed``).

        For offline expansion and per-index datasets: the same key gives the same params
        whatever the batch size, order, worker, device or backend. One vectorized draw.
        """
        keys = torch.as_tensor(keys, dtype=torch.int64).reshape(-1)
        return self.sample(len(keys), device, keys=keys, hw=hw)

    # execution ------------------------------------------------------------------------
    @overload
    def __call__(self, x: Tensor, *, params: Params | None = ..., return_params: Literal[False] = ...) -> Tensor: ...
    @overload
    def __call__(self, x: Tensor, *, params: Params | None = ..., return_params: Literal[True]) -> tuple[Tensor, Params]: ...
    @overload
    def __call__(
        self, x: np.ndarray | PILImage, *, params: Params | None = ..., return_params: Literal[False] = ...
    ) -> np.ndarray: ...
    @overload
    def __call__(
        self, x: np.ndarray | PILImage, *, params: Params | None = ..., return_params: Literal[True]
    ) -> tuple[np.ndarray, Params]: ...
    @overload
    def __call__(
        self, x: Any, *, params: Params | None = ..., return_params: bool = ..., masks: Any = ..., mask: Any = ...,
        boxes: Any = ..., keypoints: Any = ..., labels: Any = ...,
    ) -> Any: ...
    def __call__(
        self,
        x: Any,
        *,
        params: Params | None = None,
        return_params: bool = False,
        masks: Any = None,
        mask: Any = None,
        boxes: Any = None,
        keypoints: Any = None,
        labels: Any = None,
    ) -> Any:
        """Tensor (B,C,H,W)/(C,H,W) -> float32 tensor on its device; numpy HWC / PIL image -> numpy HWC.

        With targets, a dict (docs/targets.md). Tensor x (B, C, H, W): ``masks`` (B, [K,] H, W)
        integer/bool, ``boxes`` a list of B (Ni, 4) xyxy pixel-edge tensors, ``keypoints`` a list
        of B (Ni, 2) xy, ``labels`` a list of B (Ni,). One image (numpy, PIL or a (C, H, W)
        tensor): ``mask`` (H, W) or (K, H, W) (numpy HW or HWK for numpy images), ``boxes``
        (N, 4), ``keypoints`` (N, 2), ``labels`` (N,).
        """
        given = {k: v for k, v in (("masks", masks), ("mask", mask), ("boxes", boxes), ("keypoints", keypoints), ("labels", labels)) if v is not None}
        y: Any
        if isinstance(x, Tensor):
            y, params = self._call_tensor(x, params)
            if given:
                y = self._targets_tensor(x, y, params, given)
        elif isinstance(x, (list, tuple)) and x and all(isinstance(t, Tensor) for t in x):
            if given:
                raise ValueError("targets need one (B, C, H, W) tensor batch (or one image), not a list of images of mixed sizes")
            y, params = self._call_list(list(x), params)
        elif isinstance(x, np.ndarray) or is_pil(x):
            if given:
                y, params = self._call_numpy_targets(x, params, given)
            else:
                y, params = self._call_numpy(x, params)
        else:
            raise TypeError(
                f"x must be a torch.Tensor (B,C,H,W)/(C,H,W), a list of (C,H,W) tensors, a numpy HWC array or a PIL image, got {type(x).__name__}"
            )
        return (y, params) if return_params else y

    def _targets_tensor(self, x: Tensor, y: Tensor, params: Params, given: dict[str, Any]) -> dict[str, Any]:
        single = x.dim() == 3
        if single and "masks" in given or not single and "mask" in given:
            raise TypeError("a batch takes masks= (B, [K,] H, W); one image takes mask= ((K,) H, W)")
        hw = (int(x.shape[-2]), int(x.shape[-1]))
        t = check_targets(
            1 if single else x.shape[0], hw, single=single, device=x.device, masks=given.get("mask" if single else "masks"),
            boxes=given.get("boxes"), keypoints=given.get("keypoints"), labels=given.get("labels"),
        )
        out = transform_targets(self.ops, params.to(x.device), hw, t, mask_fill=self.mask_fill, min_visibility=self.min_visibility,
                                batch=1 if single else x.shape[0], device=x.device)
        if single:
            out = {k: v[0] for k, v in out.items()}
            if "masks" in out:
                out["mask"] = out.pop("masks")
        return {"image": y, **out}

    def _call_numpy_targets(self, x: Any, params: Params | None, given: dict[str, Any]) -> tuple[dict[str, Any], Params]:
        """One image with targets: the image through Albumentations, targets through the same matrices."""
        if "masks" in given:
            raise TypeError("one numpy image takes mask= ((H, W) or (H, W, K)), not masks=")
        y, params = self._call_numpy(x, params)
        img = np.asarray(x)
        mask = given.get("mask")
        if mask is not None:
            if not isinstance(mask, np.ndarray):
                raise TypeError(f"mask must be a numpy array (H, W) or (H, W, K) for a numpy image, got {type(mask).__name__}")
            if mask.ndim not in (2, 3):
                raise ValueError(f"mask must be (H, W) or (H, W, K), got shape {mask.shape}")
            mask = torch.from_numpy(np.ascontiguousarray(mask if mask.ndim == 2 else mask.transpose(2, 0, 1)))
        hw = (int(img.shape[0]), int(img.shape[1]))
        t = check_targets(1, hw, single=True, masks=mask, boxes=given.get("boxes"), keypoints=given.get("keypoints"), labels=given.get("labels"))
        out = transform_targets(self.ops, params.to("cpu"), hw, t, mask_fill=self.mask_fill, min_visibility=self.min_visibility, batch=1)
        res: dict[str, Any] = {"image": y}
        for k, v in out.items():
            v = v[0]
            if isinstance(v, Tensor):
                v = v.numpy()
            if k == "masks":
                k, v = "mask", (v if v.ndim == 2 else v.transpose(1, 2, 0))
            res[k] = v
        return res, params

    def _call_tensor(self, x: Tensor, params: Params | None) -> tuple[Tensor, Params]:
        single = x.dim() == 3
        xb = x[None] if single else x
        self._check_tensor(xb, x)
        if params is None:
            params = self.sample(xb.shape[0], xb.device)
        else:
            params = self._check_params(params, xb.shape[0], xb.device)
        params = self.fill_sized(params, (xb.shape[2], xb.shape[3]))
        y = self._tensor(xb, _leaf_params(self.ops, self._tensor.ops, params))
        return (y[0] if single else y), params

    def sets_size_first(self) -> bool:
        """Whether the first op(s) form a geometric run with a sizing op: images of mixed sizes are welcome."""
        steps = self._tensor.steps
        return bool(steps) and steps[0].kind == "warp" and steps[0].indices[0] == 0 and any(
            isinstance(self._tensor.ops[i], SizingOp) for i in steps[0].indices
        )

    def _call_list(self, xs: list[Tensor], params: Params | None) -> tuple[Tensor, Params]:
        """Images (C, Hi, Wi) of mixed sizes -> one (B, C, H, W) float32 batch (needs a sizing op)."""
        first = xs[0]
        for i, t in enumerate(xs):
            if t.dim() != 3:
                raise ValueError(f"x[{i}] must be (C, H, W), got shape {tuple(t.shape)}")
            if t.dtype != first.dtype or t.device != first.device or t.shape[0] != first.shape[0]:
                raise ValueError(
                    f"the images of a list must share dtype, device and channels; x[0] is {first.dtype} {first.device} "
                    f"with {first.shape[0]} channels, x[{i}] is {t.dtype} {t.device} with {t.shape[0]} channels"
                )
            self._check_tensor(t[None], t)
        sizes = [tuple(t.shape[1:]) for t in xs]
        other = next((s for s in sizes if s != sizes[0]), None)
        if other is None:  # one size: an ordinary batch
            return self._call_tensor(torch.stack(xs), params)
        if not self.sets_size_first():
            raise ValueError(
                f"images of mixed sizes ({sizes[0][0]}x{sizes[0][1]} and {other[0]}x{other[1]}) need a sizing op "
                "(ak.RandomResizedCrop, ak.Resize, ak.CenterCrop or ak.RandomCrop) in the pipeline's first run of "
                "geometric ops, before any other op"
            )
        n = len(xs)
        if params is None:
            params = self.sample(n, first.device)
        else:
            params = self._check_params(params, n, first.device)
        params = self.fill_sized(params, torch.tensor(sizes, device=first.device))
        return self._tensor(xs, _leaf_params(self.ops, self._tensor.ops, params)), params

    def compile(self, example: Tensor, *, copy: bool = True) -> Any:
        """This pipeline's call for ``example``'s shape, dtype and CUDA device as one CUDA graph.

        Returns a callable ``g(x, return_params=False)`` giving what ``self(x)`` would give, call
        for call (``augkit.graphs.GraphedPipeline``; docs/gpu.md).
        """
        from .graphs import GraphedPipeline

        return GraphedPipeline(self, example, copy=copy)

    def _call_numpy(self, x: Any, params: Params | None) -> tuple[Any, Params]:
        if self._albu is None:
            from .backends.albu import AlbuBackend

            self._albu = AlbuBackend(self.ops, self.seed)
        if not isinstance(x, np.ndarray):  # PIL: its colours, as the data module reads them
            x = pil_to_array(x, f"PIL image (mode {x.mode!r})", alpha=True)
        img = self._albu.check_image(x)
        if params is None:  # the same draw as a batch of one on the tensor path
            params = self.sample(1)
        params = self.fill_sized(params, img.shape[:2])
        return self._albu(img, params), params

    def as_module(self, eval_pipe: Pipeline | None = None) -> Augment:
        """This pipeline as a ``torch.nn.Module``: ``ak.Augment(self, eval_pipe)``."""
        from .module import Augment

        return Augment(self, eval_pipe)

    @classmethod
    def from_albumentations(cls, compose: Any, seed: int | None = None) -> Pipeline:
        """An augkit pipeline from an ``A.Compose``, its ``A.to_dict`` dict, or a path to an ``A.save`` file.

        Table-driven (``augkit.interop``); raises one error naming every transform that does not map.
        """
        from .interop import from_albumentations

        return from_albumentations(compose, seed=seed)

    def to_albumentations(self, label_fields: tuple[str, ...] | list[str] = ()) -> Any:
        """A plain ``albumentations.Compose`` with the same ops and distributions, seeded with ``seed``.

        A fresh Compose (its own random state); it does not check its input as ``pipe(img)`` does.
        It takes ``mask``, ``bboxes`` (``pascal_voc``) and ``keypoints`` (``xy``) as Albumentations
        does, with ``min_visibility`` and ``mask_fill`` from this pipeline; ``label_fields`` name
        the call's keyword arguments that hold box labels (e.g. ``["labels"]``).
        """
        from .backends.albu import to_compose

        return to_compose(self.ops, self.seed, mask_fill=self.mask_fill, min_visibility=self.min_visibility, label_fields=tuple(label_fields))

    def _check_tensor(self, xb: Tensor, x: Tensor) -> None:
        if xb.dim() != 4:
            raise ValueError(f"x must be (B,C,H,W) or (C,H,W), got shape {tuple(x.shape)}")
        if xb.dtype != torch.uint8 and not xb.dtype.is_floating_point:
            raise TypeError(f"x must be uint8 or float in [0, 1], got dtype {x.dtype}")
        if x.requires_grad:
            raise ValueError("x requires grad, but augmentation is not differentiable; pass x.detach()")
        c, h, w = xb.shape[1:]
        if h == 0 or w == 0 or c == 0:
            raise ValueError(f"x must have C, H and W > 0, got shape {tuple(x.shape)}")
        if w in (1, 3, 4) and c > 4:  # as the data module: (H, W, C) images read as (C, H, W) would be garbage
            perm = "x.permute(2, 0, 1)" if x.dim() == 3 else "x.permute(0, 3, 1, 2)"
            raise ValueError(
                f"x of shape {tuple(x.shape)} looks channels-last ({'H, W, C' if x.dim() == 3 else 'B, H, W, C'}); "
                f"tensors must be channels-first: pass {perm}"
            )
        if (c, h, w) not in self._shapes:
            check_channels(self.ops, c, f"x of shape {tuple(x.shape)}")
            output_size(self._tensor.ops, self._tensor.steps, (h, w))  # raises for Rot90 on non-square without a sizing op
            if len(self._shapes) < 64:
                self._shapes.add((c, h, w))
        if xb.dtype.is_floating_point and xb.numel() and self._wants_check(xb.device):
            lo_t, hi_t = torch.aminmax(xb)
            lo, hi = float(lo_t), float(hi_t)
            if not (lo >= -FLOAT_TOLERANCE and hi <= 1 + FLOAT_TOLERANCE):
                raise ValueError(f"float x must hold values in [0, 1], got min {lo:.4g}, max {hi:.4g}; divide uint8 data by 255")
            self._checked.add(xb.device)

    def _wants_check(self, device: torch.device) -> bool:
        """Whether to check a float input's range now (a host sync on an accelerator)."""
        mode = self.check if self.check != "auto" else ("always" if device.type == "cpu" else "first")
        return mode == "always" or (mode == "first" and device not in self._checked)

    def _check_params(self, params: Params, n: int, device: torch.device) -> Params:
        if not isinstance(params, Params):
            raise TypeError(f"params must be the Params a pipeline returned, got {type(params).__name__}")
        if params.names != self._names:
            raise ValueError(f"params were drawn for ops {list(params.names)}, this pipeline has {list(self._names)}")
        if params.batch_size != n and len(params):
            raise ValueError(f"params hold {params.batch_size} samples but x has batch size {n}")
        return params.to(device)

    # serialization --------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Pickle (and ``deepcopy``) the ops, seed and generators, never scratch or output buffers."""
        state = self.__dict__.copy()
        state["_shapes"] = set()  # caches, rebuilt on use; the tensor backend pickles its ops and fused mode only
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "ops": [op.to_dict() for op in self.ops], **self._target_options()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Pipeline:
        """Build from ``{"ops": [...], "seed": ...}`` (and ``mask_fill``, ``min_visibility`` when set) as
        ``to_dict`` writes it (other keys are refused),
        or from an Albumentations-serialized Compose (``A.to_dict`` / ``A.save``)."""
        if isinstance(d, dict) and "transform" in d and "ops" not in d:  # what A.to_dict / A.save write
            return cls.from_albumentations(d)
        if not isinstance(d, dict) or not isinstance(d.get("ops"), list):
            raise ValueError(f"a pipeline dict needs an 'ops' list, got {_short(d)}")
        unknown = sorted(map(str, set(d) - {"ops", "seed", "mask_fill", "min_visibility"}))
        if unknown:
            raise ValueError(f"unknown top-level key(s) {_short(unknown)} in a pipeline dict; expected 'ops', 'seed', 'mask_fill' and 'min_visibility'")
        opts = {k: d[k] for k in ("mask_fill", "min_visibility") if k in d}
        return cls([op_from_dict(o) for o in d["ops"]], seed=d.get("seed"), **opts)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text of ``to_dict()``; also written to ``path`` if given."""
        import yaml

        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls, source: str | Path) -> Pipeline:
        """Build from a YAML (or JSON) file path or from YAML text.

        A ``Path``, or a one-line string that names an existing file, is read as a file; any other
        string is YAML text. A one-line string that is neither a file nor a mapping is reported as
        a missing file. Aliases may not expand the document past ``MAX_YAML_NODES`` nodes.
        """
        import yaml

        if not isinstance(source, (str, Path)):
            raise TypeError(f"source must be a file path or YAML text, got {type(source).__name__}")
        is_file = isinstance(source, Path) or ("\n" not in source and _is_file(source))
        where = f"pipeline file {str(source)!r}" if is_file else "pipeline YAML"
        if isinstance(source, Path) and not source.is_file():
            raise FileNotFoundError(f"pipeline file {str(source)!r} does not exist")
        try:
            text = Path(source).read_text() if is_file else str(source)
            d = _safe_load_bounded(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{where} does not parse: {_short(str(e), 400)}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{where} is not UTF-8 text: {e}") from None
        except RecursionError:
            raise ValueError(f"{where} is nested too deeply") from None
        if not is_file and isinstance(source, str) and "\n" not in source and not isinstance(d, dict):
            raise FileNotFoundError(f"pipeline file {source!r} does not exist (nor is it YAML text of a pipeline mapping)")
        try:
            return cls.from_dict(d)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}: {e}") from None


def _leaf_params(ops: list[Op], leaf_ops: list[Op], params: Params) -> Params:
    """``params`` as the tensor backend's leaf ops (``leaf_ops``: containers flattened) take them."""
    if len(leaf_ops) == len(ops):
        return params
    values = leaf_params(ops, params.values)
    return Params(tuple(type(op).__name__ for op in leaf_ops), tuple(values))


MAX_YAML_NODES = 10_000  # a pipeline is a few dozen nodes; aliases may not blow it up


def _safe_load_bounded(text: str) -> Any:
    """``yaml.safe_load`` that first refuses documents whose aliases expand past ``MAX_YAML_NODES``."""
    import yaml

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return None
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:  # nodes after alias expansion, each shared node counted once per use
        key = id(node)
        if key not in sizes:
            sizes[key] = 1  # a cycle counts once (safe_load builds it as a self-reference)
            kids = node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv] if isinstance(node, yaml.MappingNode) else []
            sizes[key] = min(MAX_YAML_NODES + 1, 1 + sum(size(k) for k in kids))
        return sizes[key]

    n = size(root)
    if n > MAX_YAML_NODES:
        raise ValueError(f"pipeline YAML expands to more than {MAX_YAML_NODES} nodes through aliases; refusing it")
    return yaml.safe_load(text)


def _is_file(source: str) -> bool:
    try:
        return Path(source).is_file()
    except (OSError, ValueError):  # too long for a file name, or a NUL byte: text, not a path
        return False


def _short(value: Any, limit: int = 200) -> str:
    """``repr`` for messages, cut to about ``limit`` characters (user input may be huge)."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring = r.maxother = limit
    r.maxlist = r.maxtuple = r.maxdict = r.maxset = 8
    r.maxlevel = 3
    text = value if isinstance(value, str) and limit > 200 else r.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def default_pipeline(seed: int | None = 0) -> Pipeline:
    """The seed pipeline: flips, zoom in/out, contrast and noise (docs/ops.md)."""
    from .ops import GaussianNoise, HorizontalFlip, VerticalFlip, Zoom

    return Pipeline(
        [
            HorizontalFlip(p=0.5),
            VerticalFlip(p=0.5),
            Zoom(scale=(0.8, 1.2)),
            Contrast(factor=(0.8, 1.2)),
            GaussianNoise(std=(0.0, 0.05)),
        ],
        seed=seed,
    )


@functools.lru_cache(maxsize=64)
def _size_vector(hw: tuple[int, int], device: torch.device) -> Tensor:
    """(2,) int64 (H, W) on ``device``, made once (read only)."""
    return torch.tensor(hw, dtype=torch.int64, device=device)
