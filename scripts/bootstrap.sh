#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv) when needed; fast when up to date.
# Sourced by run_all.sh and run_tests.sh. Set DEEPMT_VENV to use another location.
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DEEPMT_VENV:-$_root/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating virtual environment $VENV" >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
fi
# Reinstall only when pyproject.toml changed since the last successful install.
_stamp="$VENV/.deepmt-install-stamp"
_want="$(sha256sum "$_root/pyproject.toml" | cut -d' ' -f1)"
# DEEPMT_SKIP_INSTALL=1: use the environment as it is (tests that run these scripts on a copy of the
# repository must not re-point the shared editable install at a temporary folder).
if [ "${DEEPMT_SKIP_INSTALL:-0}" != 1 ] && { [ ! -f "$_stamp" ] || [ "$(cat "$_stamp")" != "$_want" ]; }; then
  echo "[bootstrap] installing deepmt and its dependencies into $VENV (torch==2.14.1 takes a minute)" >&2
  "$VENV/bin/python" -m pip install -q -e "$_root[dev]" >&2
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name deepmt --display-name "deepmt (.venv)" >/dev/null
  echo "$_want" > "$_stamp"
fi
export PATH="$VENV/bin:$PATH"
export MPLBACKEND="${MPLBACKEND:-Agg}"
