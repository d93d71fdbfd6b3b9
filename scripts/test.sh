#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), type-checks the tests, then runs the whole
# suite with tap. Ends with the line `N passed, N failed`. Extra arguments go to tap
# (e.g. scripts/test.sh test/unit).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
. scripts/lib/node-env.sh
# The Docker driver's tests run against a real engine; CI starts from a machine without one.
scripts/start-dockerd.sh
echo "test: type-checking tests"
npx tsc -p tsconfig.test.json --noEmit

log=$(mktemp /tmp/slipway-tap.XXXXXX)
trap 'rm -f "$log"' EXIT
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
echo "$pass passed, $fail failed"
exit "$rc"
