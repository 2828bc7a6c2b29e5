#!/usr/bin/env bash
# The HTTP API of `pgbranch serve` beside the CLI, in one run: branch create over HTTP
# (POST ...?wait=true, the answer when the branch runs) against `pgbranch branch create`, p50
# and p95 of each; then, with --branches branches defined, --concurrency clients each listing
# the project's branches (GET /branches, sizes measured as the CLI's `branch list` does, and
# ?sizes=false) as fast as they can: p50/p99 latency. Figures, not assertions. Needs root
# (image pool).
# Usage: sudo bench/api.sh [--creates 20] [--branches 100] [--concurrency 50] [--requests 20]
#        PGBRANCH=build/test/pgbranch bench/api.sh ...   (skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
creates=20 branches=100 concurrency=50 requests=20
while [[ $# -gt 0 ]]; do
  case "$1" in
    --creates) creates=$2; shift 2 ;;
    --branches) branches=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    *) echo "usage: $0 [--creates N] [--branches N] [--concurrency N] [--requests N]" >&2; exit 2 ;;
  esac
done
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_binary
home=$(mktemp -d /tmp/pgb-bench-api.XXXXXX)
serve_pid=
cleanup() {
  set +e
  [[ -n $serve_pid ]] && kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  "$PGBRANCH" --home "$home" -q project delete bench --force >/dev/null 2>&1
  umount -l "$home/pool" 2>/dev/null
  rm -rf "$home"
}
trap cleanup EXIT
pgb() { "$PGBRANCH" --home "$home" -q "$@"; }

pgb init --image "$home/pool.img" --size 8G --port-range 63200-63499 >/dev/null
pgb project create bench >/dev/null
token=$(pgb token create bench --scope write | tail -n 1)
"$PGBRANCH" --home "$home" serve --proxy-listen 127.0.0.1:0 --api-listen 127.0.0.1:0 \
  2>"$home/serve.log" &
serve_pid=$!
api=
for _ in $(seq 100); do
  api=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("api_url",""))' \
        "$home/serve.json" 2>/dev/null || true)
  [[ -n $api ]] && break
  sleep 0.1
done
[[ -n $api ]] || { echo "serve did not start:"; cat "$home/serve.log"; exit 1; }

# The token reaches python through the environment only, never argv.
export PGB_API="$api" PGB_TOKEN="$token"
python3 - "$creates" "$PGBRANCH" "$home" <<'PY'
import json, os, statistics, subprocess, sys, time, urllib.request
creates, pgbranch, home = int(sys.argv[1]), sys.argv[2], sys.argv[3]
api, token = os.environ["PGB_API"], os.environ["PGB_TOKEN"]
def http(method, path, body=None):
    req = urllib.request.Request(api + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return r.status, json.load(r)
def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
cli, web = [], []
for i in range(creates):
    t = time.monotonic()
    subprocess.run([pgbranch, "--home", home, "-q", "branch", "create", f"bench/cli-{i}"],
                   check=True, stdout=subprocess.DEVNULL)
    cli.append(time.monotonic() - t)
    t = time.monotonic()
    status, op = http("POST", "/api/v1/projects/bench/branches?wait=true", {"name": f"http-{i}"})
    web.append(time.monotonic() - t)
    assert status == 201, op
print(f"branch create, {creates} each, alternating (seconds):")
print(f"  {'':24} {'p50':>8} {'p95':>8}")
print(f"  {'CLI':24} {pct(cli,50):8.3f} {pct(cli,95):8.3f}")
print(f"  {'HTTP ?wait=true':24} {pct(web,50):8.3f} {pct(web,95):8.3f}")
print(f"  {'ratio HTTP / CLI':24} {pct(web,50)/pct(cli,50):8.2f} {pct(web,95)/pct(cli,95):8.2f}")
PY

have=$((creates * 2 + 1))
for ((i = have; i < branches; i++)); do pgb branch create "bench/more-$i" >/dev/null; done
python3 - "$concurrency" "$requests" "$branches" <<'PY'
import json, os, sys, threading, time, urllib.request
concurrency, requests, branches = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
api, token = os.environ["PGB_API"], os.environ["PGB_TOKEN"]
def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
for query in ("?sizes=false", ""):
    lat, lock = [], threading.Lock()
    def client():
        for _ in range(requests):
            req = urllib.request.Request(api + "/api/v1/projects/bench/branches" + query,
                                         headers={"Authorization": "Bearer " + token})
            t = time.monotonic()
            with urllib.request.urlopen(req, timeout=600) as r:
                n = len(json.load(r))
            with lock:
                lat.append(time.monotonic() - t)
            assert n >= branches, n
    # Warm: one list first, as a running dashboard keeps it (the cold first read is reported
    # apart).
    req = urllib.request.Request(api + "/api/v1/projects/bench/branches" + query,
                                 headers={"Authorization": "Bearer " + token})
    t = time.monotonic()
    urllib.request.urlopen(req, timeout=600).read()
    cold = time.monotonic() - t
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    t = time.monotonic()
    for th in threads: th.start()
    for th in threads: th.join()
    took = time.monotonic() - t
    label = "without sizes" if query else "with sizes (FIEMAP)"
    print(f"GET /branches {label}, {branches} branches, {concurrency} clients x {requests}:"
          f" p50 {pct(lat,50)*1000:.1f} ms, p99 {pct(lat,99)*1000:.1f} ms,"
          f" {len(lat)/took:.0f} requests/s (the cold first read: {cold*1000:.0f} ms)")
PY
