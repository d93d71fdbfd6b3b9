#!/usr/bin/env bash
# Density benchmark (issue 5): the agent's own overhead with many running dynos. Starts the
# built reference coordinator and agent as real processes, measures the agent idle with 0
# dynos (the baseline, same run), scales a worker formation of tiny (32 MB) runc dynos to
# COUNT, waits until all are up, and measures the agent idle again: CPU time over the window
# from /proc/<pid>/stat (% of one core) and RSS (current and peak). Then scales to 0 and
# removes everything it made.
# Usage: scripts/bench/density.sh [COUNT] [WINDOW_SECONDS]   (as root; default 100 dynos, 60 s)
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh >/dev/null
. scripts/lib/node-env.sh
exec node scripts/bench/density-bench.mjs "${1:-100}" "${2:-60}"
