#!/usr/bin/env bash
# Builds the VM suite's guest (scripts/vm/run.sh): a Debian 12 root like a production host's,
# with systemd 252 as pid 1, cgroup v2, runc, conmon and what the agent's dyno network needs
# (iproute2, nftables, iptables). Neither the project nor its Node runtime is in the image: the
# guest mounts them read-only over 9p at each boot, so a code change never rebuilds the image.
#
# Idempotent and cached: the finished image, kernel and initrd go to
# $SLIPWAY_VM_CACHE/<key>/ (default /var/cache/slipway-vm), where <key> hashes this script
# (which holds the package list and the guest's units). A warm cache returns in well under a
# second; older keys are removed when a new one is built, so the cache holds one guest.
# Prints the cache dir on its last line.
#
# Usage: scripts/vm/build-guest.sh   (as root; SLIPWAY_VM_MIRROR overrides the Debian mirror)
set -euo pipefail
SELF="$(readlink -f "$0")"
CACHE="${SLIPWAY_VM_CACHE:-/var/cache/slipway-vm}"
SUITE=bookworm
# debootstrap's own set: a bootable systemd host. The agent's run-time needs follow in the chroot.
BOOT_PKGS="systemd-sysv,udev,linux-image-amd64,initramfs-tools,iproute2,kmod,procps"
# runc + conmon (the runc driver), busybox-static (the busybox stack), nftables + iptables
# (agent/network: the dyno bridge's table; iptables for hosts that also run Docker).
# No dbus: systemctl talks to pid 1 over its private socket as root.
AGENT_PKGS="runc conmon busybox-static ca-certificates nftables iptables"
# The root file system's size; the per-run writes go to qemu's -snapshot overlay, not here.
IMAGE_SIZE=4G

if [ "$(id -u)" != 0 ]; then
  echo "build-guest: must run as root (debootstrap, chroot)" >&2
  exit 1
fi

key=$(sha256sum "$SELF" | cut -c1-16)
dest="$CACHE/$key"
if [ -f "$dest/ready" ]; then
  echo "$dest"
  exit 0
fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
# Two builds at once (two suites starting together) would both debootstrap: one waits.
flock -w 900 9 || { echo "build-guest: another build holds $CACHE/.lock" >&2; exit 1; }
if [ -f "$dest/ready" ]; then
  echo "$dest"
  exit 0
fi

for tool in debootstrap mkfs.ext4; do
  command -v "$tool" >/dev/null || { echo "build-guest: needs $tool (scripts/setup.sh installs it)" >&2; exit 1; }
done

