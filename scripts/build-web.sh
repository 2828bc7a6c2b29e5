#!/usr/bin/env bash
# Builds the web dashboard that `pgbranch serve` serves at / (web/ -> web/dist/).
# Usage: scripts/build-web.sh [build|test]
#   build (default): installs web/'s pinned packages if needed, then `npm run build`.
#   test:            installs them if needed, then runs the Vitest suite (npx vitest run).
# Packages come from the npm registry, exactly as web/package-lock.json pins them
# (scripts/npm-ci.sh: only when the lockfile changed since the last install), into
# web/node_modules only: nothing is installed globally. Needs Node.js 20.19 or newer (Vite 8);
# exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../web"
mode="${1:-build}"
case "$mode" in
  build|test) ;;
  *) echo "usage: $0 [build|test]" >&2; exit 2 ;;
esac

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "build-web: Node.js and npm are needed (scripts/install-deps.sh installs them)" >&2
  exit 1
fi
if ! node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  process.exit(maj > 20 || (maj === 20 && min >= 19) ? 0 : 1);'; then
  echo "build-web: Node.js $(node -v) is too old; Vite needs 20.19 or newer" >&2
  exit 1
fi

../scripts/npm-ci.sh .

if [ "$mode" = test ]; then
  npx --no-install vitest run
else
  npm run build
  echo "build-web: $(du -sh dist | cut -f1) in web/dist"
fi
