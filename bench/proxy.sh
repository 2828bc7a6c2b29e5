#!/usr/bin/env bash
# The proxy (`pgbranch serve`) beside a direct connection to the same branch, in one run:
# pgbench select-only over long-lived connections (what the relay costs per query), select-only
# with a new connection per transaction (-C: what routing, SCRAM and the login through the
# proxy cost), TPC-B, and the wake of a suspended branch on connect beside `branch start` +
# connect. Figures, not assertions; ratios are proxy / direct. Needs root (image pool).
# Also: connect latency (p50/p95 of single connections, plain and TLS), and the daemon's
# memory per held idle session.
# Usage: sudo bench/proxy.sh [--scale 10] [--seconds 20] [--clients 8] [--wakes 20]
#                            [--connects 200] [--sessions 90]
#        PGBRANCH=build/test/pgbranch bench/proxy.sh ...   (skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
scale=10 seconds=20 clients=8 wakes=20 connects=200 sessions=90
while [[ $# -gt 0 ]]; do
  case "$1" in
    --scale) scale=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --wakes) wakes=$2; shift 2 ;;
    --connects) connects=$2; shift 2 ;;
    --sessions) sessions=$2; shift 2 ;;
    *) echo "usage: $0 [--scale N] [--seconds N] [--clients N] [--wakes N] [--connects N] [--sessions N]" >&2; exit 2 ;;
  esac
done
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_binary
home=$(mktemp -d /tmp/pgb-bench-proxy.XXXXXX)
proxy_port=63190
serve_pid=
cleanup() {
  set +e
  [[ -n $serve_pid ]] && kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  "$PGBRANCH" --home "$home" -q project delete demo --force >/dev/null 2>&1
  umount -l "$home/pool" 2>/dev/null
  rm -rf "$home"
}
trap cleanup EXIT
pgb() { "$PGBRANCH" --home "$home" -q "$@"; }

pgb init --image "$home/pool.img" --size 4G --port-range 63100-63139 >/dev/null
pgb project create demo >/dev/null
pgb branch create demo/dev >/dev/null
"$PGBRANCH" --home "$home" serve --proxy-listen "127.0.0.1:$proxy_port" 2>"$home/serve.log" &
serve_pid=$!
for _ in $(seq 50); do [[ -f $home/serve.json ]] && break; sleep 0.1; done

