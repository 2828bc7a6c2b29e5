#!/usr/bin/env bash
# Runtimes side by side: branch create -> first SELECT 1 for native, Docker and Podman on one
# Btrfs image pool, each project loaded with the same pgbench data, beside CREATE DATABASE ...
# TEMPLATE. Builds pgbranch (release), starts dockerd if needed and builds pgbranch/postgres:15
# (the host's PostgreSQL major) unless it exists. Figures, not assertions. Needs root.
# Usage: sudo bench/runtimes.sh [--scale 20] [--branches 10] [--copies 3] [--runtimes ...]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh >/dev/null
./scripts/build.sh release >/dev/null
./scripts/daemon.sh dockerd start >/dev/null
trap './scripts/daemon.sh dockerd stop >/dev/null' EXIT
./scripts/container-images.sh build/release/pgbranch 15 >/dev/null
build/release/pgbranch_bench --pgbranch "$PWD/build/release/pgbranch" \
  --runtimes native,docker,podman --scale 20 --branches 10 "$@"
