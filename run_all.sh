#!/usr/bin/env bash
# Regenerate every figure (figures/) and table (results/) by executing the numbered notebooks in
# order with papermill, then render them into one HTML report per profile, results/report-<profile>.html,
# under a banner naming the profile, the date and whether the run was complete or partial (--only, a failure).
# Creates/updates the local virtual environment (.venv) first if needed.
#
#   ./run_all.sh                      # quick profile (times: README, docs/PERFORMANCE.md)
#   ./run_all.sh --profile smoke      # mechanics only, seconds per notebook; the profiles: deepmt.config.PROFILES
#                                     # (smoke, quick, paper); default: $DEEPMT_PROFILE, else quick
#   ./run_all.sh --only 01,04         # a subset (by number prefix); its report says "partial run"
#   ./run_all.sh --keep-going         # run the rest after a failure (still exits non-zero)
#   ./run_all.sh -j 2                 # trainings side by side in 2 worker processes (DEEPMT_JOBS; default:
#                                     # usable cores / train.threads, i.e. 2 x 1 thread on a 2-core CPU)
# Every argument is checked before anything runs: a bad one (unknown option or profile, an option without its
# value, an --only number that names no notebook) is one line on stderr and exit status 2, results/ untouched.
# Progress: one "=== NN_name.ipynb" line per notebook and, as they happen, the experiment runner's line per
# training ("[3/8] deepmt_dr seed 1: trained in 95 s (worker 2)" or "... from cache") and every line a notebook
# prints starting with ">> " (deepmt.reporting.progress); a notebook's whole output goes to its log,
# results/executed/<profile>/NN_name.log. Each notebook runs with DEEPMT_NOTEBOOK=NN_name (no .ipynb), and every
# cache entry it asks for is recorded in results/executed/<profile>/grid_inventory.jsonl (DEEPMT_GRID_LOG).
# Before the notebooks, a real profile prints its time estimate (python -m deepmt plan --estimate CACHE), then trains
# the whole grid in one job queue (python -m deepmt.grid_queue: every cache entry the notebooks need, longest first,
# each warm start as soon as its base is trained; its output: results/executed/<profile>/grid_queue.log), so the
# notebooks load their trainings from the cache; if it fails, nothing else runs unless --keep-going.
# Per-notebook wall times: results/timing/run_all.json (a complete run of a real profile; else
# results/executed/<profile>/timing.json), kept out of the result tables.
# Trained models: the experiment cache $DEEPMT_CACHE, default ~/.cache/deepmt/<profile> (outside the checkout);
# from an empty cache: DEEPMT_CACHE=$(mktemp -d) ./run_all.sh.
set -uo pipefail
cd "$(dirname "$0")"

usage_error() { echo "run_all.sh: $*" >&2; exit 2; }
numbers=()  # the notebooks' number prefixes: 00 01 ...
for nb in notebooks/[0-9][0-9]_*.ipynb; do [ -e "$nb" ] && numbers+=("$(basename "${nb%%_*}")"); done
numbers_text="$(IFS=,; echo "${numbers[*]:-none}")"; numbers_text="${numbers_text//,/, }"
only_needs="--only needs a value: notebook numbers separated by commas (notebooks: $numbers_text)"
takes_value() { [ $# -ge 2 ] && [ -n "$2" ] && [[ "$2" != -* ]]; }  # "--profile --only 01": --profile has no value

env_profile="$(echo "${DEEPMT_PROFILE:-}" | tr -d '[:space:]')"  # as deepmt.config.default_profile reads it
profile="${env_profile:-quick}"
profile_from=""  # "--profile" when given on the command line, else DEEPMT_PROFILE (or the default)
profile_missing=0  # --profile without its value: reported once the profiles are known (below)
only=""
only_given=0
keep_going=0
jobs=""
jobs_given=0
while [ $# -gt 0 ]; do
  case "$1" in
    -j|--jobs) [ $# -ge 2 ] || usage_error "$1 needs a number of worker processes"; jobs="$2"; jobs_given=1; shift 2 ;;
    -j*) jobs="${1#-j}"; jobs_given=1; shift ;;
    --jobs=*) jobs="${1#*=}"; jobs_given=1; shift ;;
    --profile) profile_from=--profile
      if takes_value "$@"; then profile="$2"; shift 2; else profile_missing=1; shift; fi ;;
    --profile=*) profile_from=--profile; profile="${1#*=}"; [ -n "$profile" ] || profile_missing=1; shift ;;
    --only) takes_value "$@" || usage_error "$only_needs"
      only="$2"; only_given=1; shift 2 ;;
    --only=*) only="${1#*=}"; only_given=1; shift ;;
    --keep-going) keep_going=1; shift ;;
    -h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; exit 0 ;;
    *) usage_error "unknown option $1 (see --help)" ;;
  esac
