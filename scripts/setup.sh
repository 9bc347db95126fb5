#!/usr/bin/env bash
# Creates ./.venv with the whole stack (torch, mmengine, mmcv with ops, mmdet, lbc_mmdet).
# Idempotent: a second run only checks what is already there.
#
#   bash scripts/setup.sh            # runtime stack
#   bash scripts/setup.sh --tests    # plus the test requirements
#
# Environment:
#   LBC_TORCH_SPEC   torch requirement installed when no torch is importable yet
#                    (default: torch==2.13.0). Install your own CUDA torch into .venv
#                    first and it is kept.
#   LBC_VENV         where the virtual environment lives (default: .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LBC_VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
WITH_TESTS=0
[ "${1:-}" = "--tests" ] && WITH_TESTS=1

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
export PIP_DISABLE_PIP_VERSION_CHECK=1

# A prebuilt mmcv-with-ops wheel for this exact machine type, when present (CI and the
# developers' machines). Everyone else builds mmcv from source (~45 min on 2 cores).
if [ -d ../shared/wheels ]; then
  export PIP_FIND_LINKS="${PIP_FIND_LINKS:-} $(cd ../shared/wheels && pwd)"
fi

stamp="$VENV/.lbc_mmdet_installed"
want=$(cat requirements/runtime.txt pyproject.toml; [ $WITH_TESTS = 1 ] && cat requirements/tests.txt; true)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(echo "$want" | sha256sum)" ]; then
  echo "[setup] $VENV is up to date"
  exit 0
fi

"${PIP[@]}" install -q "setuptools<82" wheel
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "[setup] keeping installed torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
else
  echo "[setup] installing ${LBC_TORCH_SPEC:-torch==2.13.0}"
  "${PIP[@]}" install -q "${LBC_TORCH_SPEC:-torch==2.13.0}"
fi
if ! "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  echo "[setup] installing mmcv 2.1.0 with compiled ops (from source this takes ~45 min on 2 cores)"
  MMCV_WITH_OPS=1 "${PIP[@]}" install --no-build-isolation "mmcv==2.1.0"
fi
echo "[setup] installing mmengine, mmdet and lbc_mmdet"
"${PIP[@]}" install -q -r requirements/runtime.txt
"${PIP[@]}" install -q --no-build-isolation --no-deps -e .
if [ $WITH_TESTS = 1 ]; then
  "${PIP[@]}" install -q -r requirements/tests.txt
fi
"$VENV/bin/python" -c "import torch, mmcv, mmcv.ops, mmengine, mmdet, lbc_mmdet; print('[setup] ok: torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmengine', mmengine.__version__, '| mmdet', mmdet.__version__)"
echo "$want" | sha256sum > "$stamp"
