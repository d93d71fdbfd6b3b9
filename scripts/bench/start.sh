#!/usr/bin/env bash
# Dyno start benchmark (issue 4): per driver (runc, LXC, Docker when its engine answers), the
# time from a start request to the dyno's process running, and to its port accepting for a
# busybox httpd web dyno, against the bare runtime doing the same with the same stack in the
# same run (`runc run`, `lxc-execute`, `docker run -d`), as medians and ratios; and the runc
# start with a cached 150 MB slug against a cached 1 MB one.
# Usage: scripts/bench/start.sh [ROUNDS]   (as root; default 10 rounds)
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh >/dev/null
. scripts/lib/node-env.sh
scripts/start-dockerd.sh || echo "start.sh: no Docker engine; Docker is left out" >&2
exec node scripts/bench/start-bench.mjs "${1:-10}"
