#!/usr/bin/env bash
# Fleet benchmark (issue 6): AGENTS simulated agents (the real agent's session code over a
# fake runtime, many per process) against the reference coordinator on this machine.
# Measures, in one run:
#  - coordinator memory per idle agent: RSS with AGENTS connected minus RSS with 0 (the
#    baseline, same run), over AGENTS; and its CPU at steady state;
#  - placement decision latency (p50/p99) over AGENTS agents, from 100 formations of 5;
#  - a crash restart (SIGKILL, restarted 1 s later) and a graceful one (SIGTERM): time until
#    every agent is back, and the most connection attempts in any one second.
# Targets: all back within 60 s, <= 200 attempts a second, < 50 KB per agent, p99 < 5 ms.
# Usage: scripts/bench/fleet.sh [AGENTS] [AGENT_PROCESSES] [STEADY_SECONDS]   (default 2000 4 30)
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh >/dev/null
. scripts/lib/node-env.sh
# One socket per agent on each side, plus headroom.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec node scripts/bench/fleet-bench.mjs "${1:-2000}" "${2:-4}" "${3:-30}"
