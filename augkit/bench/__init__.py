"""Throughput measurement, side by side with the peer libraries (behind ``augkit bench``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .report import format_table, save_outputs, to_markdown
from .suite import PEERS, run_bench

__all__ = ["bench", "run_bench", "format_table", "to_markdown", "save_outputs", "PEERS"]


def bench(sizes: tuple[int, ...] = (32, 224), batch_size: int = 64, device: str = "auto", peers: tuple[str, ...] = PEERS,
          repeats: int | None = None, warmup: int | None = None, json: str | Path | None = None,
          markdown: str | Path | None = None, plot: str | Path | None = None, quick: bool = False,
          log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``run_bench`` and write the JSON / markdown / PNG asked for; ``result["written"]`` lists the files."""
    result = run_bench(sizes=sizes, batch_size=batch_size, device=device, peers=peers, repeats=repeats, warmup=warmup,
                       quick=quick, log=log)
    result["written"] = [str(p) for p in save_outputs(result, json, markdown, plot)]
    return result
