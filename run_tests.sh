#!/usr/bin/env bash
# Run the whole test suite: unit tests + every notebook under the smoke profile (pytest --nbval).
# ./run_tests.sh --fast [pytest args]: the fast tier, the unit tests without the notebooks and without the tests
# marked slow (they train, or run the CLI, run_all.sh or a worker pool in other processes; tests/conftest.py).
# Creates/updates .venv first if needed. Extra arguments go to pytest, e.g. ./run_tests.sh tests/test_config.py -x
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
export DEEPMT_PROFILE="${DEEPMT_PROFILE:-smoke}"
export DEEPMT_CACHE="${DEEPMT_CACHE:-$PWD/.cache/test}"
# smoke figures and tables are not results: keep them away from the committed figures/ and results/
export DEEPMT_FIGURES="${DEEPMT_FIGURES:-$DEEPMT_CACHE/figures}"
export DEEPMT_RESULTS="${DEEPMT_RESULTS:-$DEEPMT_CACHE/results}"
if [ "${1:-}" = "--fast" ]; then
  shift
  exec python -m pytest tests -m "not slow" -p no:cacheprovider "$@"
fi
if [ $# -gt 0 ]; then
  exec python -m pytest "$@"
fi
exec python -m pytest tests notebooks --nbval --nbval-current-env -p no:cacheprovider
