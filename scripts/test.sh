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

# Whatever happens, leave no test servers, mounts or loop devices behind.
cleanup() {
  local rc=$?
  set +e
  for pidfile in /tmp/pgb-*/pool*/volumes/*/postmaster.pid; do
    [ -f "$pidfile" ] && kill -QUIT "$(head -1 "$pidfile")" 2>/dev/null
  done
  for m in $(grep -o ' /tmp/pgb-[^ ]*' /proc/mounts); do umount -l "$m"; done
  exit "$rc"
}
trap cleanup EXIT

ctest --test-dir build/test --output-on-failure --timeout 3000
