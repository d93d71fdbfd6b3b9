#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), type-checks and lints, then runs the whole
# suite with tap. Ends with the line `N passed, N failed`. Extra arguments go to tap
# (e.g. scripts/test.sh test/unit).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
. scripts/lib/node-env.sh
# The Docker driver's tests run against a real engine; CI starts from a machine without one.
scripts/start-dockerd.sh
# A type error or a lint finding fails the run before the suite (still ending with the count line).
echo "test: type-checking tests"
npx tsc -p tsconfig.test.json --noEmit || { echo "0 passed, 1 failed"; exit 1; }
# ESLint with typescript-eslint's type-checked rules (eslint.config.mjs), at zero warnings.
echo "test: linting"
npx eslint --max-warnings 0 agent shared coordinator cli test || { echo "0 passed, 1 failed"; exit 1; }

log=$(mktemp /tmp/slipway-tap.XXXXXX)
vmlog=""
# One private PostgreSQL cluster for the run (the coordinator's store tests make a database
# each in it: test/helpers/postgres.ts), on a free loopback port, stopped when the run ends.
pgdir=/tmp/slipway-pg-run-$$
pgport=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
trap 'rm -f "$log" ${vmlog:+"$vmlog"}; scripts/pg-test-server.sh stop "$pgdir"' EXIT
echo "test: starting PostgreSQL on 127.0.0.1:$pgport"
SLIPWAY_TEST_PG_URL=$(scripts/pg-test-server.sh start "$pgdir" "$pgport") || { echo "0 passed, 1 failed"; exit 1; }
export SLIPWAY_TEST_PG_URL
set +e
# A subset of the suite cannot meet the whole suite's coverage thresholds (.taprc).
extra=()
[ $# -gt 0 ] && extra=(--allow-incomplete-coverage)
npx tap "${extra[@]}" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# tap's closing summary looks like `# { total: 12, pass: 11, fail: 1 }`.
summary=$(grep -E '^# \{ total: ' "$log" | tail -n 1 || true)
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary"); pass=${pass:-0}
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary"); fail=${fail:-0}
if [ "$rc" != 0 ] && [ "$fail" = 0 ]; then fail=1; fi   # a crash or timeout counts as a failure
# The VM suite (scripts/vm/run.sh: test/vm/ on a systemd + cgroup v2 guest under qemu) after
# the host suite: in a whole run (no arguments) unless SLIPWAY_VM=0; SLIPWAY_VM=1 adds it to a
# subset. Its test files count into the line below like the host's.
if [ "${SLIPWAY_VM:-$([ $# -eq 0 ] && echo 1 || echo 0)}" = 1 ]; then
  vmlog=$(mktemp /tmp/slipway-vm-log.XXXXXX)
  set +e
  scripts/vm/run.sh 2>&1 | tee "$vmlog"
  vmrc=${PIPESTATUS[0]}
  set -e
  vmline=$(grep -E '^vm: [0-9]+ passed, [0-9]+ failed$' "$vmlog" | tail -n 1 || true)
  vmpass=$(sed -nE 's/^vm: ([0-9]+) passed.*/\1/p' <<<"$vmline"); vmpass=${vmpass:-0}
  vmfail=$(sed -nE 's/.* ([0-9]+) failed$/\1/p' <<<"$vmline"); vmfail=${vmfail:-0}
  if [ "$vmrc" != 0 ] && [ "$vmfail" = 0 ]; then vmfail=1; fi
  pass=$((pass + vmpass)); fail=$((fail + vmfail))
  if [ "$rc" = 0 ]; then rc=$vmrc; fi
fi
echo "$pass passed, $fail failed"
exit "$rc"
