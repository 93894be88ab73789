#!/usr/bin/env bash
# Builds the local stack's Gateway API implementation, Traefik (kubernetesGateway provider), from
# the Go module proxy and caches the binary by version in $KEA_CACHE/bin (default ~/.cache/kea).
# Why Traefik and not nginx-gateway-fabric: docs/adr/0004-gateway-implementation.md.
# Idempotent: a second run with the binary present does nothing. Nothing is committed to git.
#
# Traefik's go.mod has `replace` lines, so `go install module@version` refuses it; the build runs
# in a writable copy of the module directory from the module cache (`go mod download -json` → Dir).
set -euo pipefail
TRAEFIK_VERSION="${TRAEFIK_VERSION:-v3.4.5}"
TRAEFIK_MODULE="github.com/traefik/traefik/v3"
CACHE="${KEA_CACHE:-$HOME/.cache/kea}"
BIN="$CACHE/bin"
out="$BIN/traefik-$TRAEFIK_VERSION"
[[ -x "$out" ]] && exit 0
mkdir -p "$BIN" "$CACHE/build"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
# The checksum database reachable here has no entry for this Traefik release (404), so the
# top-level module alone is exempted; every dependency is still verified against Traefik's go.sum.
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}$TRAEFIK_MODULE"
start=$SECONDS
json=$(go mod download -json "$TRAEFIK_MODULE@$TRAEFIK_VERSION")
src=$(printf '%s' "$json" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
if [[ -z "$src" ]]; then
  printf '%s\n' "$json" >&2
  echo "build-gateway: cannot download $TRAEFIK_MODULE@$TRAEFIK_VERSION from the Go module proxy" >&2
  exit 1
fi
dir="$CACHE/build/traefik-$TRAEFIK_VERSION"
rm -rf "$dir"
cp -r "$src" "$dir"
chmod -R u+w "$dir"
cd "$dir"
# The web UI is embedded with //go:embed from webui/static, which the module zip may lack (it is
# built by yarn in Traefik's release pipeline). KEA does not use the dashboard: an empty page will do.
if [[ ! -d webui/static ]] || [[ -z "$(ls -A webui/static 2>/dev/null)" ]]; then
  mkdir -p webui/static
  echo '<!doctype html><title>Traefik (KEA local build, no dashboard)</title>' > webui/static/index.html
fi
go build -trimpath \
  -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION -X github.com/traefik/traefik/v3/pkg/version.Codename=kea-local -X github.com/traefik/traefik/v3/pkg/version.BuildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -o "$out.tmp" ./cmd/traefik
mv "$out.tmp" "$out"
echo "traefik $TRAEFIK_VERSION cold build: $((SECONDS - start)) s" | tee "$BIN/traefik-$TRAEFIK_VERSION.buildtime"
# The copied sources are no longer needed; the module cache keeps the original.
rm -rf "$dir"
