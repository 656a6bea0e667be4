#!/usr/bin/env bash
# The GPU device check for issue 14: run as is on a machine with one CUDA GPU, from the repo root.
#   bash benchmarks/device_check.sh
# No network. Under 8 minutes. Writes benchmarks/results/device-check-cuda.{json,md} and
# benchmarks/results/device-check-tests.txt. Peers that cannot be imported are skipped with a note.
set -u
cd "$(dirname "$0")/.."
mkdir -p benchmarks/results
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'device_check: no CUDA device visible')" || exit 2
echo "== CUDA tests (tensor backend, pipeline, GPU path)"
timeout 180 python -m pytest -q -rs tests/test_gpu_path.py tests/test_tensor_backend.py tests/test_pipeline.py \
    -p no:cacheprovider 2>&1 | tee benchmarks/results/device-check-tests.txt | tail -15
tests=${PIPESTATUS[0]}
echo "== accounting, agreement, syncs, timings"
timeout 270 python benchmarks/device_check.py --device cuda --out benchmarks/results
check=$?
echo "tests exit $tests, check exit $check; results in benchmarks/results/device-check-cuda.md"
[ "$tests" -eq 0 ] && [ "$check" -eq 0 ]
