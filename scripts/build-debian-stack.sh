#!/usr/bin/env bash
# Builds a Debian stack (a read-only root filesystem for dynos, like Heroku's heroku-24) and
# imports it with `slipway-agent stack import`, idempotently:
#   1. debootstrap --variant=minbase into a cache dir, once (27 s here from deb.debian.org,
#      minutes from a slow mirror; a marker records what was built, so later runs skip it);
#   2. the dyno user (uid/gid 64000, home /app, as agent/config/schema.ts's dynoUser) in etc/passwd,
#      etc/group, etc/shadow and etc/gshadow, written only when missing or different;
#   3. a tar of the rootfs (sorted, numeric owners, clamped mtimes: same bytes every time);
#   4. the import, skipped when the installed stack came from an archive with the same sha256.
# Device nodes debootstrap made in dev/ stay in the tar; the import skips them.
#
# Usage: scripts/build-debian-stack.sh [--name NAME] [--suite SUITE] [--state-dir DIR]
#          [--mirror URL] [--cache-dir DIR] [--dyno-uid N] [--force]
#   --name       stack name (default debian-SUITE)
#   --suite      Debian suite (default bookworm)
#   --state-dir  the agent's state dir (default /var/lib/slipway)
#   --mirror     Debian archive (default http://deb.debian.org/debian)
#   --cache-dir  debootstrap cache (default /var/cache/slipway/debootstrap-SUITE)
#   --dyno-uid   uid and gid of the dyno user (default 64000)
#   --force      replace an installed stack of that name built from a different archive
# Needs root, debootstrap, GNU tar and a built agent (npm run build: dist/agent/cli/stack.js).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$REPO/scripts/lib/node-env.sh"
SUITE=bookworm
NAME=""
STATE_DIR=/var/lib/slipway
MIRROR=http://deb.debian.org/debian
CACHE=""
UID_DYNO=64000
FORCE=()
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --name) NAME="${2:?--name needs a value}"; shift 2 ;;
    --suite) SUITE="${2:?--suite needs a value}"; shift 2 ;;
    --state-dir) STATE_DIR="${2:?--state-dir needs a value}"; shift 2 ;;
    --mirror) MIRROR="${2:?--mirror needs a value}"; shift 2 ;;
    --cache-dir) CACHE="${2:?--cache-dir needs a value}"; shift 2 ;;
    --dyno-uid) UID_DYNO="${2:?--dyno-uid needs a value}"; shift 2 ;;
    --force) FORCE=(--force); shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build-debian-stack: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
