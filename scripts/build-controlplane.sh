#!/usr/bin/env bash
# Builds a pinned kube-apiserver and etcd from the Go module proxy (field notes §4) and
# caches the binaries by version outside git, in $KEA_CACHE (default ~/.cache/kea).
# Idempotent: a second run with the binaries present does nothing.
set -euo pipefail
KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE="${KEA_CACHE:-$HOME/.cache/kea}"
BIN="$CACHE/bin"
mkdir -p "$BIN" "$CACHE/build"
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

build_apiserver() {
  [[ -x "$BIN/kube-apiserver-$KUBE_VERSION" ]] && return 0
  # Cold: 407 s measured on 2 cores (module downloads + go build); field notes §4 expect 10-20 min.
  run_with_progress build-controlplane "building kube-apiserver $KUBE_VERSION" "about 7 min on 2 cores, more on a slow network" build_apiserver_cold
}

build_apiserver_cold() {
  local out="$BIN/kube-apiserver-$KUBE_VERSION"
  local start=$SECONDS dir="$CACHE/build/kube-apiserver-$KUBE_VERSION"
  local staging="v0.${KUBE_VERSION#v1.}"
  mkdir -p "$dir" && cd "$dir"
  cat > go.mod <<GOMOD
module kea.local/kube-apiserver-wrapper

go 1.24
GOMOD
  cat > main.go <<'GO'
package main

import (
	"os"

	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
GO
  # Replace each staging module (the `=> ./staging/...` lines of k8s.io/kubernetes' go.mod).
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
  grep -oE 'k8s.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}' | sort -u | while read -r m; do
    go mod edit -replace="$m=$m@$staging"
  done
  go mod tidy >/dev/null 2>&1 || go mod tidy
  go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)" -o "$out.tmp" .
  mv "$out.tmp" "$out"
  echo "kube-apiserver $KUBE_VERSION cold build: $((SECONDS - start)) s" | tee "$BIN/kube-apiserver-$KUBE_VERSION.buildtime"
}

build_etcd() {
  [[ -x "$BIN/etcd-$ETCD_VERSION" ]] && return 0
  # Cold: 49 s measured on 2 cores.
  run_with_progress build-controlplane "building etcd $ETCD_VERSION" "about 1 min on 2 cores" build_etcd_cold
}

build_etcd_cold() {
  local out="$BIN/etcd-$ETCD_VERSION"
  local start=$SECONDS dir="$CACHE/build/etcd-$ETCD_VERSION"
  mkdir -p "$dir" && cd "$dir"
  cat > go.mod <<GOMOD
module kea.local/etcd-wrapper

go 1.24
GOMOD
  cat > main.go <<'GO'
package main

import "go.etcd.io/etcd/server/v3/etcdmain"

import "os"

func main() { etcdmain.Main(os.Args) }
GO
  go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go mod tidy >/dev/null 2>&1 || go mod tidy
  go build -trimpath -ldflags "-s -w" -o "$out.tmp" .
  mv "$out.tmp" "$out"
  echo "etcd $ETCD_VERSION cold build: $((SECONDS - start)) s" | tee "$BIN/etcd-$ETCD_VERSION.buildtime"
}

case "${1:-all}" in
  apiserver) build_apiserver ;;
  etcd) build_etcd ;;
  all) build_etcd; build_apiserver ;;
esac
