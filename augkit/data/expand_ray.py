"""``augkit expand --engine ray``: the same job on Ray Data (docs/scale.md).

The driver plans exactly as the local engine does (it *is* ``expand``: file listing, copy keys,
resume by sha256, manifest parts and merge). Only the work list runs elsewhere: a Ray dataset of
sources goes through ``map_batches`` on a pool of actors, each holding one Pipeline and running
the local engine's own loop (decode, keyed augment, encode, atomic write into DST) on its batch.
Each finished output comes back as its manifest entry, which the driver appends to the shard's
manifest as it arrives. Outputs are byte-identical to the local engine's; a killed driver is
resumed by running the same command again.

Ray is imported only when this engine runs; without it the error says how to install it.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import socket
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..device import resolve_device
from ..pipeline import Pipeline
from .expand import ExpandSummary, _Job, expand

__all__ = ["expand_ray", "require_ray", "connect", "check_reachable", "INSTALL_HINT", "RayNotInstalledError"]

INSTALL_HINT = "pip install 'augkit[ray]' (or: pip install 'ray[data]')"
CONNECT_TIMEOUT_S = 5.0


class RayNotInstalledError(ImportError):
    """``--engine ray`` or ``augkit.ray`` was used without Ray Data installed."""


def require_ray() -> ModuleType:
    """``import ray`` and ``ray.data``, or an error that says how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise RayNotInstalledError(f"the Ray engine needs Ray Data, which cannot be imported ({e}); install it with {INSTALL_HINT}") from None
    return ray


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout`` seconds if nothing listens at a ``host:port`` or ``ray://host:port`` address."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"ray_address must be 'auto', 'host:port' or 'ray://host:port', got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(
            f"ray_address {address!r}: cannot reach {host}:{port} within {timeout:g} s ({type(e).__name__}: {e}); "
            "start the cluster's head (`ray start --head`) or leave the address out to run a local Ray on this machine"
        ) from None


def connect(address: str | None = None) -> bool:
    """Make sure Ray is up in this process. Returns True if this call started it (the caller stops it).

    A Ray already initialised in this process is used as it is. Otherwise ``address`` None starts
    a new local Ray on this machine, ``"auto"`` joins the cluster this machine belongs to, and
    ``"host:port"`` / ``"ray://host:port"`` join that head (checked to answer within seconds first).
    """
    ray = require_ray()
    if address not in (None, "auto"):
        check_reachable(address)
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    except ConnectionError as e:
        raise ConnectionError(f"ray_address {address!r}: {e}") from None
    return True


class _ExpandActor:
    """One Ray actor: holds a Pipeline, runs the local engine's loop (``_Job``) on each batch of sources."""

    def __init__(self, job_args: tuple[Any, ...], device: str, annotations: dict[str, dict[str, Any]]) -> None:
        # the driver's job arguments, with this actor's device, no worker processes (the actor decodes
        # and encodes itself), no manifest (entries go back to the driver) and errors as entries
        bound = inspect.signature(_Job).bind(*job_args)
        bound.arguments.update(dev=resolve_device(device), workers=0, manifest=Path(os.devnull), on_error="skip")
        self.job_args, self.annotations = bound.args, annotations

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        todo = [(str(s), json.loads(p)) for s, p in zip(batch["source"], batch["pending"], strict=True)]
        job = _Job(*self.job_args)
        job.annotations = self.annotations  # masks, boxes, keypoints per source (--annotations), as expand sets them
        job.run(todo, sum(len(p) for _, p in todo), False, None)  # no lock: the driver holds the shard's
        return {"entry": np.array([json.dumps(e, sort_keys=True) for e in job.entries], dtype=object)}