NAME="${NAME:-debian-$SUITE}"
CACHE="${CACHE:-/var/cache/slipway/debootstrap-$SUITE}"
ROOTFS="$CACHE/rootfs"
ARCH="$(dpkg --print-architecture)"
log() { echo "build-debian-stack: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

[ "$(id -u)" = 0 ] || { log "must run as root (debootstrap, numeric owners)"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
[[ "$UID_DYNO" =~ ^[1-9][0-9]*$ ]] || { log "--dyno-uid must be a positive integer"; exit 2; }
[ -f "$REPO/dist/agent/cli/stack.js" ] || { log "build the agent first: npm run build (needs dist/agent/cli/stack.js)"; exit 1; }

# Unmounts whatever is mounted under $1 (debootstrap mounts proc and sys in its target and may
# leave them behind when it fails), deepest first, so that removing $1 stays on its file system.
unmount_under() {
  local dir m
  dir="$(realpath -m "$1")"
  awk -v d="$dir/" '{ gsub(/\\040/, " ", $2); if (index($2 "/", d) == 1) print $2 }' /proc/self/mounts | sort -r |
    while IFS= read -r m; do umount -l "$m" || true; done
}
remove_tree() { unmount_under "$1"; rm -rf --one-file-system "$1"; }

# 1. debootstrap, cached. The marker is written last, so an interrupted run starts over.
want="suite=$SUITE variant=minbase arch=$ARCH mirror=$MIRROR layout=1"
if [ -f "$CACHE/.slipway-debootstrap" ] && [ "$(cat "$CACHE/.slipway-debootstrap")" = "$want" ]; then
  log "debootstrap of $SUITE is cached in $CACHE"
else
  mkdir -p "$(dirname "$CACHE")"
  tmp="$(mktemp -d "$CACHE.tmp-XXXXXX")"
  trap 'remove_tree "$tmp"' EXIT
  log "debootstrap --variant=minbase $SUITE ($ARCH) from $MIRROR into $tmp"
  t0="$(now)"
  debootstrap --variant=minbase --arch="$ARCH" "$SUITE" "$tmp/rootfs" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 || {
    tail -n 30 "$tmp/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }
  # A stack is an image, not a system that updates itself: no package cache, no index.
  rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/cache/apt/"*.bin "$tmp/rootfs/var/lib/apt/lists/"*
  log "debootstrap took $(since "$t0")"
  echo "$want" > "$tmp/.slipway-debootstrap"
  rm -f "$tmp/debootstrap.log"
  [ -e "$CACHE" ] && remove_tree "$CACHE"
  mv "$tmp" "$CACHE"
  trap - EXIT
fi

# 2. The dyno user. Lines are rewritten only when they differ.
set_line() { # FILE NAME LINE: the one line for NAME in FILE is LINE
  local file="$1" name="$2" line="$3"
  [ -f "$file" ] || return 0
  grep -qxF "$line" "$file" && [ "$(grep -c "^$name:" "$file")" = 1 ] && return 0
  sed -i "/^$name:/d" "$file"
  echo "$line" >> "$file"
}
if awk -F: -v u="$UID_DYNO" '$3 == u && $1 != "dyno" { found = 1 } END { exit !found }' "$ROOTFS/etc/passwd"; then
  log "uid $UID_DYNO is taken by another user in $ROOTFS/etc/passwd"; exit 1
fi
set_line "$ROOTFS/etc/passwd" dyno "dyno:x:$UID_DYNO:$UID_DYNO:dyno:/app:/bin/bash"
set_line "$ROOTFS/etc/group" dyno "dyno:x:$UID_DYNO:"
set_line "$ROOTFS/etc/shadow" dyno "dyno:*:19000:0:99999:7:::"
set_line "$ROOTFS/etc/gshadow" dyno "dyno:!::"

# 3. The archive: sorted names, numeric owners, and mtimes clamped to the end of debootstrap
# (the marker's), so that what step 2 rewrote, and etc/ around it, carries no date of its own:
# the same cache and the same dyno uid give the same bytes, hence the same sha256.
work="$(mktemp -d "${TMPDIR:-/tmp}/slipway-debian-stack-XXXXXX")"
trap 'rm -rf "$work"' EXIT
t0="$(now)"
epoch="$(stat -c %Y "$CACHE/.slipway-debootstrap")"
tar --sort=name --numeric-owner --one-file-system --mtime="@$epoch" --clamp-mtime -C "$ROOTFS" -cf "$work/rootfs.tar" .
sha="$(sha256sum "$work/rootfs.tar" | cut -d' ' -f1)"
log "tar of $(du -sh "$ROOTFS" | cut -f1) rootfs took $(since "$t0"): $(du -h "$work/rootfs.tar" | cut -f1), sha256 $sha"

# 4. Import, unless the installed stack came from these very bytes.
marker="$STATE_DIR/stacks/$NAME/.slipway-stack"
if [ -f "$marker" ] && [ "$(node -e 'try { process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).sha256 ?? "") } catch {}' "$marker")" = "$sha" ]; then
  log "stack $NAME is already installed from this archive"
  exit 0
fi
t0="$(now)"
if grep -q 'cli/stack\.js' "$REPO/dist/agent/main.js"; then
  node "$REPO/dist/agent/main.js" stack import "$NAME" "$work/rootfs.tar" --state-dir "$STATE_DIR" "${FORCE[@]}"
else
  # main.ts does not route `stack` yet: call the command module the same way it would.
  node --input-type=module -e '
    const { stackCommand } = await import(process.argv[1]);
    try { await stackCommand(process.argv.slice(2)); }
    catch (err) { process.stderr.write(`${err.code ?? "INTERNAL"}: ${err.message}\n`); process.exit(1); }
  ' "$REPO/dist/agent/cli/stack.js" import "$NAME" "$work/rootfs.tar" --state-dir "$STATE_DIR" "${FORCE[@]}"
fi
log "import took $(since "$t0")"
