#!/usr/bin/env bash
# On the lent GPU machine: install the carried wheels, then the GPU test suite and the engine and
# daemon benchmarks, each result under $OUT. Usage: bash scripts/gpu_check.sh [OLD_TREE]
# OLD_TREE (optional): another checkout whose fast_engine bench runs in the same session, so the
# two commits are compared on one machine.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
commit=$(cat .device/commit 2>/dev/null || echo unknown)
echo "# $gpu, commit $commit, $(date -u +%FT%TZ)" | tee "$OUT/summary.txt"
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_kernels_gpu.py tests/test_paged_engine.py \
  tests/test_model_cuda.py ${GPU_TESTS_EXTRA:-} > "$OUT/gpu-tests.log" 2>&1
tail -3 "$OUT/gpu-tests.log" | tee -a "$OUT/summary.txt"
timeout 240 python3 bench/fast_engine.py --parts engine > "$OUT/fast_engine.txt" 2>&1
grep -E "tok/s|ms" "$OUT/fast_engine.txt" | tail -8 | tee -a "$OUT/summary.txt"
if [ -n "${1:-}" ]; then
  echo "## the same bench on $1" | tee -a "$OUT/summary.txt"
  (cd "$1" && PYTHONPATH=/tmp/site:. timeout 240 python3 bench/fast_engine.py --parts engine) > "$OUT/fast_engine-old.txt" 2>&1
  grep -E "tok/s|ms" "$OUT/fast_engine-old.txt" | tail -8 | tee -a "$OUT/summary.txt"
fi
timeout 300 python3 bench/daemon_e2e.py --out "$OUT/e2e" > "$OUT/daemon_e2e.txt" 2>&1
grep -A14 "^figure" "$OUT/daemon_e2e.txt" | tee -a "$OUT/summary.txt"
for extra in ${EXTRA_BENCHES:-}; do
  timeout 240 python3 "$extra" > "$OUT/$(basename "$extra" .py).txt" 2>&1; tail -25 "$OUT/$(basename "$extra" .py).txt" | tee -a "$OUT/summary.txt"
done
