#!/usr/bin/env bash
# GPU check in one go (sized for < 8 minutes on one H200, plus up to 7 for the gate):
#   1. the CUDA-marked tests (pytest -m cuda tests/end_to_end/test_cuda.py),
#   2. the benchmarks on CUDA (inference throughput + peak memory vs test-set size,
#      training throughput, generators, stitching),
#   3. a short paper-preset study (N=128, Hybrid, 1 epoch on 2 000 training patterns),
#   4. network vs Pty-chi LSQML on that study's test scan (network side only when the
#      optional extra 'iterative' is not installed),
#   5. the reference's quality gate (python -m ptycho_torch.studies.quality_gate: Hybrid, N=128,
#      5 epochs on one object of 4 489 patterns; amplitude SSIM >= 0.84, phase SSIM >= 0.94;
#      fails the step on FAIL). Last, so a session that runs out of time keeps steps 1-4;
#      QUALITY_GATE=0 skips it.
# Results (logs, JSON, the study's artifacts, summary.md) go to the folder given as $1
# (default: $OUT, else ./gpu_check_out). Every step runs even if an earlier one fails; the
# per-step time limits of steps 1-4 add up to 480 s (8 minutes), the gate's is 420 s;
# the exit code is 1 if any step failed, 2 if there is no CUDA device.
#
#   bash scripts/benchmarks/gpu_check.sh [RESULTS_DIR]
#   QUALITY_GATE=0 bash scripts/benchmarks/gpu_check.sh [RESULTS_DIR]   # 8-minute check
set -uo pipefail

cd "$(dirname "$0")/../.."
RESULTS="${1:-${OUT:-./gpu_check_out}}"
mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"
export PYTHONUNBUFFERED=1   # the entry points and benchmarks set glibc's allocator themselves
PY="${PYTHON:-python}"
SUMMARY="$RESULTS/summary.md"
failed=0
t_all=$(date +%s)

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device visible to torch ($("$PY" -c 'import torch; print(torch.__version__)' 2>&1))" \
        | tee "$SUMMARY"
    exit 2
fi
{
    echo "# GPU check $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    "$PY" -c "import torch; print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, device {torch.cuda.get_device_name(0)}')"
    "$PY" -c "import ptychi; print('ptychi', ptychi.__version__)" 2>/dev/null || echo "ptychi not installed"
    echo
    echo "| step | seconds | result |"
    echo "|---|---|---|"
} > "$SUMMARY"
nvidia-smi > "$RESULTS/nvidia-smi.txt" 2>&1 || true

# step NAME TIMEOUT_S COMMAND...: run with a time limit, log to $RESULTS/NAME.log
step() {
    local name="$1" limit="$2"
    shift 2
    local t0 rc
    t0=$(date +%s)
    echo "== $name (limit ${limit}s): $*"
    timeout --kill-after=10 "$limit" "$@" > "$RESULTS/$name.log" 2>&1
    rc=$?
    local dt=$(( $(date +%s) - t0 ))
    if [ "$rc" -eq 0 ]; then
        echo "   ok in ${dt}s"
        echo "| $name | $dt | ok |" >> "$SUMMARY"
    else
        failed=1
        echo "   FAILED (exit $rc) in ${dt}s; last lines:"
        tail -n 20 "$RESULTS/$name.log" | sed 's/^/   | /'
        echo "| $name | $dt | FAILED (exit $rc) |" >> "$SUMMARY"
    fi
}

step cuda_tests 80 "$PY" -m pytest -q -m cuda tests/end_to_end/test_cuda.py \
    --junitxml="$RESULTS/cuda_tests.xml"
step bench_inference 60 "$PY" scripts/benchmarks/inference.py --device cuda --architecture fno \
    --n 4096 --n-memory 2048 --batch 256 --json "$RESULTS/bench_inference.json"
step bench_training 90 "$PY" scripts/benchmarks/training.py --device cuda --iters 40 --warmup 5 \
    --json "$RESULTS/bench_training.json"
step bench_generators 40 "$PY" scripts/benchmarks/generators.py --device cuda --batch 64 \
    --json "$RESULTS/bench_generators.json"
step bench_stitching 30 "$PY" scripts/benchmarks/stitching.py --json "$RESULTS/bench_stitching.json"
step study_paper 120 "$PY" scripts/studies/grid_lines_torch_runner.py --preset paper --epochs 1 \
    --max-train-patterns 2000 --device cuda --no-progress-bar --overwrite \
    --output-dir "$RESULTS/study_paper"
step bench_recon_vs_ptychi 60 "$PY" scripts/benchmarks/reconstruct_vs_ptychi.py --device cuda \
    --study-dir "$RESULTS/study_paper" --model-id pinn_hybrid --epochs 100 \
    --json "$RESULTS/bench_recon_vs_ptychi.json"
if [ "${QUALITY_GATE:-1}" != "0" ]; then
    step quality_gate 420 "$PY" -m ptycho_torch.studies.quality_gate --device cuda --overwrite \
        --output-dir "$RESULTS/quality_gate"
fi

{
    echo
    echo "total: $(( $(date +%s) - t_all )) s"
    for f in bench_inference bench_training bench_generators bench_stitching bench_recon_vs_ptychi; do
        if [ -f "$RESULTS/$f.log" ]; then
            echo
            echo "## $f"
            echo
            grep -E '^\||ratio|target|skipped|not available' "$RESULTS/$f.log" || true
        fi
    done
    if [ -f "$RESULTS/study_paper.log" ]; then
        echo
        echo "## study_paper (1 epoch, 2 000 patterns)"
        echo
        grep -E '^\||parameters' "$RESULTS/study_paper.log" || true
    fi
    if [ -f "$RESULTS/quality_gate.log" ]; then
        echo
        echo "## quality_gate (Hybrid, N=128, 5 epochs, 4 489 patterns)"
        echo
        grep -E 'SSIM|quality gate' "$RESULTS/quality_gate.log" || true
    fi
} >> "$SUMMARY"
echo "gpu_check: results in $RESULTS (summary.md); $([ "$failed" -eq 0 ] && echo 'all steps ok' || echo 'some steps FAILED')"
exit "$failed"
