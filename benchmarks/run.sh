#!/usr/bin/env bash
# Re-run the benchmark suite and the profiler, then rewrite the numbers in docs/benchmarks.md.
#   benchmarks/run.sh            # CPU always; CUDA too when torch sees a GPU
# Results land in benchmarks/results/{cpu,cuda}.{json,md,png} and profile-{cpu,cuda}.{json,md}.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's augkit, not an installed one
R=benchmarks/results
mkdir -p "$R"
python -m augkit.cli bench --device cpu --sizes 32,224 --batch-size 64 \
    --json "$R/cpu.json" --markdown "$R/cpu.md" --plot "$R/cpu.png"
python benchmarks/profile_augkit.py --device cpu --sizes 32,224 --batch-size 64
if python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    python -m augkit.cli bench --device cuda --sizes 32,224 --batch-size 256 \
        --json "$R/cuda.json" --markdown "$R/cuda.md" --plot "$R/cuda.png"
    python benchmarks/profile_augkit.py --device cuda --sizes 32,224 --batch-size 256
fi
python benchmarks/update_docs.py
