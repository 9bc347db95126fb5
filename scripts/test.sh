#!/usr/bin/env bash
# Install everything (with the test requirements) into ./.venv and run the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k lbc`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=12 "$@"