done
if [ "$jobs_given" = 1 ]; then
  [ -n "$jobs" ] || usage_error "-j needs a number of worker processes"
  if ! [[ "$jobs" =~ ^[1-9][0-9]*$ ]]; then
    usage_error "-j $jobs: expected a whole number of worker processes >= 1"
  fi
  export DEEPMT_JOBS="$jobs"
fi
if [ "$only_given" = 1 ]; then  # "01, 4" -> "01,04"; every number must name a notebook
  wanted=()
  unknown=()
  IFS=, read -ra items <<< "${only//[[:space:]]/}"
  for w in "${items[@]}"; do
    [ -n "$w" ] || continue
    [[ "$w" =~ ^[0-9]$ ]] && w="0$w"
    wanted+=("$w")
    [[ " ${numbers[*]} " == *" $w "* ]] || unknown+=("$w")
  done
  [ ${#wanted[@]} -gt 0 ] || usage_error "$only_needs"
  if [ ${#unknown[@]} -gt 0 ]; then
    names="$(IFS=,; echo "${unknown[*]}")"
    usage_error "--only $only: no notebook numbered ${names//,/, } (notebooks: $numbers_text)"
  fi
  only="$(IFS=,; echo "${wanted[*]}")"
fi

source scripts/bootstrap.sh || { echo "run_all.sh: could not set up the environment" >&2; exit 1; }
# the profiles, from the code (deepmt.config imports no torch: well under a second)
profiles="$(python -c 'from deepmt.config import PROFILES; print(" ".join(PROFILES))' 2>/dev/null)" \
  || { echo "run_all.sh: could not read the profiles from deepmt.config (python -c 'import deepmt.config' fails)" >&2; exit 1; }
profiles_text="${profiles// /, }"
if [ "$profile_missing" = 1 ]; then
  usage_error "--profile needs a value (one of $profiles_text)"
fi
if ! [[ "$profile" =~ ^[A-Za-z0-9_.-]+$ ]] || [[ " $profiles " != *" $profile "* ]]; then
  if [ -n "$profile_from" ]; then
    usage_error "--profile $profile: not a profile (one of $profiles_text)"
  fi
  usage_error "DEEPMT_PROFILE=$profile: not a profile (one of $profiles_text; or pass --profile)"
fi

# every argument is good: from here on, things run and results/ changes
export DEEPMT_PROFILE="$profile"
# the experiment cache lives outside the checkout (~/.cache/deepmt/<profile>): a machine handed to the next session as
# it was keeps it even where the work tree is laid anew, so an interrupted grid resumes there; the cache keys make
# it safe to share between clones (an entry is what its full config trained). From empty: DEEPMT_CACHE=$(mktemp -d)
export DEEPMT_CACHE="${DEEPMT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/deepmt/$profile}"
executed="results/executed/$profile"
if [ "$profile" = smoke ]; then  # smoke numbers are not results: keep the committed figures/ and results/ intact
  export DEEPMT_FIGURES="${DEEPMT_FIGURES:-$PWD/results/executed/smoke/figures}"
  export DEEPMT_RESULTS="${DEEPMT_RESULTS:-$PWD/results/executed/smoke/tables}"
fi
mkdir -p "$executed" figures results

# one notebook under papermill: its whole output to LOG, the progress lines (scripts/progress_filter.sh) to the
# terminal as they come; the exit status is papermill's
run_notebook() {  # NOTEBOOK LOG
  local name
  name="$(basename "$1")"
  DEEPMT_NOTEBOOK="${name%.ipynb}" papermill "$1" "$executed/$name" -k deepmt --log-output --cwd notebooks -p profile "$profile" \
    2>&1 | tee "$2" | bash scripts/progress_filter.sh
  return "${PIPESTATUS[0]}"
}

# the cache at start (deepmt.run_all_timing.CACHE_AT_START): empty, or warm, which becomes partial below if this run
# trained anything (a complete entry is a run folder with its result.json)
complete_entries() {
  if [ -d "$DEEPMT_CACHE/runs" ]; then find "$DEEPMT_CACHE/runs" -mindepth 2 -maxdepth 2 -name result.json | wc -l; else echo 0; fi
}
cache_state=empty
if [ -n "$(ls -A "$DEEPMT_CACHE/runs" 2>/dev/null)" ]; then cache_state=warm; fi
entries_at_start="$(complete_entries)"
# the grid inventory of this run: every cache entry each notebook asks for (deepmt.grid_log; python -m deepmt plan)
export DEEPMT_GRID_LOG="$PWD/$executed/grid_inventory.jsonl"
rm -f "$DEEPMT_GRID_LOG"
if [ "$profile" != smoke ]; then  # how long this will take, from the committed plan and what the cache holds
  python -m deepmt plan --estimate "$DEEPMT_CACHE" --profile "$profile" --workers "${DEEPMT_JOBS:-$(nproc)}" 2>/dev/null \
    || echo "time estimate: none (python -m deepmt plan --estimate failed)"
fi
start=$(date +%s)
failed=()
ran=()
times=()  # NAME=SECONDS=STATUS per notebook, for the timing file
selected=()
for nb in notebooks/[0-9][0-9]_*.ipynb; do
  num="$(basename "${nb%%_*}")"
  if [ -z "$only" ] || [[ ",$only," == *",$num,"* ]]; then selected+=("$nb"); fi
done
# one job queue for the whole grid (deepmt.grid_queue), so that no notebook's last trainings leave a worker idle; an
# entry the inventory lacks is still trained by its notebook. Not for smoke (seconds per training), not recorded in
# the grid inventory (DEEPMT_GRID_LOG: the notebooks record what they ask for)
grid_failed=0
if [ "$profile" != smoke ]; then
  grid_log="$executed/grid_queue.log"
  t0=$(date +%s)
  echo "=== the grid: every training the notebooks need, in one queue (python -m deepmt.grid_queue; full output: $grid_log)"
  run_grid() {  # its whole output to the log; its own lines and the runner's, indented, to the terminal
    DEEPMT_GRID_LOG="" python -m deepmt.grid_queue "$@" 2>&1 | tee "$grid_log" \
      | grep -a --line-buffered -E '^(\[[0-9]+/[0-9]+\] |grid: |grid_queue: )' | sed -u 's/^/    /'
    return "${PIPESTATUS[0]}"
  }
  if run_grid --profile "$profile" ${only:+--only "$only"}; then
    echo "    ok in $(( $(date +%s) - t0 )) s"
    times+=("grid_queue=$(( $(date +%s) - t0 ))=ok")
  else
    echo "    FAILED: the grid (after $(( $(date +%s) - t0 )) s); log: $grid_log" >&2
    tail -n 3 "$grid_log" >&2
    grid_failed=1
    times+=("grid_queue=$(( $(date +%s) - t0 ))=failed")
    if [ "$keep_going" != 1 ]; then
      echo "run_all.sh: stopped before the notebooks (--keep-going runs them anyway: each trains what it still needs)" >&2
      selected=()
    fi
  fi
fi
k=0
for nb in "${selected[@]}"; do
  name="$(basename "$nb")"
  log="$executed/${name%.ipynb}.log"
  k=$(( k + 1 ))
  t0=$(date +%s)
  echo "=== $name (notebook $k of ${#selected[@]}, profile $profile; full output: $log)"
  if run_notebook "$nb" "$log"; then
    echo "    ok in $(( $(date +%s) - t0 )) s"
    ran+=("$executed/$name")
    times+=("${name%.ipynb}=$(( $(date +%s) - t0 ))=ok")
  else
    echo "    FAILED: notebook $name (after $(( $(date +%s) - t0 )) s); log: $log" >&2
    tail -n 25 "$log" >&2
    failed+=("$name")
    ran+=("$executed/$name")
    times+=("${name%.ipynb}=$(( $(date +%s) - t0 ))=failed")
    [ "$keep_going" = 1 ] || break
  fi
done

# run_all.sh's own python: on failure one line naming the error, never a traceback
one_line_errors='
def fail(what, e):
    lines = str(e).strip().splitlines()
    print(f"run_all.sh: could not {what}: {type(e).__name__}" + (f": {lines[0]}" if lines else ""), file=sys.stderr)
    sys.exit(1)
'
# one report per profile (a smoke run never replaces a quick or paper one), with a banner: complete or partial
report="results/report-$profile.html"
complete=1
note=""
if [ -n "$only" ]; then complete=0; note="--only $only"; fi
if [ "$grid_failed" = 1 ]; then complete=0; note="${note:+$note; }the grid queue failed"; fi
if [ ${#failed[@]} -gt 0 ]; then
  complete=0
  note="${note:+$note; }failed: ${failed[*]}$([ "$keep_going" = 1 ] || echo ", stopped there")"
fi
if [ ${#ran[@]} -gt 0 ]; then
  python -c "import sys
$one_line_errors
try:
    from deepmt.reporting import render_report
    out = render_report(sys.argv[5:], sys.argv[1], profile=sys.argv[2], complete=sys.argv[3] == '1', note=sys.argv[4])
except (Exception, KeyboardInterrupt) as e:
    fail('render the HTML report ' + sys.argv[1], e)
print('report:', out)" "$report" "$profile" "$complete" "$note" "${ran[@]}" || true
fi
total=$(( $(date +%s) - start ))
echo "total time: ${total} s ($(( total / 60 )) min $(( total % 60 )) s), profile $profile, $(nproc) CPU cores"
timing="$executed/timing.json"
if [ "$complete" = 1 ] && [ "$profile" != smoke ]; then timing="results/timing/run_all.json"; fi
command="./run_all.sh$([ "$profile" = quick ] || echo " --profile $profile")$([ -z "$jobs" ] || echo " -j $jobs")"
if [ "$cache_state" = warm ] && [ "$(complete_entries)" -gt "$entries_at_start" ]; then cache_state=partial; fi
if [ ${#times[@]} -gt 0 ]; then
  python -c "import sys
$one_line_errors
try:
    from deepmt.run_all_timing import write_run_all_timing as w
    w(sys.argv[1], profile=sys.argv[2], total_s=float(sys.argv[3]), cache_at_start=sys.argv[4], command=sys.argv[5], notebooks=sys.argv[6:])
except (Exception, KeyboardInterrupt) as e:
    fail('record the timings in ' + sys.argv[1], e)
print('per-notebook times:', sys.argv[1])" "$timing" "$profile" "$total" "$cache_state" "$command" "${times[@]}" || true
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "run_all.sh: failed notebook(s): ${failed[*]}" >&2
  exit 1
fi
if [ "$grid_failed" = 1 ]; then
  echo "run_all.sh: the grid queue failed (python -m deepmt.grid_queue; log: $grid_log)" >&2
  exit 1
fi
# a complete run of a real profile: refresh the README's claim summary and docs/RESULTS.md's results, with how the
# numbers were made (results/timing/run_all.json)
if [ "$complete" = 1 ] && [ "$profile" != smoke ]; then
  python -m deepmt.studies.summary --readme README.md docs/RESULTS.md --timing results/timing/run_all.json
  # the grid's training FLOPs against this machine's peak, beside the measured time (docs/PERFORMANCE.md)
  python -m deepmt bench --grid "$DEEPMT_CACHE" --grid-profile "$profile" >/dev/null && python -m deepmt bench --readme docs/PERFORMANCE.md \
    || echo "run_all.sh: could not count the grid's training FLOPs (python -m deepmt bench --grid $DEEPMT_CACHE)" >&2
fi
