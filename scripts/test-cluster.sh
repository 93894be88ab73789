#!/usr/bin/env bash
# The real-cluster suite (e2e/cluster/*.test.ts, issue 15), run by `npm test` after the other
# suites and by `npm run test:cluster`: makes sure the cluster's prerequisites are there
# (scripts/cluster.sh prereqs: Debian packages, Go-built binaries, base images; cached), starts
# the one-node cluster once for every file unless one already runs, runs the suite, and stops the
# cluster again (restoring the host) if it started it here, whatever the suite's outcome.
# Needs root and a built dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/cluster.sh prereqs
healthy() { node_modules/.bin/node --input-type=module -e "
  const m = await import('./dist/dev/cluster.js');
  process.exit((await m.clusterHealthy(await m.readClusterInfo())) ? 0 : 1);"; }
started=0
if ! healthy; then
  node_modules/.bin/node dist/dev/cluster-main.js up --no-kea   # each file installs what it tests
  started=1
fi
stop() { if ((started)); then node_modules/.bin/node dist/dev/cluster-main.js down; fi; }
trap stop EXIT
node_modules/.bin/node --experimental-vm-modules node_modules/jest/bin/jest.js -c e2e/cluster/jest.config.js --runInBand "$@"
