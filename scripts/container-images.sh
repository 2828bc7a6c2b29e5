#!/usr/bin/env bash
# Builds the container images the tests (and the container benchmark) run, unless they are
# there already: pgbranch/postgres:13, :15 and :17 in Docker's and Podman's image stores, made
# by `pgbranch image build` (debootstrap of bullseye, bookworm and trixie, then import), the
# three at once. Usage: scripts/container-images.sh PGBRANCH_BINARY [MAJOR...]
# Needs root, a running dockerd (scripts/daemon.sh dockerd start), podman and debootstrap.
set -euo pipefail
binary=${1:?usage: $0 PGBRANCH_BINARY [MAJOR...]}
shift
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(13 15 17)

podman_cli=(podman --cgroup-manager=cgroupfs --events-backend=file)
scratch=$(mktemp -d /tmp/pgb-images-XXXXXX)
trap 'rm -rf "$scratch"' EXIT

pids=()
for major in "${majors[@]}"; do
  image=pgbranch/postgres:$major
  if docker image inspect "$image" >/dev/null 2>&1 &&
     "${podman_cli[@]}" image inspect "$image" >/dev/null 2>&1; then
    echo "$image: in both image stores"
    continue
  fi
  echo "$image: building (log: $scratch/$major.log)"
  PGBRANCH_HOME=$scratch/home-$major "$binary" image build --pg-version "$major" \
    --runtime docker --runtime podman >"$scratch/$major.log" 2>&1 &
  pids+=("$!:$major")
done
failed=0
for entry in "${pids[@]}"; do
  pid=${entry%%:*}
  major=${entry#*:}
  if wait "$pid"; then
    tail -n 1 "$scratch/$major.log"
  else
    echo "building pgbranch/postgres:$major failed:" >&2
    cat "$scratch/$major.log" >&2
    failed=1
  fi
done
exit "$failed"
