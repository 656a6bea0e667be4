"""Why the CPU backend reuses output memory, and what the reuse check costs (docs/reliability.md).

    python benchmarks/output_reuse.py

Fills a 64x3x224x224 float32 batch (38 MB) from another one, one thread: into a reused buffer,
into a fresh ``torch.empty`` (page faults), into a fresh numpy array (transparent huge pages
where the kernel allows them); then times ``OutputPool.get`` (the holder check) alone.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from augkit.buffers import OutputPool

SHAPE = (64, 3, 224, 224)


def median_ms(fn, n: int = 15) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[n // 2] * 1e3


def main() -> None:
    torch.set_num_threads(1)
    src = torch.rand(SHAPE)
    reused = torch.empty(SHAPE)
    pool = OutputPool()
    pool.get(SHAPE)
    cases = {
        "fill a reused buffer": lambda: reused.copy_(src),
        "fill a fresh torch.empty": lambda: torch.empty(SHAPE).copy_(src),
        "fill a fresh numpy array (THP)": lambda: torch.from_numpy(np.empty(SHAPE, np.float32)).copy_(src),
        "OutputPool.get (check only)": lambda: pool.get(SHAPE),
    }
    for name, fn in cases.items():
        print(f"{name:32s} {median_ms(fn):8.3f} ms")


if __name__ == "__main__":
    main()