# The Debian mirror this machine's apt already reaches (deb822 or one-line sources).
mirror_from_sources() {
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}'
  } | grep -E '/debian/?$' | head -n 1 || true
}
MIRROR="${SLIPWAY_VM_MIRROR:-$(mirror_from_sources)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/.build-XXXXXX")
root="$work/rootfs"
cleanup() {
  for m in dev/pts dev proc sys; do
    mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Stage 1, the installed packages, is kept as a tar of its own (keyed by the package lists
# and the suite only), so that a change to the guest's configuration below rebuilds the image
# in seconds instead of a debootstrap.
pkgkey=$(printf '%s\n' "$SUITE" "$BOOT_PKGS" "$AGENT_PKGS" | sha256sum | cut -c1-16)
base="$CACHE/packages-$pkgkey.tar"
t0=$(date +%s)
if [ -f "$base" ]; then
  mkdir -p "$root"
  tar -xf "$base" -C "$root" --numeric-owner
  t1=$t0
else
  echo "build-guest: debootstrap $SUITE from $MIRROR" >&2
  debootstrap --variant=minbase --include="$BOOT_PKGS" "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
  t1=$(date +%s)

  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --bind /dev "$root/dev"
  mount --bind /dev/pts "$root/dev/pts"
  # No service starts inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  echo "build-guest: apt-get install $AGENT_PKGS" >&2
  chroot "$root" env DEBIAN_FRONTEND=noninteractive sh -c "apt-get install -y -qq --no-install-recommends $AGENT_PKGS && apt-get clean" \
    >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; exit 1; }
  rm -f "$root/usr/sbin/policy-rc.d"
  for m in dev/pts dev proc sys; do umount "$root/$m"; done
  rm -f "$CACHE"/packages-*.tar
  tar -cf "$base.tmp" -C "$root" --numeric-owner .
  mv "$base.tmp" "$base"
fi
t2=$(date +%s)

# --- the guest's configuration -------------------------------------------------------------
echo slipway-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 slipway-vm\n::1 localhost ip6-localhost\n' >"$root/etc/hosts"
# A fixed machine id: an empty one would make the first boot run systemd-firstboot's prompts.
echo "$key$key" | cut -c1-32 >"$root/etc/machine-id"
cat >"$root/etc/fstab" <<'FSTAB'
/dev/vda / ext4 rw,noatime 0 1
# run.sh's 9p shares (read-only but for run/): the repository as it is on the host, the
# host's compile of the tests (tsc), and the run's input and results.
project /mnt/project 9p trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose,nofail 0 0
vmbuild /mnt/vm-build 9p trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose,nofail 0 0
# The Node runtime (scripts/install-node.sh's /opt/slipway-node/<version>) is run.sh's second
# disk, node_modules its first (mounted by the suite's runner, inside /work/main).
/dev/vdc /opt/slipway-node/current ext4 ro,noatime,nofail 0 0
run /run/slipway-vm 9p trans=virtio,version=9p2000.L,rw,msize=524288,nofail 0 0
FSTAB
mkdir -p "$root/mnt/project" "$root/mnt/vm-build" "$root/opt/slipway-node/current" "$root/run/slipway-vm" "$root/work/main"
# Nothing on the console but systemd's own lines (a getty there hangs up other writers), and
# none of a long-lived host's timers, which only slow a 30-second life down.
for unit in serial-getty@ttyS0.service getty@tty1.service apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_all.timer fstrim.timer dpkg-db-backup.timer systemd-timesyncd.service getty-static.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# The suite's runner: after multi-user.target, once; it always powers the guest off.
cat >"$root/etc/systemd/system/slipway-vm-suite.service" <<'UNIT'
[Unit]
Description=slipway VM suite (scripts/vm/run.sh)
After=multi-user.target
RequiresMountsFor=/mnt/project /mnt/vm-build /opt/slipway-node/current /run/slipway-vm
ConditionPathExists=/run/slipway-vm/tests

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/slipway-vm-suite
StandardOutput=journal+console
StandardError=journal+console
# run.sh's hard timeout is the real bound; this one lets the guest report a hang itself.
TimeoutStartSec=infinity
ExecStopPost=/bin/systemctl poweroff --no-block

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/slipway-vm-suite.service "$root/etc/systemd/system/multi-user.target.wants/slipway-vm-suite.service"

cat >"$root/usr/local/sbin/slipway-vm-suite" <<'RUNNER'
#!/bin/sh
# Runs the test files listed in /run/slipway-vm/tests (one per line, relative to the repo,
# compiled .js) and writes their TAP to /run/slipway-vm/tap.log and the counts to
# /run/slipway-vm/result (`files F passed P failed X asserts T passed P failed X`).
out=/run/slipway-vm
echo "slipway-vm: multi-user reached after $(cut -d' ' -f1 /proc/uptime) s" >"$out/boot"
# /work/main: the repository (read-only 9p) under the host's compile of the tests, with a
# writable upper layer; dist/ is that same compile, so agent and tests come from one source.
mkdir -p /var/lib/slipway-vm/upper /var/lib/slipway-vm/work
mount -t overlay overlay -o lowerdir=/mnt/vm-build:/mnt/project,upperdir=/var/lib/slipway-vm/upper,workdir=/var/lib/slipway-vm/work /work/main
mount --bind /mnt/vm-build /work/main/dist
mount -o ro,noatime /dev/vdb /work/main/node_modules
export PATH=/opt/slipway-node/current/bin:$PATH HOME=/root
per_file_timeout=$(cat "$out/file-timeout" 2>/dev/null || echo 300)
# A file run by node alone gets tap's own 30 s default timeout: the per-file bound replaces it.
export TAP_TIMEOUT=$per_file_timeout
: >"$out/tap.log"
files=0; fpass=0; ffail=0; tpass=0; tfail=0
cd /work/main
for f in $(cat "$out/tests"); do
  files=$((files + 1))
  echo "# slipway-vm: $f" >>"$out/tap.log"
  start=$(date +%s)
  timeout -k 10 "$per_file_timeout" node "$f" >"$out/file.log" 2>&1
  rc=$?
  cat "$out/file.log" >>"$out/tap.log"
  # tap's closing line, `# { total: 12, pass: 11, fail: 1 }`, counts assertions, as the host
  # suite's line does (scripts/test.sh).
  summary=$(grep -E '^# \{ total: ' "$out/file.log" | tail -n 1)
  p=$(echo "$summary" | sed -nE 's/.*pass: ([0-9]+).*/\1/p'); p=${p:-0}
  x=$(echo "$summary" | sed -nE 's/.*fail: ([0-9]+).*/\1/p'); x=${x:-0}
  # A crash or a timeout with no failed assertion still fails the file.
  if [ "$rc" != 0 ] && [ "$x" = 0 ]; then x=1; fi
  tpass=$((tpass + p)); tfail=$((tfail + x))
  if [ "$rc" = 0 ]; then fpass=$((fpass + 1)); else ffail=$((ffail + 1)); fi
  echo "# slipway-vm: $f exit $rc, $p passed, $x failed, $(( $(date +%s) - start )) s" >>"$out/tap.log"
done
rm -f "$out/file.log"
echo "files $files passed $fpass failed $ffail asserts $((tpass + tfail)) passed $tpass failed $tfail" >"$out/result"
sync
# The results are on the host already (9p writes through): no orderly stop of the guest's
# units, whose 90 s stop timeouts a test's leftover would otherwise run into.
systemctl poweroff --force
RUNNER
chmod 755 "$root/usr/local/sbin/slipway-vm-suite"

# Kernel and initrd are booted directly by qemu (-kernel/-initrd); copy them out of the root.
mkdir -p "$work/out"
cp "$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n 1)" "$work/out/vmlinuz"
cp "$(ls "$root"/boot/initrd.img-* | sort -V | tail -n 1)" "$work/out/initrd.img"
truncate -s "$IMAGE_SIZE" "$work/out/root.img"
mkfs.ext4 -q -L slipway-vm -d "$root" "$work/out/root.img"
t3=$(date +%s)
echo "debootstrap $((t1 - t0)) s, packages $((t2 - t1)) s, image $((t3 - t2)) s" >"$work/out/build-times"
touch "$work/out/ready"

# Publish atomically; drop guests of older keys.
for old in "$CACHE"/*/; do
  [ "${old%/}" = "$dest" ] || [ ! -f "$old/ready" ] || rm -rf "$old"
done
rm -rf "$dest"
mv "$work/out" "$dest"
echo "build-guest: built $dest ($(cat "$dest/build-times"))" >&2
echo "$dest"
