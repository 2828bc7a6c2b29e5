#!/bin/sh
# Usage: scripts/npm-ci.sh DIR
# Installs DIR's npm packages into DIR/node_modules exactly as DIR/package-lock.json pins them
# (`npm ci`), unless node_modules already holds that lockfile's install (a stamp of
# package.json + package-lock.json). Safe to run from several tests at once (flock). Needs node
# and npm; reaches the npm registry only when it has to install (npm's cache is preferred).
set -eu
cd "$1"

want=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
stamp=node_modules/.pgbranch-lock-sha256

fresh() {
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]
}

fresh && exit 0

if command -v flock >/dev/null 2>&1; then
  exec 9>.install.lock
  flock 9
  fresh && exit 0  # another run installed it while this one waited
fi

npm ci --no-audit --no-fund --prefer-offline >&2
echo "$want" > "$stamp"
