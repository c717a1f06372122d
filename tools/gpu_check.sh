#!/usr/bin/env bash
# One-command GPU check (issue 13): install what this Python lacks from the wheels copied beside
# the tree (.whl/), run the CUDA tests, the bench at 1242x375 (paper-size untrained esp_joint at
# D=192 and the shipped weights, fp32/fp16/bf16, then channels-last + CUDA graphs) and the live
# node on CUDA with its end-to-end latency from /diagnostics; prints one table and writes
# out/gpu_check/gpu_check.json. Sized for < 8 minutes on a GPU machine; tools/gpu_check.py says
# what each step does.
#
#   tools/gpu_check.sh                 on the GPU machine (its Python 3.12 with CUDA torch)
#   tools/gpu_check.sh --dry-run       the same steps on the CPU at toy sizes (CI runs this)
#   tools/gpu_check.sh --fetch-wheels  on a machine with a package index: fill .whl/ first
#
# PYTHON=/path/to/python picks the interpreter (default: python3; --dry-run prefers .venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py="${PYTHON:-}"
if [[ -z "$py" ]]; then
    if [[ " $* " == *" --dry-run "* && -x .venv/bin/python ]]; then
        py=.venv/bin/python
    else
        py=python3
    fi
fi
exec "$py" tools/gpu_check.py "$@"
