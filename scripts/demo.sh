#!/usr/bin/env bash
# The main job on one host: installs what is missing, starts the reference coordinator and
# one agent, deploys the sample web app (scripts/demo-app) as a slug, and prints the app's
# URL and one response through the router. Ctrl-C removes every dyno, mount and process it
# made. `--check` does the same non-interactively and exits 0 only if a dyno answered.
#
# Environment: SLIPWAY_DEMO_DIR (default /tmp/slipway-demo), DEMO_API_PORT (7700),
# DEMO_ROUTER_PORT (7780), DEMO_SLUG_PORT (7790), DEMO_DIAG_PORT (7701), DEMO_QUANTITY (2).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

CHECK=0
case "${1:-}" in
  --check) CHECK=1 ;;
  "") ;;
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
  *) echo "demo.sh: unknown option $1 (use --check or nothing)" >&2; exit 2 ;;
esac

DIR=${SLIPWAY_DEMO_DIR:-/tmp/slipway-demo}
API_PORT=${DEMO_API_PORT:-7700}
ROUTER_PORT=${DEMO_ROUTER_PORT:-7780}
SLUG_PORT=${DEMO_SLUG_PORT:-7790}
DIAG_PORT=${DEMO_DIAG_PORT:-7701}
QUANTITY=${DEMO_QUANTITY:-2}
STATE="$DIR/state"
CGROUP_PARENT=/slipway-demo
APP=demo

scripts/setup.sh --stack-dir "$STATE/stacks/busybox"
. scripts/lib/node-env.sh

for port in "$API_PORT" "$ROUTER_PORT" "$SLUG_PORT" "$DIAG_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port on 127.0.0.1 is already in use (another demo running?). Set DEMO_*_PORT." >&2
    exit 1
  fi
done

