#!/usr/bin/env bash
# Installs everything pgbranch needs to build, run and test, from Debian's packages only.
# Idempotent; needs root (or sudo). Used by setup-and-demo.sh, test.sh and .ci/run.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=DEBIAN_FRONTEND "$0" "$@"
fi
export DEBIAN_FRONTEND=noninteractive

packages=(
  # build
  build-essential cmake ninja-build pkg-config
  # concurrency checks (scripts/check-threads.sh): clang's -Wthread-safety, and its
  # ThreadSanitizer runtime for CXX=clang++ scripts/build.sh tsan (g++'s, libtsan2, comes with gcc)
  clang libclang-rt-14-dev
  # libraries (see DEVELOPERS.md)
  libcli11-dev nlohmann-json3-dev libfmt-dev libspdlog-dev libsqlite3-dev libpq-dev libssl-dev
  libbtrfsutil-dev libmount-dev libhowardhinnant-date-dev libgtest-dev libgmock-dev
  # runtime: PostgreSQL 15 server and client tools (initdb, postgres, pgbench, psql)
  postgresql-15 postgresql-client-15
  # storage: Btrfs and XFS tools (mkfs.btrfs, mkfs.xfs), util-linux (mount), ZFS (the tests
  # use Debian's zfs-fuse; on a host with OpenZFS, zfsutils-linux serves as well)
  btrfs-progs util-linux xfsprogs zfs-fuse
  # container runtimes (docker, podman) and what builds their images without a registry
  docker.io podman debootstrap
  # the daemon (`pgbranch serve`): Asio's event loop, sd_notify for systemd's Type=notify,
  # cpp-httplib for the HTTP API and dashboard
  libasio-dev libsystemd-dev libcpp-httplib-dev
  # tests: openssl makes a team's own CA for the `ca import` test; the proxy tests' real
  # clients (psycopg2 for Debian's python3, pgjdbc with a JDK to compile its client)
  openssl python3 python3-psycopg2 libpostgresql-jdbc-java default-jdk-headless
  # the API tests check every response against api/openapi.json (JSON Schema 2020-12); the
  # dashboard's tests drive a real headless Chromium through WebDriver (Selenium)
  python3-jsonschema chromium chromium-driver python3-selenium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# node-postgres for the proxy tests comes from the npm registry (tests/clients/node, pinned by
# its lockfile). Node.js and npm are Debian's unless the machine already has them.
if ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# Debian's postgresql package creates and starts a default cluster on 5432; pgbranch does not
# need it. Leave it as the machine's owner configured it.
echo "Dependencies installed."
