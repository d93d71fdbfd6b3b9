#!/usr/bin/env bash
# Placement benchmark (issue 15): the time of one placement choice (coordinator/placement.ts
# chooseAgent: zone, then host spread of the formation's dynos, then free memory) over AGENTS
# agents in 3 zones holding DYNOS existing dynos (formations of 10), as a run of formation
# changes that place 4 dynos each. Against a baseline measured in the same run on the same
# views: the rule before issue 15 (most free memory, no spread). Prints p50/p99 of both, their
# ratios, the per-formation count (once per change), how far a fresh formation of 6 spreads
# under each rule, and the target (p99 < 5 ms with 2,000 agents). CPU only: no processes, no
# sockets. PLACEMENT_MODULE=path/to/placement.js measures a placement.js compiled apart.
# Usage: scripts/bench/placement.sh [AGENTS] [DYNOS] [CHOICES]   (as root; default 2000 10000 4000)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -n "${PLACEMENT_MODULE:-}" ] || scripts/setup.sh >/dev/null
. scripts/lib/node-env.sh
exec node scripts/bench/placement.mjs "${1:-2000}" "${2:-10000}" "${3:-4000}"
