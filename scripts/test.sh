#!/usr/bin/env bash
# The README's test command: installs what is needed, builds with tests, runs them all.
# Unit tests, then end-to-end tests that drive the real binary against real PostgreSQL on
# real Btrfs image pools (loop devices): needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "The tests create loop-mounted Btrfs pools and need root: sudo $0" >&2
  exit 1
fi
./scripts/install-deps.sh
./scripts/build.sh test

# The ZFS tests need the zfs-fuse daemon; it is started here and stopped afterwards (only if
# this run started it).
./scripts/zfs-fuse.sh start

# Whatever happens, leave no test servers, zpools, mounts or loop devices behind.
cleanup() {
  local rc=$?
  set +e
  for pidfile in /tmp/pgb-*/pool*/volumes/*/postmaster.pid /tmp/pgb-*/zfs/*/postmaster.pid \
                 /tmp/pgb-*/ext4/pool/volumes/*/postmaster.pid; do
    [ -f "$pidfile" ] && kill -QUIT "$(head -1 "$pidfile")" 2>/dev/null
  done
  sleep 1
  for pool in $(zpool list -H -o name 2>/dev/null | grep -E '^pgb(e2e|t)'); do
    zpool destroy -f "$pool"
  done
  for m in $(grep -o ' /tmp/pgb-[^ ]*' /proc/mounts | sort -r); do umount -l "$m"; done
  ./scripts/zfs-fuse.sh stop
  exit "$rc"
}
trap cleanup EXIT

ctest --test-dir build/test --output-on-failure --timeout 3000
