#!/usr/bin/env bash
# One short check of the GPU path (#13), for a lent GPU machine: at most GPU_CHECK_TOTAL
# seconds (default 540) in all, about 5 minutes when everything works.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # OUT_DIR defaults to $OUT, else gpu_results/
#
# Needs data/pg2000.txt in the checkout (the GPU machine has no internet: carry it there).
# Each part has its own timeout and never stops the next one; a summary of every part's exit
# code goes to OUT_DIR/summary.md, each part's log to OUT_DIR/<part>.log, the benchmark
# numbers to OUT_DIR/bench_gpu*.{json,md}. Training time per benchmark: GPU_CHECK_SECONDS
# (default 100; the --compile run trains half as long). Parts run most important first, and
# a part never gets more than the time left of the total.
# Dry run on a CPU machine (no GPU parts, tiny model): GPU_CHECK_DRY_RUN=1.
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu_results}}"
mkdir -p "$OUT_DIR"
SECONDS_BENCH="${GPU_CHECK_SECONDS:-100}"
TOTAL="${GPU_CHECK_TOTAL:-540}"
PY="${PYTHON:-$(command -v python || command -v python3)}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
SUMMARY="$OUT_DIR/summary.md"
echo "# GPU check ($(date -u +%Y-%m-%dT%H:%MZ))" > "$SUMMARY"

part() {  # part NAME TIMEOUT_S COMMAND...: run, log, record the exit code; never abort
    local name="$1" limit="$2"
    shift 2
    local left=$((TOTAL - SECONDS))
    if [ "$left" -lt 20 ]; then
        echo "- $name: SKIPPED, out of time (GPU_CHECK_TOTAL=$TOTAL)" | tee -a "$SUMMARY"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (up to ${limit}s): $*"
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$OUT_DIR/$name.log"
    local verdict="ok"
    [ "$rc" -ne 0 ] && verdict="FAILED (exit $rc$([ "$rc" -eq 124 ] && echo ', timed out'))"
    echo "- $name: $verdict, $((SECONDS - start)) s" | tee -a "$SUMMARY"
}

part env 45 "$PY" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, \
'cuda', torch.cuda.is_available(), torch.version.cuda); \
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'); \
print('bf16', torch.cuda.is_available() and torch.cuda.is_bf16_supported())"
# No install: PYTHONPATH (exported above, inherited by torchrun's workers) finds shared/.
# Report (do not fail on) the dependencies that are missing.
part imports 30 "$PY" -c "import importlib.util as u; \
missing = [m for m in ('tqdm', 'requests', 'urllib3', 'numpy', 'pytest') if not u.find_spec(m)]; \
print('missing:', missing or 'nothing'); raise SystemExit(1 if missing else 0)"
if [ ! -s data/pg2000.txt ]; then
    echo "- data: FAILED, data/pg2000.txt is missing (carry it: the machine has no internet)" \
        | tee -a "$SUMMARY"
fi

if [ "${GPU_CHECK_DRY_RUN:-0}" = "1" ]; then
    part bench_dry_run 300 "$PY" benchmarks/bench_gpu.py --device cpu --tiny \
        --time-budget 5 --speed-steps 3 --warmup-steps 1 --out "$OUT_DIR"
    part torchrun_gloo 240 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 \
        -m shared train --device cpu --out "$OUT_DIR/ddp.pt" --quiet --max-iters 10 \
        --time-budget none --n-layer 1 --n-head 2 --n-embd 16 --block-size 16 --eval-iters 2
    cat "$SUMMARY"
    exit 0
fi

part pytest_cuda 100 "$PY" -m pytest -q -p no:cacheprovider -o addopts="" tests/test_distributed.py -k cuda
part bench_bf16 $((SECONDS_BENCH + 70)) "$PY" benchmarks/bench_gpu.py --device cuda \
    --time-budget "$SECONDS_BENCH" --out "$OUT_DIR"
part torchrun_nccl 80 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 \
    -m shared train --device cuda --out "$OUT_DIR/ddp.pt" --quiet --max-iters 100 \
    --time-budget none --eval-interval 50 --eval-iters 5
part ddp_checkpoint 30 "$PY" -c "from shared.engine.checkpoint import load_checkpoint as load; \
c = load('$OUT_DIR/ddp.pt'); print('loaded: step', c.step); assert c.step == 100"
rm -f "$OUT_DIR/ddp.pt"  # keep $OUT small
part bench_compile $((SECONDS_BENCH / 2 + 120)) "$PY" benchmarks/bench_gpu.py --device cuda \
    --compile --time-budget $((SECONDS_BENCH / 2)) --out "$OUT_DIR"
cat "$SUMMARY"
