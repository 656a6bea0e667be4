"""Is this checkout slower than an earlier commit? ``augkit bench`` ratios run alternately.

The seed pipeline's ratio to Kornia moves 10 to 15% from run to run on a small shared VM, so
one run per side cannot show a few percent either way. This runs ``augkit bench --peers kornia
--device cpu`` for a size, alternating between this checkout and ``--base`` (checked out in a
temporary git worktree, removed afterwards), and prints every run and the medians of augkit's
images/s and of its ratio to Kornia. Issue 14's "no regression" check (docs/benchmarks.md).

Run: ``python benchmarks/compare_commits.py [--base fec35e8] [--sizes 32] [--runs 6]``
"""

from __future__ import annotations

import argparse
import os
import re
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="fec35e8", help="the commit to compare with (default: the first landing)")
    ap.add_argument("--sizes", default="32", help="image sides, e.g. 32,224")
    ap.add_argument("--runs", type=int, default=6, help="runs per side and size")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), a.base], check=True)
        try:
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
