#!/usr/bin/env bash
# Fails when package-lock.json is not exactly the lock npm would write for package.json, e.g. a
# dependency added to package.json without `npm install`, or a lock missing other platforms'
# optional bindings (then `npm ci` refuses it on a clean clone). Run by `npm test` (`npm run
# lockcheck`); takes about a second: npm resolves the lock afresh in a scratch directory
# (`--package-lock-only`: no node_modules, no install scripts) and the two files must be equal.
# Fix a failure with `npm install` (it rewrites the lock) and commit package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp package.json package-lock.json "$tmp/"
if [[ -f .npmrc ]]; then cp .npmrc "$tmp/"; fi
(cd "$tmp" && npm install --package-lock-only --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
if ! cmp -s package-lock.json "$tmp/package-lock.json"; then
  echo "[check-lock] package-lock.json is out of date: npm would rewrite it as below. Run npm install and commit the lock." >&2
  diff -u package-lock.json "$tmp/package-lock.json" | head -60 >&2 || true
  exit 1
fi
echo "[check-lock] package-lock.json is complete and in sync with package.json" >&2
