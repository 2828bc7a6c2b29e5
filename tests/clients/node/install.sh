#!/bin/sh
# Installs node-postgres for client.js as package-lock.json pins it (scripts/npm-ci.sh).
exec "$(dirname "$0")/../../../scripts/npm-ci.sh" "$(dirname "$0")"
