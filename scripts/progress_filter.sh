#!/usr/bin/env bash
# Filter of a notebook's papermill log (stdin) for the terminal, used by run_all.sh: passes on, indented and as they
# come, the experiment runner's per-training lines ("[3/8] deepmt_dr seed 1: trained in 95 s (worker 2)",
# "... from cache") and every line that starts with the progress marker ">> " (deepmt.reporting.progress);
# drops everything else (the full log is kept beside the executed notebook).
grep -a --line-buffered -E '^(\[[0-9]+/[0-9]+\] |>> )' | sed -u 's/^/    /'
