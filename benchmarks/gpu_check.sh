#!/usr/bin/env bash
# The GPU run in one command (at most 8.5 minutes on one H100/H200): kernel tests, bench scan against the reference,
# flash attention and the floors, the scan tuning sweeps, training memory and speed, the 1M-token step and audio
# decoding; each stage under its own time limit, then summary.md and summary.json beside each figure's target.
#
#   benchmarks/gpu_check.sh [--dry-run] [--pack] [--only STAGES] [--skip STAGES] [OUT_DIR]
#
# OUT_DIR defaults to $OUT (the device machine's returned folder, packed) or benchmarks/results/gpu_check_<stamp>.
# --dry-run: every stage on the CPU at tiny shapes (the test suite runs it). PYTHON picks the interpreter
# (default: python3). Details: benchmarks/gpu_check.py.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
exec "${PYTHON:-python3}" -P "$repo/benchmarks/gpu_check.py" "$@"
