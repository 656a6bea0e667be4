"""Is this checkout slower than an earlier commit? ``augkit bench`` ratios run alternately.

The seed pipeline's ratio to Kornia moves 10 to 15% from run to run on a small shared VM, so
one run per side cannot show a few percent either way. This runs ``augkit bench --peers kornia
--device cpu`` for a size, alternating between this checkout and ``--base`` (checked out in a
temporary git worktree, removed afterwards), and prints every run and the medians of augkit's
images/s and of its ratio to Kornia. Issue 14's "no regression" check (docs/benchmarks.md).

``--in-process`` times both trees in one process instead: the base's package is copied under
another name (``augkit_base``; its imports are relative), and the seed pipeline of each tree
and Kornia are called in rounds (one untimed and two timed calls each, as ``augkit bench``),
so both trees see the same machine state, memory layout and clocks. Between processes the
same code moves by 10% here; in one process the two trees' ratio repeats within a few %.

Run: ``python benchmarks/compare_commits.py [--base fec35e8] [--sizes 32] [--runs 6] [--in-process]``
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\s+(\d+) (augkit Pipeline \(batched\)|Kornia AugmentationSequential)\s+([\d,]+)\s+([\d.]+)")


def bench(tree: Path, size: int) -> tuple[float, float]:
    """(augkit img/s, augkit / Kornia) from one ``augkit bench`` run of ``tree``'s code."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "augkit.cli", "bench", "--sizes", str(size), "--peers", "kornia", "--device", "cpu"]
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=True).stdout
    rows = {m.group(2): m for line in out.splitlines() if (m := ROW.match(line)) and int(m.group(1)) == size}
    if len(rows) != 2:
        raise RuntimeError(f"no augkit/Kornia rows for size {size} in the output of {tree}:\n{out[-2000:]}")
    return float(rows["augkit Pipeline (batched)"].group(3).replace(",", "")), float(rows["Kornia AugmentationSequential"].group(4))


def in_process(base: Path, tmp: Path, size: int, rounds: int, batch: int = 64) -> None:
    """Time this tree's and ``base``'s seed pipelines and Kornia, interleaved in this process."""
    sys.path.insert(0, str(ROOT))
    import torch

    from augkit.bench.peers import kornia_peer
    from augkit.bench.suite import _row, _timed_interleaved
    from augkit.images import sample_batch
    from augkit.pipeline import default_pipeline

    if not (tmp / "augkit_base").exists():  # once per run: later sizes reuse the imported copy
        shutil.copytree(base / "augkit", tmp / "augkit_base")
        sys.path.insert(0, str(tmp))
    old = importlib.import_module("augkit_base.pipeline").default_pipeline
    x = sample_batch(size, batch)
    cases = {"this checkout": default_pipeline(0), base.name: old(0), "Kornia": kornia_peer(default_pipeline(0).ops, x.device)}
    rows = {name: _row(name, name, size, batch, "batched") for name in cases}
    for fn in cases.values():
        fn(x)  # the first warm-up call
    _timed_interleaved([(rows[n], (lambda f=f: f(x))) for n, f in cases.items()], batch, 2 * rounds, 3, lambda: None)
    rate = {n: r["img_s"] for n, r in rows.items()}
    print(f"{size}x{size}, batch {batch}, cpu, {torch.get_num_threads()} threads, one process: {rounds} rounds of 2 timed calls each")
    for n, r in rate.items():
        print(f"  {n:14s} {r:10,.0f} img/s" + ("" if n == "Kornia" else f"  {r / rate['Kornia']:.2f}x Kornia"))
    print(f"  this checkout / {base.name}: {rate['this checkout'] / rate[base.name]:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="fec35e8", help="the commit to compare with (default: the first landing)")
    ap.add_argument("--sizes", default="32", help="image sides, e.g. 32,224")
    ap.add_argument("--runs", type=int, default=6, help="runs per side and size (with --in-process: rounds x 50)")
    ap.add_argument("--in-process", action="store_true", help="time both trees in one process, interleaved")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / a.base
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), a.base], check=True)
        try:
            if a.in_process:
                for size in (int(s) for s in a.sizes.split(",")):
                    in_process(base, Path(tmp), size, 50 * a.runs)
                return
            for size in (int(s) for s in a.sizes.split(",")):
                got: dict[str, list[tuple[float, float]]] = {"this checkout": [], a.base: []}
                for i in range(a.runs):  # swap who goes first every round: no order effect
                    for name, tree in ((("this checkout", ROOT), (a.base, base))[:: 1 if i % 2 == 0 else -1]):
                        got[name].append(bench(tree, size))
                print(f"{size}x{size}, batch 64, cpu: {a.runs} runs each, alternating")
                for name, runs in got.items():
                    rates = ", ".join(f"{r:,.0f}" for r, _ in runs)
                    ratios = ", ".join(f"{x:.2f}" for _, x in runs)
                    print(f"  {name:14s} img/s {rates} (median {statistics.median(r for r, _ in runs):,.0f}); "
                          f"x Kornia {ratios} (median {statistics.median(x for _, x in runs):.2f})")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)


if __name__ == "__main__":
    main()
