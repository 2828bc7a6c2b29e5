#!/usr/bin/env bash
# Copying production physically, side by side in one run, from a "production" cluster this
# script runs itself (its own initdb as the OS user postgres, port 63650, a replicator role
# that logs in with scram-sha-256 over 127.0.0.1, pgbench -i -s SCALE):
#   (a) plain `pg_basebackup -X stream` into a directory on the same disk, against
#   (b) `project create --from-server` into an image pool (the same copy, then main started
#       and snapshotted);
#   (c) a replica (`--from-server --replica`) following the source under pgbench load: its lag
#       as `branch get --json` reports it, sampled every second;
#   (d) a row written in the source, then at once a new branch of the replica's main: how long
#       the branch takes and whether the row is in it.
# Figures, not assertions. Needs root (image pool, runuser).
# Usage: sudo bench/import.sh [--scale 20] [--seconds 20] [--probes 5]
#        PGBRANCH=build/test/pgbranch bench/import.sh ...   (skip the release build)
#        PG_BIN=/usr/lib/postgresql/15/bin ...              (default: the newest installed)
set -euo pipefail
cd "$(dirname "$0")/.."
scale=20 seconds=20 probes=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --scale) scale=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --probes) probes=$2; shift 2 ;;
    *) echo "usage: $0 [--scale N] [--seconds N] [--probes N]" >&2; exit 2 ;;
  esac
done
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_binary
bin=${PG_BIN:-$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)}
if [[ ! -x $bin/pg_basebackup || ! -x $bin/pgbench ]]; then
  echo "no PostgreSQL server and client tools in '$bin' (set PG_BIN)" >&2
  exit 1
