#!/usr/bin/env bash
# Builds nginx-gateway-fabric (NGF) from the vendored source archive and caches the binary by
# version in $KEA_CACHE/bin (default ~/.cache/kea), like kube-apiserver and etcd.
#   Source:   $KEA_SHARED/vendor/nginx-gateway-fabric-$NGF_VERSION.tar.gz (default KEA_SHARED:
#             the `shared` directory beside the repository), checked with `sha256sum -c SHA256SUMS`.
#             The Go module proxy refuses NGF's own module zips (field notes §3), its Go
#             dependencies still come from the proxy, pinned by NGF's go.sum.
#   Build:    the exact command of shared/vendor/README.md (the -X flags are required: without
#             main.telemetryReportPeriod the binary exits at start).
#   Output:   $KEA_CACHE/bin/ngf-$NGF_VERSION and ngf-$NGF_VERSION.buildtime; the extracted
#             sources stay in $KEA_CACHE/build/ (dev/ngf.ts reads NGF's CRDs and httpmatches.js
#             from there).
# Idempotent: with the binary and the extracted sources present it does nothing. Nothing of NGF
# (source or binary) is ever written inside the repository.
set -euo pipefail
NGF_VERSION="${NGF_VERSION:-1.6.2}"
CACHE="${KEA_CACHE:-$HOME/.cache/kea}"
SHARED="${KEA_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
VENDOR="$SHARED/vendor"
ARCHIVE="nginx-gateway-fabric-$NGF_VERSION.tar.gz"
BIN="$CACHE/bin"
out="$BIN/ngf-$NGF_VERSION"
src="$CACHE/build/nginx-gateway-fabric-$NGF_VERSION"
log() { printf '[build-ngf] %s\n' "$*" >&2; }

[[ -x "$out" && -f "$src/.complete" ]] && exit 0

if [[ ! -f "$VENDOR/$ARCHIVE" ]]; then
  log "missing $VENDOR/$ARCHIVE (set KEA_SHARED to the directory holding vendor/)"
  exit 1
fi
mkdir -p "$BIN" "$CACHE/build"

# 1. Checksum, then extraction (always from the verified archive, never over a half-extracted tree).
if [[ ! -f "$src/.complete" ]]; then
  log "verifying $ARCHIVE"
  (cd "$VENDOR" && grep -F " $ARCHIVE" SHA256SUMS | sha256sum -c --quiet -) || {
    log "checksum mismatch for $VENDOR/$ARCHIVE"
    exit 1
  }
  rm -rf "$src" "$src.tmp"
  mkdir -p "$src.tmp"
  tar -xzf "$VENDOR/$ARCHIVE" -C "$src.tmp" --strip-components=1
  touch "$src.tmp/.complete"
  mv "$src.tmp" "$src"
fi
[[ -x "$out" ]] && exit 0

# 2. go build, with elapsed time every 30 s (a cold build prints nothing for minutes; scripts/lib.sh).
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
start=$SECONDS
cd "$src"
status=0
run_with_progress build-ngf "building NGF $NGF_VERSION (downloads Go modules)" "about 3-5 min cold on 2 cores (180 s measured); seconds with a warm Go cache" \
  go build -trimpath \
  -ldflags "-s -w -X main.version=$NGF_VERSION -X main.telemetryReportPeriod=24h -X main.telemetryEndpointInsecure=false" \
  -o "$out.tmp" ./cmd/gateway || status=$?
if ((status != 0)); then
  rm -f "$out.tmp"
  exit "$status"
fi
mv "$out.tmp" "$out"
echo "ngf $NGF_VERSION cold build: $((SECONDS - start)) s" | tee "$BIN/ngf-$NGF_VERSION.buildtime"
