#!/usr/bin/env bash
# The device check (benchmarks/device_check.py): run on a machine with a CUDA GPU, from the
# repository root, after `make test` has built .venv (or with any python that has the package).
# Writes device_check.json into $OUT (or the current folder). Extra arguments pass through,
# e.g. --dry-run to check the script on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PY" benchmarks/device_check.py --out "${OUT:-.}/device_check.json" "$@"
