#!/usr/bin/env bash
# `npm run cluster [-- up|down|status|prereqs] [--fresh] [--state-dir DIR]`: the one-node Kubernetes
# cluster of dev/cluster.ts (issue 15, field notes §7). `up` (the default) first makes sure that
# everything it runs is there, each step cached: the Debian packages of the node (containerd,
# runc, CNI plugins, iptables, buildah/skopeo/mmdebstrap for the images), the Go-built binaries
# (scripts/build-controlplane.sh, scripts/build-node.sh), the base images (scripts/build-images.sh)
# and dist/ (tsc); `prereqs` does only that. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=up
if [[ $# -gt 0 && "$1" != -* ]]; then cmd=$1; shift; fi
if [[ "$cmd" != up && "$cmd" != prereqs ]]; then
  exec node_modules/.bin/node dist/dev/cluster-main.js "$cmd" "$@"
fi
log() { printf '[cluster] %s\n' "$*" >&2; }
start=$SECONDS
NODE_PKGS=(containerd runc containernetworking-plugins iptables nftables conntrack buildah skopeo mmdebstrap gcc openssl)
missing=()
for p in "${NODE_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  # No service starts during the install (scripts/lib.sh): the node's containerd is started by dev/cluster.ts only.
  flock /tmp/kea-apt.lock bash -c "source scripts/lib.sh && without_service_starts bash -c 'DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing[*]} >/dev/null'"
  # A package installed just now is enabled at boot: the host's own containerd must not start then.
  if [[ " ${missing[*]} " == *" containerd "* ]]; then systemctl disable containerd >/dev/null 2>&1 || true; fi
fi
bash scripts/build-controlplane.sh all
bash scripts/build-node.sh all
bash scripts/build-images.sh base
if [[ ! -f dist/dev/cluster-main.js || -n "$(find dev lib -name '*.ts' -newer dist/dev/cluster-main.js -print -quit)" ]]; then
  node_modules/.bin/tsc -p tsconfig.build.json
fi
log "prerequisites ready in $((SECONDS - start)) s"
if [[ "$cmd" == prereqs ]]; then exit 0; fi
exec node_modules/.bin/node dist/dev/cluster-main.js up "$@"
