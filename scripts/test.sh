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

# Whatever happens, leave no test servers, zpools, mounts or loop devices behind.
cleanup() {
  local rc=$?
  set +e
  [[ -n ${reserved_before+set} ]] &&
    echo "$reserved_before" > /proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null
  for pidfile in /tmp/pgb-*/pool*/volumes/*/postmaster.pid /tmp/pgb-*/zfs/*/postmaster.pid \
                 /tmp/pgb-*/ext4/pool/volumes/*/postmaster.pid; do
    # A container's postmaster.pid names its pid inside the container (1): only a host
    # process that is a postgres is signalled.
    pid=$(head -1 "$pidfile" 2>/dev/null)
    [[ $pid =~ ^[0-9]+$ && $pid -gt 1 && $(cat "/proc/$pid/comm" 2>/dev/null) == postgres ]] &&
      kill -QUIT "$pid" 2>/dev/null
  done
  sleep 1
  # Containers of test homes (/tmp/pgb-*), in both engines.
  for engine in docker "podman --cgroup-manager=cgroupfs --events-backend=file"; do
    for id in $($engine ps --all --quiet --filter label=io.pgbranch.home 2>/dev/null); do
      home=$($engine inspect --format '{{index .Config.Labels "io.pgbranch.home"}}' "$id")
      [[ $home == /tmp/pgb-* ]] && $engine rm --force "$id" >/dev/null
    done
  done
  for pool in $(zpool list -H -o name 2>/dev/null | grep -E '^pgb(e2e|t)'); do
    zpool destroy -f "$pool"
  done
  for m in $(grep -o ' /tmp/pgb-[^ ]*' /proc/mounts | sort -r); do umount -l "$m"; done
  # The OS accounts of test homes' projects (their comment names the home).
  for account in $(getent passwd | awk -F: '$5 ~ /^pgbranch project in \/tmp\/pgb-/ {print $1}'); do
    userdel --force "$account" 2>/dev/null
  done
  ./scripts/daemon.sh zfs-fuse stop
  ./scripts/daemon.sh dockerd stop
  exit "$rc"
}
trap cleanup EXIT

# The end-to-end groups' servers take ports 56000-63999 (CMakeLists.txt PGB_E2E_GROUPS), inside
# Linux's ephemeral range: a client socket of another group may take a port a branch was just
# given ("could not bind ... Address already in use"). Keep the kernel from handing those out as
# ephemeral ports for the run (ip-sysctl.txt, ip_local_reserved_ports); restored afterwards.
if reserved_before=$(cat /proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null); then
  echo "${reserved_before:+$reserved_before,}56000-63999" \
    > /proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null || unset reserved_before
else
  unset reserved_before
fi

# The ZFS tests need the zfs-fuse daemon and the docker runtime's tests dockerd; both are
# started here and stopped afterwards (only if this run started them). Podman needs no daemon.
./scripts/daemon.sh zfs-fuse start
./scripts/daemon.sh dockerd start
# The proxy tests' node-postgres client and the OpenAPI validator of the API tests, from the npm
# registry as their lockfiles pin them.
./tests/clients/node/install.sh
./scripts/npm-ci.sh tests/api
# The container tests run PostgreSQL 13, 15 and 17 from images built here (no registry).
./scripts/container-images.sh build/test/pgbranch

# The end-to-end groups (CMakeLists.txt PGB_E2E_GROUPS) run side by side with each other and the
# unit tests: mostly waits on PostgreSQL, the disk and the engines, so three at a time suit two
# cores.
rc=0
ctest --test-dir build/test --output-on-failure --timeout 3000 -j3 || rc=$?

# The concurrency check (clang's thread-safety analysis and the unit tests under ThreadSanitizer)
# after the suites rather than beside them: two more builds would starve the timing-sensitive
# end-to-end tests of the machine's two cores.
./scripts/check-threads.sh || rc=$?
exit "$rc"
