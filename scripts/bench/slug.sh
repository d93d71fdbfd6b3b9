#!/usr/bin/env bash
# Slug store benchmark (issue 3): a realistic slug (~10,000 files, ~150 MB unpacked: the node
# binary plus node_modules files) served over loopback by busybox httpd. Per round, a cold
# fetch by the agent's slug store (download + SHA-256 + policy + extraction as the dyno user)
# in a process with the agent's modules loaded, against `curl -s URL | tar -xz` into the same
# file system, alternating order; medians of 5 and the ratio. The `slug fetch` CLI, node's
# start included, is timed too (informative). Also: peak RSS of the fetching process, the cost of a cache hit, and 20 concurrent
# requests for one new slug. Usage: scripts/bench/slug.sh [ROUNDS]   (as root)
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh >/dev/null
. scripts/lib/node-env.sh
exec node scripts/bench/slug-bench.mjs "${1:-5}"
