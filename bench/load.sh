#!/usr/bin/env bash
# Loading production data, side by side in one run: `project create --from-dump` (pg_restore
# into main inside the create, then main's first snapshot) against the plain alternative, a
# fresh initdb'd cluster on the same disk with the same `pg_restore -j`; then the first branch
# made after the load and the next ones. Figures, not assertions. Needs root (image pool).
# Usage: sudo bench/load.sh [--scale 20] [--jobs 2] [--branches 5]
#        PGBRANCH=build/test/pgbranch bench/load.sh ...   (skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
scale=20 jobs=2 branches=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --scale) scale=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --branches) branches=$2; shift 2 ;;
    *) echo "usage: $0 [--scale N] [--jobs N] [--branches N]" >&2; exit 2 ;;
  esac
done
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_binary
home=$(mktemp -d /tmp/pgb-bench-load.XXXXXX)
chmod 755 "$home"
plain_pid=
cleanup() {
  set +e
  [[ -n $plain_pid ]] && runuser -u postgres -- "$bin/pg_ctl" -D "$home/plain" -m immediate stop >/dev/null 2>&1
  for p in shop src; do "$PGBRANCH" --home "$home" -q project delete "$p" --force >/dev/null 2>&1; done
  umount -l "$home/pool" 2>/dev/null
  rm -rf "$home"
}
trap cleanup EXIT
pgb() { "$PGBRANCH" --home "$home" -q "$@"; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

pgb init --image "$home/pool.img" --size 12G --port-range 63500-63599 >/dev/null
pgb project create src >/dev/null
bin=$(pgb project get src --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pg_bin"])')
eval "$(pgb branch env src/main)"
"$bin/pgbench" -q -i -s "$scale" >/dev/null 2>&1
dump="$home/source.dump"
"$bin/pg_dump" -Fc -f "$dump" postgres
chmod 644 "$dump"
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSFILE PGSSLMODE PGSSLROOTCERT
dump_mb=$(du -m "$dump" | cut -f1)

# The plain alternative: initdb + pg_restore into a cluster on the same filesystem as the image.
t0=$(now)
mkdir "$home/plain" && chown postgres: "$home/plain"
runuser -u postgres -- "$bin/initdb" -D "$home/plain" -A trust >/dev/null
runuser -u postgres -- "$bin/pg_ctl" -D "$home/plain" -o "-p 63599 -k $home/plain -c listen_addresses=''" \
  -l "$home/plain/log" -w start >/dev/null
plain_pid=1
runuser -u postgres -- "$bin/pg_restore" --no-owner --no-privileges -j "$jobs" -h "$home/plain" \
  -p 63599 -d postgres "$dump"
t1=$(now)
plain=$(secs "$t0" "$t1")

t0=$(now)
pgb project create shop --from-dump "$dump" --jobs "$jobs" >/dev/null
t1=$(now)
ours=$(secs "$t0" "$t1")

creates=()
for i in $(seq "$branches"); do
  a=$(now); pgb branch create "shop/b$i" >/dev/null; b=$(now)
  creates+=("$(secs "$a" "$b")")
done

python3 - "$scale" "$dump_mb" "$jobs" "$plain" "$ours" "${creates[@]}" <<'PY'
import statistics, sys
scale, dump_mb, jobs, plain, ours = sys.argv[1:6]
creates = [float(x) for x in sys.argv[6:]]
plain, ours = float(plain), float(ours)
print(f"logical load of pgbench -s {scale} ({dump_mb} MB custom-format dump), pg_restore -j {jobs}")
print(f"  {'plain initdb + pg_restore':38s} {plain:7.2f} s")
print(f"  {'project create --from-dump':38s} {ours:7.2f} s   ({ours / plain:.2f}x the plain load)")
if creates:
    rest = creates[1:] or creates
    print(f"  {'first branch after the load':38s} {creates[0]:7.2f} s")
    print(f"  {'next branches, p50':38s} {statistics.median(rest):7.2f} s")
PY
