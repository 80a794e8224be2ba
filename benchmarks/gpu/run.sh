#!/usr/bin/env bash
# The GPU run: every GPU figure of docs/benchmarks.md from one command (its "GPU run" section
# gives the device-tool call). From the repository root:
#
#   OUT=results bash benchmarks/gpu/run.sh [--smoke] [--parts dvg,train] [--deadline 450]
#
# Installs the carried wheels (.gpu-wheels/, made by `make gpu-wheels`) into a temporary site
# folder, then runs `python -m benchmarks.gpu.run`, logging everything to $OUT/run.log.
# PYTHON picks the interpreter (default python3: on the GPU machine, the one with CUDA torch).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 3
PYTHON=${PYTHON:-python3}
OUT=${OUT:-gpu_results}
WHEELS=${GPU_WHEELS:-.gpu-wheels}
SITE=${GPU_SITE:-/tmp/spatialdreamer-gpu-site}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONUNBUFFERED=1
{
    echo "gpu run: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n), $PYTHON = $(command -v "$PYTHON")"
    if compgen -G "$WHEELS/*.whl" >/dev/null; then
        rm -rf "$SITE"
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" "$WHEELS"/*.whl || { echo "gpu run: installing $WHEELS failed"; exit 3; }
        echo "gpu run: installed $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into $SITE"
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "gpu run: no wheels in $WHEELS: using the packages $PYTHON already has"
    fi
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    "$PYTHON" -m benchmarks.gpu.run --out "$OUT" "$@"
} 2>&1 | tee -a "$OUT/run.log"
exit "${PIPESTATUS[0]}"
