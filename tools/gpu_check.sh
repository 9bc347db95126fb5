#!/usr/bin/env bash
# The prepared GPU check (docs/deployment.md, "GPU check"): on a CUDA GPU with compute
# capability >= 8.0 it checks the 2:4 kernels on every ResNet-50 GEMM shape, the lowered 2:4
# backbone + FPN, loss-scaled fp16 training of every registered N:M method, and times dense
# vs 2:4; it writes OUT/gpu_check.json and OUT/gpu_check.md. Elsewhere it prints one line,
# exit 0.
#
#   bash tools/gpu_check.sh [--out DIR] [--wheels DIR] [more options: --help]
#
# Where `import lbc_mmdet` fails (a bare machine with torch only), the wheels of --wheels DIR
# (or $LBC_MMDET_WHEELS; default .whl/device-py312 in the repo) are installed into
# /tmp/lbc_site, which goes first on PYTHONPATH. $PYTHON picks the interpreter (default: the
# repo's .venv if there is one, else python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEELS="${LBC_MMDET_WHEELS:-$ROOT/.whl/device-py312}"
SITE=/tmp/lbc_site
ARGS=()
HELP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEELS="${2:?--wheels needs a folder}"; shift 2 ;;
    --wheels=*) WHEELS="${1#--wheels=}"; shift ;;
    -h|--help) HELP=1; ARGS+=("$1"); shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done

if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"
else PY=python3; fi

if [ "$HELP" = 0 ]; then
  # torch alone says whether there is anything to check
  set +e
  WHY="$("$PY" - 2>/dev/null <<'EOF'
import sys
try:
    import torch
except Exception as err:  # noqa: BLE001
    print(f'torch cannot be imported: {type(err).__name__}: {err}')
    sys.exit(1)
if not torch.cuda.is_available():
    print('no CUDA GPU available')
    sys.exit(1)
cap = torch.cuda.get_device_capability()
if tuple(cap) < (8, 0):
    print(f'{torch.cuda.get_device_name()} has compute capability {cap[0]}.{cap[1]}')
    sys.exit(1)
EOF
)"
  rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then
    echo "gpu_check: no CUDA GPU with compute capability >= 8.0 here (${WHY:-python failed}): nothing checked"
    exit 0
  fi
fi

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c 'import lbc_mmdet' >/dev/null 2>&1; then
  if [ -d "$SITE" ] && PYTHONPATH="$SITE:$PYTHONPATH" "$PY" -c 'import lbc_mmdet' >/dev/null 2>&1; then
    :  # installed by an earlier run
  else
    shopt -s nullglob
    wheels=("$WHEELS"/*.whl)
    shopt -u nullglob
    if [ ${#wheels[@]} -eq 0 ]; then
      echo "error: lbc_mmdet cannot be imported and $WHEELS holds no wheels (give --wheels DIR or LBC_MMDET_WHEELS)" >&2
      exit 2
    fi
    echo "gpu_check: installing ${#wheels[@]} wheels of $WHEELS into $SITE"
    if ! "$PY" -m pip install -q --no-index --no-deps --upgrade --target "$SITE" "${wheels[@]}"; then
      echo "error: installing the wheels of $WHEELS into $SITE failed" >&2
      exit 2
    fi
  fi
  export PYTHONPATH="$SITE:$PYTHONPATH"
  if ! "$PY" -c 'import lbc_mmdet' >/dev/null 2>&1; then
    echo "error: lbc_mmdet cannot be imported even with $SITE:" >&2
    "$PY" -c 'import lbc_mmdet' 2>&1 | tail -n 1 >&2
    exit 2
  fi
fi

cd "$ROOT"
export PYTHONUNBUFFERED=1
exec "$PY" -m lbc_mmdet.gpu_check ${ARGS[@]+"${ARGS[@]}"}
