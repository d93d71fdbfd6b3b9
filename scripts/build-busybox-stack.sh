#!/usr/bin/env bash
# Builds the small busybox test stack (a read-only root filesystem) into DIR, idempotently.
# The stack has /bin/sh and busybox applets, /etc/passwd with root and the dyno user
# (uid/gid 64000 unless --dyno-uid says otherwise), /tmp, /app and the mount points runc needs.
# Usage: scripts/build-busybox-stack.sh DIR [--dyno-uid N]
set -euo pipefail
DEST="${1:?usage: build-busybox-stack.sh DIR [--dyno-uid N]}"
UID_DYNO=64000
[ "${2:-}" = "--dyno-uid" ] && UID_DYNO="${3:?}"
BUSYBOX=$(command -v busybox || true)
[ -x /bin/busybox ] && BUSYBOX=/bin/busybox
lddout=$( [ -n "$BUSYBOX" ] && ldd "$BUSYBOX" 2>&1 || true)
if [ -z "$BUSYBOX" ] || [[ "$lddout" != *"not a dynamic"* ]]; then
  echo "build-busybox-stack: a static busybox is required (apt-get install busybox-static)" >&2
  exit 1
fi
marker="$DEST/.slipway-stack"
want="busybox $(sha256sum "$BUSYBOX" | cut -c1-16) uid $UID_DYNO v1"
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
  exit 0
fi
mkdir -p "$(dirname "$DEST")"
tmp="$(mktemp -d "$(dirname "$DEST")/.stack-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,app,root,var/tmp}
cp "$BUSYBOX" "$tmp/bin/busybox"
for applet in $("$tmp/bin/busybox" --list); do
  [ -e "$tmp/bin/$applet" ] || ln -s busybox "$tmp/bin/$applet"
done
chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
chmod 700 "$tmp/root"
cat > "$tmp/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/bin/sh
dyno:x:$UID_DYNO:$UID_DYNO:dyno:/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$tmp/etc/group" <<GROUP
root:x:0:
dyno:x:$UID_DYNO:
nogroup:x:65534:
GROUP
echo "$want" > "$tmp/.slipway-stack"
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST"
mv "$tmp" "$DEST"
chmod 755 "$DEST"
trap - EXIT
echo "build-busybox-stack: built $DEST"