mkdir -p "$DIR/www" "$STATE"
# The demo's dynos get their own bridge, subnet and nftables table (docs/network.md), so that it
# never touches the network of an agent that runs on this host for real.
cat > "$DIR/agent.json" <<'JSON'
{"network": {"bridge": "slipdemo0", "subnet": "100.73.0.0/24", "table": "slipway_demo", "poolSize": 2}}
JSON
[ -s "$DIR/token" ] || (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$DIR/token")
# The API's token (the developer CLI's), not the agents' one: a host's secret drives no API.
[ -s "$DIR/api-token" ] || (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$DIR/api-token")
API_AUTH="Authorization: Bearer $(cat "$DIR/api-token")"

# The slug: a gzipped tar whose root is ./app, addressed by its SHA-256.
tar -czf "$DIR/www/demo-slug.tgz" -C scripts/demo-app --owner=0 --group=0 ./app
SHA=$(sha256sum "$DIR/www/demo-slug.tgz" | cut -d' ' -f1)

PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  echo "demo: tearing down"
  curl -s -o /dev/null -X PUT "http://127.0.0.1:$API_PORT/apps/$APP/formation/web" -H 'content-type: application/json' -H "$API_AUTH" \
    -d "{\"quantity\":0,\"size\":\"standard-1x\",\"command\":\"httpd -f -p \$PORT -h /app/public\",\"slug\":{\"url\":\"http://127.0.0.1:$SLUG_PORT/demo-slug.tgz\",\"sha256\":\"$SHA\"}}" || true
  for _ in $(seq 1 100); do
    n=$(curl -s -H "$API_AUTH" "http://127.0.0.1:$API_PORT/dynos" 2>/dev/null | grep -o '"state":"[a-z]*"' | grep -vc '"down"' || true)
    [ "${n:-0}" = 0 ] && break
    sleep 0.2
  done
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Safety net: whatever is still under the demo's state dir goes.
  node dist/agent/main.js cleanup --config "$DIR/agent.json" --state-dir "$STATE" --cgroup-parent "$CGROUP_PARENT" >/dev/null 2>&1 || true
  for d in /sys/fs/cgroup/*"$CGROUP_PARENT" /sys/fs/cgroup"$CGROUP_PARENT"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done
  echo "demo: logs kept in $DIR (coordinator.log, agent.log)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

busybox httpd -f -p "127.0.0.1:$SLUG_PORT" -h "$DIR/www" &
PIDS+=($!)

SLIPWAY_COORDINATOR_TOKEN=$(cat "$DIR/token") node dist/coordinator/main.js serve --api-token-file "$DIR/api-token" \
  --listen "127.0.0.1:$API_PORT" --router-listen "127.0.0.1:$ROUTER_PORT" > "$DIR/coordinator.log" 2>&1 &
PIDS+=($!)

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "demo: timed out after ${secs}s waiting for $what" >&2
  return 1
}
wait_for 20 "the coordinator" curl -sf "http://127.0.0.1:$API_PORT/healthz"

node dist/agent/main.js serve --config "$DIR/agent.json" --coordinator "ws://127.0.0.1:$API_PORT/v1/agent" --token-file "$DIR/token" \
  --state-dir "$STATE" --address 127.0.0.1 --cgroup-parent "$CGROUP_PARENT" --reserved-memory-mb 512 \
  --diagnostics-listen "127.0.0.1:$DIAG_PORT" --stop-grace-ms 5000 --stop-dynos-on-exit > "$DIR/agent.log" 2>&1 &
PIDS+=($!)
wait_for 30 "the agent to connect" sh -c "curl -sf -H '$API_AUTH' http://127.0.0.1:$API_PORT/agents | grep -q '\"connected\":true'"

echo "demo: deploying $APP (slug sha256 $SHA, $QUANTITY web dynos)"
curl -sf -X PUT "http://127.0.0.1:$API_PORT/apps/$APP/formation/web" -H 'content-type: application/json' -H "$API_AUTH" \
  -d "{\"quantity\":$QUANTITY,\"size\":\"standard-1x\",\"command\":\"httpd -f -p \$PORT -h /app/public\",\"env\":{\"APP_NAME\":\"$APP\"},\"slug\":{\"url\":\"http://127.0.0.1:$SLUG_PORT/demo-slug.tgz\",\"sha256\":\"$SHA\"}}" >/dev/null
wait_for 60 "a routable dyno" sh -c "curl -sf -H '$API_AUTH' http://127.0.0.1:$API_PORT/routes | grep -q '\"port\"'"

URL="http://$APP.localhost:$ROUTER_PORT/"
RESPONSE=$(curl -s --max-time 10 -H "Host: $APP.localhost" "http://127.0.0.1:$ROUTER_PORT/")
echo
echo "App URL:   $URL   (or: curl -H 'Host: $APP.localhost' http://127.0.0.1:$ROUTER_PORT/)"
echo "Response:  $RESPONSE"
echo "Agent:     curl -s -H \"Authorization: Bearer \$(cat $STATE/agent/diagnostics.token)\" http://127.0.0.1:$DIAG_PORT/v1/dynos"
echo
echo "As the app's developer, with the slipway CLI (it talks to the coordinator's API only):"
echo "  export SLIPWAY_API_URL=http://127.0.0.1:$API_PORT SLIPWAY_API_TOKEN=\$(cat $DIR/api-token)"
echo "  alias slipway='node $ROOT/dist/cli/main.js'"
echo "  slipway ps -a $APP"
echo "  slipway logs -a $APP --tail"
echo "  slipway scale -a $APP web=3"
echo "  slipway restart -a $APP web.1"
echo "  slipway run -a $APP -- ls /app              (a one-off dyno: its output here, its exit code slipway's)"
echo "  slipway run -a $APP -- sh                   (an interactive shell in a one-off dyno, on a terminal)"
echo "  slipway run -a $APP --detach -- ls /app     (its output: slipway logs -a $APP --dyno run.N)"
echo

if [ "$CHECK" = 1 ]; then
  PS_OUT=$(SLIPWAY_API_URL="http://127.0.0.1:$API_PORT" SLIPWAY_API_TOKEN=$(cat "$DIR/api-token") node dist/cli/main.js ps -a "$APP" || true)
  echo "$PS_OUT"
  if [[ "$PS_OUT" != *"web.1: up"* ]]; then
    echo "demo --check: FAILED, slipway ps does not show web.1 up" >&2
    exit 1
  fi
  # The attached one-off the lines above print, as a developer runs it.
  RUN_OUT=$(SLIPWAY_API_URL="http://127.0.0.1:$API_PORT" SLIPWAY_API_TOKEN=$(cat "$DIR/api-token") timeout 120 node dist/cli/main.js run --no-tty -a "$APP" -- ls /app </dev/null || true)
  echo "$RUN_OUT"
  if [[ "$RUN_OUT" != *"public"* ]]; then
    echo "demo --check: FAILED, slipway run -a $APP -- ls /app did not list /app" >&2
    exit 1
  fi
  if [[ "$RESPONSE" == "Hello from web."* ]]; then
    echo "demo --check: OK, a dyno answered through the router"
    exit 0
  fi
  echo "demo --check: FAILED, the router's answer did not come from a dyno" >&2
  exit 1
fi
echo "demo: running; press Ctrl-C to stop and clean up"
while true; do sleep 3600 & wait $!; done
