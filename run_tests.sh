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
# the whole suite on every core (pytest-xdist; DEEPMT_TEST_WORKERS=1: one process): --dist loadscope keeps each
# module's tests, and each notebook's cells, in one worker and in order (nbval needs its cells run in sequence); one
# thread per worker, as the runner trains (two workers x one thread beat one x two on this 2-core CPU)
workers="${DEEPMT_TEST_WORKERS:-$(nproc)}"
if [ "$workers" -gt 1 ]; then
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
  exec python -m pytest tests notebooks --nbval --nbval-current-env -p no:cacheprovider -n "$workers" --dist loadscope
fi
exec python -m pytest tests notebooks --nbval --nbval-current-env -p no:cacheprovider
