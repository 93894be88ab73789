#!/usr/bin/env bash
# Builds the node-side Kubernetes binaries of the one-node cluster (dev/cluster.ts, field notes §7)
# and caches them by version in $KEA_CACHE/bin (default ~/.cache/kea), like kube-apiserver and etcd
# (scripts/build-controlplane.sh):
#   kubelet, kube-controller-manager, kube-scheduler, kube-proxy   k8s.io/kubernetes $KUBE_VERSION,
#       one wrapper module that requires k8s.io/kubernetes and replaces each staging module
#       (`=> ./staging/...` in its go.mod) by its v0.Y.Z tag (field notes §4), one main package per
#       command (the command's own main.go, copied from the module)
#   coredns-$COREDNS_VERSION   the cluster DNS, `go install github.com/coredns/coredns@...` (no replaces)
#   pause-$KUBE_VERSION        the pod sandbox's process: build/pause/linux/pause.c of the same
#                              module, `gcc -static` (scripts/build-images.sh makes the image)
# Go builds run with `nice -n 10` (KEA_NICE overrides). Idempotent: binaries present are not rebuilt.
# Usage: build-node.sh [all|kube|coredns|pause]
set -euo pipefail
KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
# The CoreDNS version kubeadm installs with Kubernetes 1.34 (cmd/kubeadm/app/constants CoreDNSVersion).
COREDNS_VERSION="${COREDNS_VERSION:-v1.12.1}"
CACHE="${KEA_CACHE:-$HOME/.cache/kea}"
BIN="$CACHE/bin"
NICE=(nice -n "${KEA_NICE:-10}")
mkdir -p "$BIN" "$CACHE/build"
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
KUBE_CMDS=(kubelet kube-controller-manager kube-scheduler kube-proxy)

build_kube() {
  local missing=() c
  for c in "${KUBE_CMDS[@]}"; do [[ -x "$BIN/$c-$KUBE_VERSION" ]] || missing+=("$c"); done
  ((${#missing[@]})) || return 0
  # Measured here with a warm Go build cache (kube-apiserver built before): kubelet 55 s,
  # controller-manager 34 s, scheduler 5 s (field notes §7); kubelet 189 s cold.
  run_with_progress build-node "building ${missing[*]} $KUBE_VERSION" "2-4 min with a warm Go cache, 10-20 min cold on 2 cores" build_kube_cold "${missing[@]}"
}

build_kube_cold() {
  local start=$SECONDS dir="$CACHE/build/kube-node-$KUBE_VERSION" staging="v0.${KUBE_VERSION#v1.}" c
  mkdir -p "$dir" && cd "$dir"
  local kdir
  kdir=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  if [[ ! -f go.mod ]]; then
    printf 'module kea.local/kube-node-wrapper\n\ngo 1.24\n' > go.mod
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
    grep -oE 'k8s.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}' | sort -u | while read -r m; do
      go mod edit -replace="$m=$m@$staging"
    done
  fi
  for c in "${KUBE_CMDS[@]}"; do
    mkdir -p "cmd/$c"
    # The command's own main package (kubelet.go, controller-manager.go, scheduler.go, proxy.go).
    find "$kdir/cmd/$c" -maxdepth 1 -name '*.go' ! -name '*_test.go' -exec cp {} "cmd/$c/" \;
    chmod u+w "cmd/$c"/*.go
  done
  go mod tidy >/dev/null 2>&1 || go mod tidy
  local minor ldflags
  minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  for c in "$@"; do
    local t=$SECONDS
    "${NICE[@]}" go build -trimpath -ldflags "$ldflags" -o "$BIN/$c-$KUBE_VERSION.tmp" "./cmd/$c"
    mv "$BIN/$c-$KUBE_VERSION.tmp" "$BIN/$c-$KUBE_VERSION"
    echo "$c $KUBE_VERSION build: $((SECONDS - t)) s" | tee "$BIN/$c-$KUBE_VERSION.buildtime"
  done
  echo "node binaries $KUBE_VERSION: $((SECONDS - start)) s" >&2
}

build_coredns() {
  [[ -x "$BIN/coredns-$COREDNS_VERSION" ]] && return 0
  run_with_progress build-node "building coredns $COREDNS_VERSION" "1-3 min on 2 cores" build_coredns_cold
}

build_coredns_cold() {
  local start=$SECONDS dir="$CACHE/build/coredns-$COREDNS_VERSION"
  mkdir -p "$dir"
  GOBIN="$dir" "${NICE[@]}" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
  mv "$dir/coredns" "$BIN/coredns-$COREDNS_VERSION"
  echo "coredns $COREDNS_VERSION build: $((SECONDS - start)) s" | tee "$BIN/coredns-$COREDNS_VERSION.buildtime"
}

build_pause() {
  [[ -x "$BIN/pause-$KUBE_VERSION" ]] && return 0
  local kdir
  kdir=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  gcc -Os -static -DVERSION="$KUBE_VERSION" -o "$BIN/pause-$KUBE_VERSION.tmp" "$kdir/build/pause/linux/pause.c"
  strip "$BIN/pause-$KUBE_VERSION.tmp"
  mv "$BIN/pause-$KUBE_VERSION.tmp" "$BIN/pause-$KUBE_VERSION"
}

case "${1:-all}" in
  kube) build_kube ;;
  coredns) build_coredns ;;
  pause) build_pause ;;
  all) build_pause; build_kube; build_coredns ;;
esac
