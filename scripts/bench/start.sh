#!/usr/bin/env bash
# Dyno start benchmark (issue 4): per driver (runc, LXC, Docker when its engine answers), the
# time from a start request to the dyno's process running, and to its port accepting for a
# busybox httpd web dyno, against the bare runtime doing the same with the same stack in the
# same run (`runc run`, `lxc-execute`, `docker run -d`), as medians and ratios; and the runc
# start with a cached 150 MB slug against a cached 1 MB one.
# Then the dyno network (issue 12), for runc and LXC: the httpd web dyno started as the agent
# does it, in a namespace from the pool of a HostNetwork of the bench's own (bridge swbench0,
# table swbench), against the bare runtime in a namespace a shell script makes in the same
# round (and in a ready one), and against the same dyno without a network; Docker's variant
# (a pause container per start) as an informative figure; and the scale loop: 100 networks
# made one after another (first 10 against last 10) and torn down at once.
# Usage: scripts/bench/start.sh [ROUNDS]   (as root; default 10 rounds)
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh >/dev/null
. scripts/lib/node-env.sh
scripts/start-dockerd.sh || echo "start.sh: no Docker engine; Docker is left out" >&2
exec node scripts/bench/start-bench.mjs "${1:-10}"
