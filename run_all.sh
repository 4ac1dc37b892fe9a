#!/usr/bin/env bash
# Regenerate every figure (figures/) and table (results/) by executing the numbered notebooks in
# order with papermill, then render them into one HTML report (results/report.html).
# Creates/updates the local virtual environment (.venv) first if needed.
#
#   ./run_all.sh                      # quick profile (times of the last complete run: README, Performance)
#   ./run_all.sh --profile smoke      # mechanics only, seconds per notebook
#   ./run_all.sh --only 01,04         # a subset (by number prefix)
#   ./run_all.sh --keep-going         # run the rest after a failure (still exits non-zero)
#   ./run_all.sh -j 2                 # trainings side by side in 2 worker processes (DEEPMT_JOBS; default:
#                                     # usable cores / train.threads, i.e. 2 x 1 thread on a 2-core CPU)
# Per-notebook wall times: results/timing/run_all.json (a complete run of a real profile; else
# results/executed/<profile>/timing.json), kept out of the result tables.
set -uo pipefail
cd "$(dirname "$0")"

profile="${DEEPMT_PROFILE:-quick}"
only=""
keep_going=0
jobs=""
while [ $# -gt 0 ]; do
  case "$1" in
    -j|--jobs) [ $# -ge 2 ] || { echo "run_all.sh: $1 needs a number of worker processes" >&2; exit 2; }; jobs="$2"; shift 2 ;;
    -j*) jobs="${1#-j}"; shift ;;
    --jobs=*) jobs="${1#*=}"; shift ;;
    --profile) profile="$2"; shift 2 ;;
    --profile=*) profile="${1#*=}"; shift ;;
    --only) only="$2"; shift 2 ;;
    --only=*) only="${1#*=}"; shift ;;
    --keep-going) keep_going=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "run_all.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$jobs" ]; then
  if ! [[ "$jobs" =~ ^[1-9][0-9]*$ ]]; then
    echo "run_all.sh: -j $jobs: expected a whole number of worker processes >= 1" >&2; exit 2
  fi
  export DEEPMT_JOBS="$jobs"
fi

source scripts/bootstrap.sh || { echo "run_all.sh: could not set up the environment" >&2; exit 1; }
export DEEPMT_PROFILE="$profile"
export DEEPMT_CACHE="${DEEPMT_CACHE:-$PWD/.cache/$profile}"
executed="results/executed/$profile"
if [ "$profile" = smoke ]; then  # smoke numbers are not results: keep the committed figures/ and results/ intact
  export DEEPMT_FIGURES="${DEEPMT_FIGURES:-$PWD/results/executed/smoke/figures}"
  export DEEPMT_RESULTS="${DEEPMT_RESULTS:-$PWD/results/executed/smoke/tables}"
fi
mkdir -p "$executed" figures results

cache_state=empty
if [ -n "$(ls -A "$DEEPMT_CACHE/runs" 2>/dev/null)" ]; then cache_state=warm; fi
start=$(date +%s)
failed=()
ran=()
times=()  # NAME=SECONDS=STATUS per notebook, for the timing file
for nb in notebooks/[0-9][0-9]_*.ipynb; do
  name="$(basename "$nb")"
  num="${name%%_*}"
  if [ -n "$only" ] && [[ ",$only," != *",$num,"* ]]; then continue; fi
  t0=$(date +%s)
  echo "=== $name (profile $profile)"
  if papermill "$nb" "$executed/$name" -k deepmt --log-output --cwd notebooks -p profile "$profile" >"$executed/${name%.ipynb}.log" 2>&1; then
    echo "    ok in $(( $(date +%s) - t0 )) s"
    ran+=("$executed/$name")
    times+=("${name%.ipynb}=$(( $(date +%s) - t0 ))=ok")
  else
    echo "    FAILED: notebook $name (after $(( $(date +%s) - t0 )) s); log: $executed/${name%.ipynb}.log" >&2
    tail -n 25 "$executed/${name%.ipynb}.log" >&2
    failed+=("$name")
    ran+=("$executed/$name")
    times+=("${name%.ipynb}=$(( $(date +%s) - t0 ))=failed")
    [ "$keep_going" = 1 ] || break
  fi
done

if [ ${#ran[@]} -gt 0 ]; then
  python -c "import sys; from deepmt.reporting import render_report; print('report:', render_report(sys.argv[2:], sys.argv[1]))" \
    "results/report.html" "${ran[@]}" || echo "run_all.sh: could not render the HTML report" >&2
fi
total=$(( $(date +%s) - start ))
echo "total time: ${total} s ($(( total / 60 )) min $(( total % 60 )) s), profile $profile, $(nproc) CPU cores"
timing="$executed/timing.json"
if [ -z "$only" ] && [ "$profile" != smoke ] && [ ${#failed[@]} -eq 0 ]; then timing="results/timing/run_all.json"; fi
command="./run_all.sh$([ "$profile" = quick ] || echo " --profile $profile")$([ -z "$jobs" ] || echo " -j $jobs")"
if [ ${#times[@]} -gt 0 ]; then
  python -c "import sys; from deepmt.bench import write_run_all_timing as w; w(sys.argv[1], profile=sys.argv[2], total_s=float(sys.argv[3]), cache_at_start=sys.argv[4], command=sys.argv[5], notebooks=sys.argv[6:]); print('per-notebook times:', sys.argv[1])" \
    "$timing" "$profile" "$total" "$cache_state" "$command" "${times[@]}" || echo "run_all.sh: could not record the timings" >&2
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "run_all.sh: failed notebook(s): ${failed[*]}" >&2
  exit 1
fi
# a complete run of a real profile: refresh the README's results, with how the numbers were made (results/timing/run_all.json)
if [ -z "$only" ] && [ "$profile" != smoke ]; then
  python -m deepmt.studies.summary --readme README.md --timing results/timing/run_all.json
  # the grid's training FLOPs against this machine's peak, beside the measured time (README, Performance)
  python -m deepmt bench --grid "$DEEPMT_CACHE" >/dev/null && python -m deepmt bench --readme README.md docs/PERFORMANCE.md \
    || echo "run_all.sh: could not count the grid's training FLOPs (python -m deepmt bench --grid $DEEPMT_CACHE)" >&2
fi