class _RayJob(_Job):
    """The driver side: same constructor and bookkeeping as the local ``_Job``; ``run`` goes to Ray."""

    def __init__(self, *args: Any, address: str | None, num_cpus: float, num_gpus: float, actors: int | None, device: str) -> None:
        super().__init__(*args)
        self.job_args = args  # what expand gave the job: the actors run the same
        self.address, self.num_cpus, self.num_gpus, self.actors, self.device = address, num_cpus, num_gpus, actors, device
        self.where = f"ray ({'cuda' if num_gpus else 'cpu'})"

    def run(self, todo: list[tuple[str, list[tuple[int, str]]]], total: int, progress: bool, lock_fd: int | None = None) -> None:
        if not todo:  # nothing left (a finished run, resumed): no need to start Ray
            return
        from tqdm import tqdm

        ray = require_ray()
        started = connect(self.address)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours below counts outputs
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        self.bar = tqdm(total=total, unit="img", desc="augkit expand (ray)", disable=not progress, smoothing=0.1)
        self.manifest = os.open(self.manifest_path, os.O_WRONLY | os.O_APPEND)
        try:
            actors = self.actors or _fitting_actors(ray, self.num_cpus, self.num_gpus)
            self.where = f"ray ({actors} actor{'s' if actors > 1 else ''} on {'cuda' if self.num_gpus else 'cpu'})"
            rows = [{"source": s, "pending": json.dumps(pending)} for s, pending in todo]
            ds = ray.data.from_items(rows).map_batches(
                _ExpandActor,
                fn_constructor_kwargs=dict(job_args=self.job_args, device=self.device, annotations=self.annotations),
                batch_size=self.batch_size,  # sources per call; outputs do not depend on it
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=self.num_cpus,
                num_gpus=self.num_gpus,
            )
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):  # streams as blocks finish
                for line in batch["entry"]:
                    self._take(json.loads(line))
        finally:
            self.bar.close()
            os.close(self.manifest)
            if started:
                ray.shutdown()

    def _take(self, entry: dict[str, Any]) -> None:
        if "error" in entry:
            self._failed(entry["source"], entry["error"])
            return
        self._record(entry)
        self.written += 1
        self.bar.update(1)

    def _collect(self, wait_all: bool = False) -> None:
        """Nothing is in flight on the driver: each entry is recorded when it arrives."""


def _fitting_actors(ray: ModuleType, num_cpus: float, num_gpus: float) -> int:
    """As many actors as the cluster's CPUs (or GPUs, when actors take GPUs) hold."""
    res = ray.cluster_resources()
    if num_gpus > 0:
        n = int(res.get("GPU", 0) // num_gpus)
        if n < 1:
            raise ValueError(f"num_gpus={num_gpus} per actor, but the Ray cluster has {res.get('GPU', 0):g} GPUs")
        return n
    return max(1, int(res.get("CPU", 1) // num_cpus)) if num_cpus > 0 else max(1, int(res.get("CPU", 1)))


def expand_ray(
    src: str | Path,
    dst: str | Path,
    copies: int,
    pipeline: Pipeline | str | Path | None = None,
    seed: int = 0,
    *,
    ray_address: str | None = None,
    workers: int | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
    device: str = "auto",
    **options: Any,
) -> ExpandSummary:
    """``expand`` on Ray Data: same arguments, same outputs, same manifest (docs/scale.md).

    Args:
        ray_address: None starts a local Ray on this machine (or uses the one this process has
            already started); ``"auto"`` joins this machine's cluster; ``"host:port"`` or
            ``"ray://host:port"`` joins that head. SRC and DST must be the same paths on every node
            (a shared file system).
        workers: Ray actors (each decodes, augments and encodes); None: as many as the cluster's
            CPUs hold (GPUs when ``num_gpus`` > 0).
        num_cpus: CPUs each actor reserves (> 0; Ray gives it that many torch threads).
        num_gpus: GPUs each actor reserves (0: CPU actors; e.g. 1, or 0.25 to share a GPU four ways).
        device: the actors' device: "auto" (the GPU Ray gave the actor, else CPU), "cpu" or "cuda".
        **options: the other arguments of ``expand`` (include_original, shard, batch_size, format,
            quality, on_error, overwrite, progress).
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an integer >= 1 (Ray actors) or None with engine ray, got {workers!r}")
    for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name} must be a number >= 0 (per Ray actor), got {value!r}")
    if num_cpus == 0 and num_gpus == 0:
        raise ValueError("num_cpus and num_gpus are both 0: each Ray actor must reserve some CPU or GPU")
    if isinstance(device, str) and device.startswith("cuda") and not num_gpus:
        raise ValueError(f"device={device!r} with engine ray needs num_gpus > 0 (Ray hides GPUs from actors that reserve none)")
    if ray_address is not None and not isinstance(ray_address, str):
        raise TypeError(f"ray_address must be None, 'auto', 'host:port' or 'ray://host:port', got {ray_address!r}")
    require_ray()  # these three before anything is written to DST
    if ray_address is not None and ray_address != "auto":
        check_reachable(ray_address)
    jobs: list[_RayJob] = []

    def make_job(*args: Any) -> _RayJob:
        jobs.append(_RayJob(*args, address=ray_address, num_cpus=num_cpus, num_gpus=num_gpus, actors=workers, device=device))
        return jobs[-1]

    # the driver needs no GPU: it only plans and records; pixels are the actors' business
    summary = expand(src, dst, copies, pipeline, seed, workers=0, device="cpu", _job=make_job, **options)
    return replace(summary, device=jobs[0].where if jobs else "ray")
