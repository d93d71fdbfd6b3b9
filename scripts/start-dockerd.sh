#!/usr/bin/env bash
# Makes sure a Docker engine answers on this host, for the Docker driver and its tests.
# Idempotent: when `docker info` answers, it does nothing. Otherwise it installs docker.io
# (Debian) if dockerd is missing, starts the engine (systemd's docker.service on a systemd
# host, else `dockerd` in the background, detached with setsid, logging to
# /var/log/slipway-dockerd.log) and waits for it to answer. dockerd starts its own containerd
# when none runs. Exits non-zero with the reason when the engine never answers.
# Usage: scripts/start-dockerd.sh        (SLIPWAY_DOCKERD_WAIT=seconds, default 30)
set -euo pipefail

# dockerd answers within ~2 s here (Debian 12, docker.io 20.10); 30 s covers a first start
# that creates /var/lib/docker on a slow disk.
WAIT_SECONDS="${SLIPWAY_DOCKERD_WAIT:-30}"
LOG=/var/log/slipway-dockerd.log

answers() { timeout 5 docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && answers; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  echo "start-dockerd: installing docker.io" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends docker.io >/dev/null 2>&1; then
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends docker.io >/dev/null
  fi
fi

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl start docker.service || echo "start-dockerd: systemctl start docker.service failed" >&2
elif pgrep -x dockerd >/dev/null 2>&1; then
  # One is starting (or wedged): never start a second one on the same data root.
  echo "start-dockerd: dockerd is running but not answering yet; waiting" >&2
else
  echo "start-dockerd: starting dockerd (log: $LOG)" >&2
  setsid dockerd >>"$LOG" 2>&1 </dev/null &
fi

deadline=$((SECONDS + WAIT_SECONDS))
while [ "$SECONDS" -lt "$deadline" ]; do
  if answers; then
    exit 0
  fi
  sleep 0.5
done

echo "start-dockerd: the Docker engine did not answer within ${WAIT_SECONDS} s" >&2
if [ -f "$LOG" ]; then
  echo "start-dockerd: last lines of $LOG:" >&2
  tail -n 20 "$LOG" >&2
fi
exit 1