fi
port=63650
home=$(mktemp -d /tmp/pgb-bench-import.XXXXXX)
chmod 755 "$home"
prod_up='' load_pid=''
cleanup() {
  set +e
  if [[ -n $load_pid ]]; then kill "$load_pid" 2>/dev/null; wait "$load_pid" 2>/dev/null; fi
  # The projects first: the replica streams from production.
  for p in shop rep; do "$PGBRANCH" --home "$home" -q project delete "$p" --force >/dev/null 2>&1; done
  [[ -n $prod_up ]] && as_pg "$bin/pg_ctl" -D "$home/prod/data" -m immediate stop >/dev/null 2>&1
  umount -l "$home/pool" 2>/dev/null
  rm -rf "$home"
}
trap cleanup EXIT
pgb() { "$PGBRANCH" --home "$home" -q "$@"; }
# As the server's account, from a directory it may enter.
as_pg() { (cd / && runuser -u postgres -- "$@"); }
prod_sql() { as_pg "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$home/prod" -p "$port" -d postgres -At "$@"; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

# Production: a cluster pgbranch knows nothing of.
mkdir "$home/prod" && chown postgres: "$home/prod"
as_pg "$bin/initdb" -D "$home/prod/data" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
as_pg tee "$home/prod/data/pg_hba.conf" >/dev/null <<'EOF'
local   all          all                 trust
local   replication  all                 trust
host    all          all   127.0.0.1/32  scram-sha-256
host    replication  all   127.0.0.1/32  scram-sha-256
EOF
as_pg "$bin/pg_ctl" -D "$home/prod/data" -l "$home/prod/log" -w \
  -o "-p $port -k $home/prod -c listen_addresses=127.0.0.1 -c wal_level=replica -c max_wal_senders=10" \
  start >/dev/null
prod_up=1
pw=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
# On stdin, not in any argv.
prod_sql -f - <<<"CREATE ROLE replicator LOGIN REPLICATION PASSWORD '$pw';"
(umask 077 && printf '127.0.0.1:%s:*:replicator:%s\n' "$port" "$pw" >"$home/source.pgpass")
export PGPASSFILE=$home/source.pgpass
uri="postgresql://replicator@127.0.0.1:$port/postgres"
as_pg "$bin/pgbench" -h "$home/prod" -p "$port" -q -i -s "$scale" postgres >/dev/null 2>&1
# pgbench -i leaves dirty buffers: flush them now, so neither copy's checkpoint pays for them.
prod_sql -c CHECKPOINT
db_bytes=$(prod_sql -c "SELECT pg_database_size('postgres')")

pgb init --image "$home/pool.img" --size 12G --port-range 63660-63699 >/dev/null

# (a) The plain copy, on the same filesystem as the image (both in $home). --checkpoint=fast as
# pgbranch's own pg_basebackup: no waiting for a spread checkpoint in either.
t0=$(now)
"$bin/pg_basebackup" -X stream --checkpoint=fast -D "$home/plain" -d "$uri"
t1=$(now)
plain=$(secs "$t0" "$t1")
copy_bytes=$(du -sb "$home/plain" | cut -f1)
rm -rf "$home/plain"

# (b) The same copy as a project: pg_basebackup into main's volume, main started, snapshotted.
t0=$(now)
pgb project create shop --from-server "$uri" --pg-bin "$bin" >/dev/null
t1=$(now)
ours=$(secs "$t0" "$t1")

# (c) A replica under write load: its lag, once a second, from `branch get --json`.
t0=$(now)
pgb project create rep --from-server "$uri" --replica --pg-bin "$bin" >/dev/null
t1=$(now)
replica_create=$(secs "$t0" "$t1")
as_pg "$bin/pgbench" -h "$home/prod" -p "$port" -n -c 4 -j 2 -T "$seconds" postgres \
  >"$home/pgbench.out" 2>&1 &
load_pid=$!
lag() {
  pgb branch get rep/main --json | python3 -c '
import json, sys
r = json.load(sys.stdin).get("replica") or {}
print(r.get("lag_bytes", "nan"), r.get("lag_seconds", "nan"), 1 if r.get("streaming") else 0)'
}
samples=()
while kill -0 "$load_pid" 2>/dev/null; do
  samples+=("$(lag || echo nan nan 0)")
  sleep 1
done
wait "$load_pid"
load_pid=
tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$home/pgbench.out" | head -1)
# After the load: how long until replay has caught up (lag 0 bytes), at most 60 s.
t0=$(now) caught_up=''
for _ in $(seq 240); do
  read -r bytes _ streaming < <(lag || echo nan nan 0)
  if [[ $bytes == 0 && $streaming == 1 ]]; then caught_up=$(secs "$t0" "$(now)"); break; fi
  sleep 0.25
done

# (d) Written in production, then a branch at once: is the row there?
prod_sql -c "CREATE TABLE probe (v text)"
probe_times=() probe_seen=()
for i in $(seq "$probes"); do
  v="probe-$i-$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
  prod_sql -c "INSERT INTO probe VALUES ('$v')"
  a=$(now); pgb branch create "rep/probe$i" >/dev/null; b=$(now)
  probe_times+=("$(secs "$a" "$b")")
  n=$(pgb psql "rep/probe$i" -- -XAtc "SELECT count(*) FROM probe WHERE v = '$v'")
  probe_seen+=("$n")
done

python3 - "$scale" "$db_bytes" "$copy_bytes" "$plain" "$ours" "$replica_create" "$seconds" \
  "${tps:-nan}" "${caught_up:-nan}" "${#samples[@]}" "${samples[@]}" "${probe_times[@]}" \
  "${probe_seen[@]}" <<'PY'
import math, statistics, sys
a = sys.argv[1:]
scale, db_bytes, copy_bytes = a[0], int(a[1]), int(a[2])
plain, ours, replica_create, seconds, tps, caught_up = (float(x) for x in a[3:9])
n = int(a[9])
samples = [s.split() for s in a[10:10 + n]]
rest = a[10 + n:]
probe_times = [float(x) for x in rest[:len(rest) // 2]]
probe_seen = rest[len(rest) // 2:]
mb = copy_bytes / 1e6
print(f"physical copy of pgbench -s {scale}: database {db_bytes / 1e6:.0f} MB, "
      f"{mb:.0f} MB copied (du -sb of the plain base backup)")
print(f"  {'plain pg_basebackup -X stream':38s} {plain:7.2f} s  {mb / plain:7.1f} MB/s")
print(f"  {'project create --from-server':38s} {ours:7.2f} s  {mb / ours:7.1f} MB/s"
      f"   ({ours / plain:.2f}x the plain copy)")
print(f"  {'project create --from-server --replica':38s} {replica_create:7.2f} s")
def num(x):
    try:
        return float(x)
    except ValueError:
        return math.nan
lag_b = [num(s[0]) for s in samples if len(s) == 3 and not math.isnan(num(s[0]))]
lag_s = [num(s[1]) for s in samples if len(s) == 3 and not math.isnan(num(s[1]))]
streaming = sum(1 for s in samples if len(s) == 3 and s[2] == "1")
print(f"replica lag under pgbench -c 4 -j 2 -T {seconds:.0f} ({tps:.0f} tps), "
      f"{len(samples)} samples, streaming in {streaming}")
if lag_b:
    print(f"  {'lag bytes, p50 / max':38s} {statistics.median(lag_b):12.0f} / {max(lag_b):.0f}")
if lag_s:
    print(f"  {'lag seconds, p50 / max':38s} {statistics.median(lag_s):12.3f} / {max(lag_s):.3f}")
print(f"  {'caught up after the load stopped':38s} "
      + ("not within 60 s" if math.isnan(caught_up) else f"{caught_up:.2f} s"))
if probe_times:
    seen = ["yes" if s == "1" else "no" for s in probe_seen]
    print(f"row written in the source -> new branch of the replica ({len(probe_times)} probes)")
    print(f"  {'branch create, p50 / max':38s} {statistics.median(probe_times):7.2f} / "
          f"{max(probe_times):.2f} s")
    print(f"  {'row present in the branch':38s} {' '.join(seen)}")
PY
