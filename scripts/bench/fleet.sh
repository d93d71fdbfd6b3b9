#!/usr/bin/env bash
# Fleet benchmark (issues 6 and 15): AGENTS simulated agents (the real agent's session code
# over a fake runtime, many per process) against the reference coordinator on this machine.
#
# scripts/bench/fleet.sh [AGENTS] [AGENT_PROCESSES] [STEADY_SECONDS]   (default 2000 4 30)
#   The state in memory, one coordinator. Measures, in one run:
#   - coordinator memory per idle agent: RSS with AGENTS connected minus RSS with 0 (the
#     baseline, same run), over AGENTS; and its CPU at steady state;
#   - placement decision latency (p50/p99) over AGENTS agents, from 100 formations of 5;
#   - a crash restart (SIGKILL, restarted 1 s later) and a graceful one (SIGTERM): time until
#     every agent is back, and the most connection attempts in any one second.
#
# scripts/bench/fleet.sh --postgres [AGENTS] [AGENT_PROCESSES] [STEADY_SECONDS]
#   The state in PostgreSQL (a private cluster on loopback, scripts/pg-test-server.sh,
#   started and removed here), a leader and a follower coordinator on it, every agent given
#   both URLs (fleet-pg-bench.mjs). Measures, in one run: the figures above for the in-memory
#   store and for the PostgreSQL leader, side by side (SLIPWAY_BENCH_MEMORY_STORE=0 skips the
#   in-memory part); then the leader is SIGKILLed: time until every agent is ready on the new
#   leader, the most attempts in any one second at the new leader and overall, and whether
#   the dynos the new leader knows are the ones placed before the kill, none placed again.
#   Exit status 3 when a failover target or the dyno check is missed. SLIPWAY_BENCH_KEEP=1
#   keeps the work dir (coordinator logs); the cluster is removed either way.
#
# Targets: all back within 60 s, <= 200 attempts a second, < 50 KB per agent, p99 < 5 ms.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=memory
if [ "${1:-}" = "--postgres" ]; then mode=postgres; shift; fi
# Its output (tsc's errors among it) goes to /dev/null: say where to look when it fails.
scripts/setup.sh >/dev/null || { echo "fleet: scripts/setup.sh failed; run it to see why" >&2; exit 1; }
. scripts/lib/node-env.sh
# One socket per agent on each side, plus headroom.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$mode" = memory ]; then
  exec node scripts/bench/fleet-bench.mjs "${1:-2000}" "${2:-4}" "${3:-30}"
fi

# The PostgreSQL run. Everything it makes is under WORK; the trap ends the driver, then every
# process the driver recorded (by pid), then the cluster, whatever way this script ends.
work=$(mktemp -d /tmp/slipway-fleet-pg.XXXXXX)
chmod 755 "$work" # the cluster's directory below it belongs to the postgres user
driver=""
status=1
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$driver" ] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$driver" 2>/dev/null || true
  fi
  if [ -f "$work/pids" ]; then
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$work/pids"
  fi
  if [ "$status" != 0 ]; then
    for log in "$work"/coordinator-*.log; do
      [ -s "$log" ] && { echo "--- last lines of $log:" >&2; tail -n 15 "$log" >&2; }
    done
  fi
  scripts/pg-test-server.sh stop "$work/pg" || true
  if [ "${SLIPWAY_BENCH_KEEP:-0}" = 1 ]; then echo "fleet: kept $work" >&2; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'status=130; cleanup' INT TERM

# A copy of the build: a rebuild of dist/ in this checkout during the run does not change the
# code the coordinators and agents load (node_modules and the package type come from here).
cp -r dist "$work/dist"
ln -s "$PWD/node_modules" "$work/node_modules"
cp package.json "$work/package.json"
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})')
url=$(scripts/pg-test-server.sh start "$work/pg" "$port")
( umask 077; echo "$url" >"$work/database-url" )
echo "fleet: PostgreSQL $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1 | cut -d/ -f5) on 127.0.0.1:$port (private cluster, fsync off)"

node scripts/bench/fleet-pg-bench.mjs "${1:-2000}" "${2:-4}" "${3:-30}" "$work" &
driver=$!
set +e
wait "$driver"
status=$?
set -e
