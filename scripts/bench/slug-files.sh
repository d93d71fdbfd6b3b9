#!/usr/bin/env bash
# What a many-file slug costs the host (issue 12): GNU tar creating FILES empty files as the
# dyno user, spread 1,000 per directory (the baseline, as node_modules is) and all in one
# directory; the agent's extractor refusing a slug of FILES+1 entries at an entry cap of FILES
# (through the extraction cgroup), and removing what it wrote at once, as the store does; and,
# with two busy "dyno" processes at standard-1x shares, an extraction of CONTENDED files with
# and without the extraction cgroup: its time, tar's share of a CPU, the dynos' rate. ROUNDS
# rounds of each pair, alternating which goes first; medians, against baselines from the same
# run. The other removals are timed last: on this ext4 (online discard) writes after a large
# removal are several times slower (README, "Slug fetch").
# Usage: scripts/bench/slug-files.sh [FILES] [CONTENDED] [ROUNDS]   (as root; 200000 50000 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh >/dev/null
. scripts/lib/node-env.sh
exec node scripts/bench/slug-files-bench.mjs "${1:-200000}" "${2:-50000}" "${3:-3}"
