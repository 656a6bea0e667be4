"""Profile augkit's seed pipeline with torch.profiler; write benchmarks/results/profile-<device>.{json,md}.

    python benchmarks/profile_augkit.py [--device auto|cpu|cuda] [--sizes 32,224] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from augkit.bench.profile import profile_markdown, profile_pipeline
from augkit.bench.suite import resolve_device

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--sizes", default="32,224")
    ap.add_argument("--batch-size", type=int, default=None, help="default 64 on CPU, 256 on CUDA")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    dev = resolve_device(args.device)
    batch = args.batch_size or (256 if dev.type == "cuda" else 64)
    runs = [profile_pipeline(int(s), batch, dev.type, steps=args.steps) for s in args.sizes.split(",")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"profile-{dev.type}.json").write_text(json.dumps(runs, indent=1) + "\n")
    md = profile_markdown(runs)
    (RESULTS / f"profile-{dev.type}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