# Passwords reach pgbench and psql through PGPASSWORD only, never argv.
direct_uri=$(pgb branch url demo/dev)
proxy_uri=$(pgb branch url demo/dev --proxy)
password_of() { local u=${1#postgresql://*:}; echo "${u%%@*}"; }
direct_pw=$(password_of "$direct_uri")
proxy_pw=$(password_of "$proxy_uri")
direct_port=$(pgb branch get demo/dev --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')
direct() { PGPASSWORD=$direct_pw PGHOST=127.0.0.1 PGPORT=$direct_port PGUSER=postgres PGDATABASE=postgres "$@"; }
proxied() { PGPASSWORD=$proxy_pw PGHOST=127.0.0.1 PGPORT=$proxy_port PGUSER=postgres PGDATABASE=demo/dev "$@"; }

direct pgbench -q -i -s "$scale" >/dev/null 2>&1
tps() { sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1; }
run() {  # run <label> <pgbench args...>
  local label=$1; shift
  local d p
  d=$(direct pgbench "$@" -c "$clients" -j 2 -T "$seconds" 2>/dev/null | tps)
  p=$(proxied pgbench "$@" -c "$clients" -j 2 -T "$seconds" 2>/dev/null | tps)
  printf '%-40s %12.0f %12.0f %10.2f\n' "$label" "$d" "$p" "$(awk -v a="$p" -v b="$d" 'BEGIN {print a / b}')"
}

echo "pgbench on demo/dev (scale $scale, -c $clients -j 2 -T $seconds), PostgreSQL $(pgb project get demo --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pg_version"])')"
printf '%-40s %12s %12s %10s\n' "workload (TPS)" "direct" "proxy" "proxy/dir"
run "select-only (-S)" -S
run "select-only, new connection each (-S -C)" -S -C
run "TPC-B (default)"

# Connect latency: one libpq connection (psycopg2) at a time, connect to first answer, as
# p50/p95 over $connects, without and with TLS; then $sessions idle sessions held through
# the proxy and the daemon's resident memory before and after (VmRSS).
/usr/bin/python3 - "$connects" "$sessions" "$serve_pid" <<PY
import os, statistics, sys, time
import psycopg2
connects, sessions, serve_pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
direct = dict(host="127.0.0.1", port=$direct_port, user="postgres", dbname="postgres",
              password="$direct_pw")
proxy = dict(host="127.0.0.1", port=$proxy_port, user="postgres", dbname="demo/dev",
             password="$proxy_pw")
def lat(params, sslmode):
    out = []
    for _ in range(connects):
        t = time.perf_counter()
        c = psycopg2.connect(sslmode=sslmode, **params)
        c.cursor().execute("select 1")
        out.append((time.perf_counter() - t) * 1000)
        c.close()
    out.sort()
    return out[len(out) // 2], out[int(len(out) * 0.95) - 1]
print()
print("%-40s %12s %12s %10s" % ("connect + select 1 (ms, p50 / p95)", "direct", "proxy", "added"))
for mode in ("disable", "require"):
    d, p = lat(direct, mode), lat(proxy, mode)
    print("%-40s %12s %12s %10s" % ("sslmode=" + mode, "%.2f / %.2f" % d, "%.2f / %.2f" % p,
                                     "%+.2f / %+.2f" % (p[0] - d[0], p[1] - d[1])))
def rss():
    for line in open("/proc/%s/status" % serve_pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
before = rss()
held = [psycopg2.connect(sslmode="disable", **proxy) for _ in range(sessions)]
after = rss()
print()
print("serve's RSS: %.1f MiB idle, %.1f MiB with %d sessions held (%.1f KiB each; 1000 "
      "sessions ~ %.0f MiB)" % (before / 1024, after / 1024, sessions,
                                (after - before) / sessions,
                                (before + (after - before) / sessions * 1000) / 1024))
for c in held: c.close()
PY

# Wake: a suspended branch answering its first query through the proxy, beside starting it
# with the CLI and then connecting directly. Milliseconds, p50 and p95 of $wakes.
now_ms() { date +%s%3N; }
wake=() start=()
for _ in $(seq "$wakes"); do
  pgb branch suspend demo/dev >/dev/null
  t0=$(now_ms); proxied psql -XAtqc 'select 1' >/dev/null; t1=$(now_ms)
  wake+=($((t1 - t0)))
  pgb branch stop demo/dev >/dev/null
  t0=$(now_ms); pgb branch start demo/dev >/dev/null; direct psql -XAtqc 'select 1' >/dev/null
  t1=$(now_ms)
  start+=($((t1 - t0)))
done
pct() {  # pct <percent> values...: the value at that rank (nearest rank)
  local q=$1; shift
  printf '%s\n' "$@" | sort -n | awk -v q="$q" '{a[NR]=$1} END {i=int(NR*q/100+0.999); if (i<1) i=1; print a[i]}'
}
w50=$(pct 50 "${wake[@]}") w95=$(pct 95 "${wake[@]}")
s50=$(pct 50 "${start[@]}") s95=$(pct 95 "${start[@]}")
printf '\n%-40s %12s %12s %10s\n' "to the first answer (ms, p50 / p95, $wakes)" "start+direct" "proxy wake" "proxy/dir"
printf '%-40s %12s %12s %10.2f\n' "stopped/suspended branch, select 1" "$s50 / $s95" "$w50 / $w95" \
  "$(awk -v a="$w50" -v b="$s50" 'BEGIN {print a / b}')"

