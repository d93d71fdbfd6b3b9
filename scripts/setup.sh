#!/usr/bin/env bash
# Installs what slipway needs on a fresh Debian 12 host, idempotently: Debian packages, the
# Node.js 24 runtime (scripts/install-node.sh: the official binary from the npm registry,
# whatever node the host has), npm dependencies, the TypeScript build and the busybox test stack.
# Usage: scripts/setup.sh [--stack-dir DIR]   (run as root)
set -euo pipefail
cd "$(dirname "$0")/.."

STACK_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stack-dir) STACK_DIR="$2"; shift 2 ;;
    *) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: must run as root (containers, mounts and cgroups need it)" >&2
  exit 1
fi

# Debian packages: the three container runtimes (runc with its monitor conmon, LXC, the
# Docker engine), the busybox stack's userland, debootstrap for Debian stacks and the VM
# suite's guest, qemu for that guest (scripts/vm/run.sh), tools.
PKGS="runc conmon lxc docker.io debootstrap busybox-static iproute2 nftables iptables curl ca-certificates tar gzip minisign qemu-system-x86 qemu-utils"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Packages that ship a service the suite must not find running: promtool (`promtool check
# metrics`, test/integration/e2e/metrics.test.ts) comes only with Debian's prometheus server;
# PostgreSQL 15 (the coordinator's store: scripts/pg-test-server.sh starts a private cluster
# for a test run), HAProxy 2.6 (the router: tests run their own haproxy processes) and
# rsyslog with its GnuTLS driver (a syslog+tls log drain's receiver: the drain tests run their
# own rsyslogd). Installed with invoke-rc.d told not to start anything (policy-rc.d exit 101, unless the host
# has a policy of its own), and nothing is left running: the packages ship their services
# enabled, and a stray TSDB on :9090, cluster on :5432, haproxy on :80 or rsyslogd is nobody's.
SERVICE_PKGS="prometheus postgresql haproxy rsyslog rsyslog-gnutls"
svc_missing=""
for p in $SERVICE_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || svc_missing="$svc_missing $p"
done
if [ -n "$svc_missing" ]; then
  echo "setup: installing$svc_missing (services not started)"
  export DEBIAN_FRONTEND=noninteractive
  own_policy=""
  [ -e /usr/sbin/policy-rc.d ] && own_policy=1
  [ -n "$own_policy" ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; }
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends $svc_missing >/dev/null; } || { [ -n "$own_policy" ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ -n "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
  for svc in $svc_missing; do
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
  done
  for proc in prometheus haproxy postgres rsyslogd; do
    if pgrep -x "$proc" >/dev/null 2>&1; then echo "setup: a $proc server is running after the install; stop it (the suite runs its own)" >&2; fi
  done
fi

# Node.js 24 LTS, first on PATH for the rest of this script (and for scripts that source
# scripts/lib/node-env.sh after running this one).
scripts/install-node.sh
. scripts/lib/node-env.sh

# npm dependencies, only when the lock file or the runtime changed since the last install
# (native addons are built for one Node ABI).
stamp=node_modules/.slipway-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1) $(node --version)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

echo "setup: building (tsc)"
npx tsc -p tsconfig.json

if [ -n "$STACK_DIR" ]; then
  scripts/build-busybox-stack.sh "$STACK_DIR"
fi
