#!/bin/sh
# Installs node-postgres for client.js into node_modules/ from package-lock.json
# (`npm ci`), unless node_modules/ already holds exactly what the lockfile pins.
# Safe to run from several tests at once. Needs node and npm; reaches the npm
# registry only when it has to install (npm's cache is preferred).
set -eu
cd "$(dirname "$0")"

want=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
stamp=node_modules/.pgbranch-lock-sha256

fresh() {
  [ -f node_modules/pg/package.json ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]
}

fresh && exit 0

if command -v flock >/dev/null 2>&1; then
  exec 9>.install.lock
  flock 9
  fresh && exit 0  # another run installed it while this one waited
fi

npm ci --no-audit --no-fund --prefer-offline >&2
echo "$want" > "$stamp"
