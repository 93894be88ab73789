#!/usr/bin/env bash
# Installs everything KEA's main job and its tests need, idempotently and cached:
#   Debian packages, npm packages, Go-built upstream binaries (kube-apiserver, etcd, NGF),
#   the Python virtual environments of examples/ and of MLServer (the local `framework: sklearn`
#   runtime) and the examples/iris-sklearn model files. Binaries, venvs and models live in
#   $KEA_CACHE (default ~/.cache/kea), outside git. A warm run takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export KEA_CACHE="${KEA_CACHE:-$HOME/.cache/kea}"
mkdir -p "$KEA_CACHE"
log() { printf '[setup] %s\n' "$*" >&2; }

# 1. Debian packages (only the missing ones; apt-get update once per machine).
APT_PKGS=(nginx libnginx-mod-http-js libnginx-mod-stream iproute2 openssl curl wrk chromium psmisc util-linux redis-server)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Debian's maintainer scripts start nginx as a service on install (and restart a running one
  # when a module is added); KEA runs its own nginx instances and never touches the host's:
  # the install runs with a policy-rc.d that forbids every service start (scripts/lib.sh),
  # created and removed under the apt lock.
  flock /tmp/kea-apt.lock bash -c "source scripts/lib.sh && without_service_starts bash -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends ${missing[*]} >/dev/null'"
  # A package installed just now is still enabled at boot: keep a fresh nginx from serving :80
  # after a reboot (an nginx the user had before is not touched: it was not in `missing`).
  if [[ " ${missing[*]} " == *" nginx "* ]]; then systemctl disable nginx >/dev/null 2>&1 || true; fi
  # The same for redis-server: KEA's tests and `kea up` start their own redis-server
  # (dev/testing/redis.ts) on a free port; the Debian service stays off.
  if [[ " ${missing[*]} " == *" redis-server "* ]]; then systemctl disable redis-server >/dev/null 2>&1 || true; fi
fi

# 2. npm packages, exactly as package-lock.json pins them: `npm ci`, which never writes the lock
#    and refuses one out of sync with package.json (scripts/check-lock.sh, run by `npm test`,
#    also fails when npm would rewrite it). The lock is complete: it lists every platform's
#    optional bindings. Skipped while node_modules holds an install of this very lock (a stamp
#    named after its sha256; the lock's root entry repeats package.json's dependencies).
npm_sum=$(sha256sum package-lock.json | cut -c1-16)
if [[ ! -f node_modules/.kea-npm-$npm_sum ]]; then
  log "npm ci (from package-lock.json)"
  flock /tmp/kea-npm.lock npm ci --no-audit --no-fund --loglevel=error
  touch "node_modules/.kea-npm-$npm_sum"
fi

# 3. Go-built upstream components, cached by version.
bash scripts/build-controlplane.sh all
bash scripts/build-ngf.sh       # NGF 1.6.2 from ../shared/vendor: the local gateway (dev/ngf.ts, docs/adr/0010-ngf-local-gateway.md)

# 4. Python environment for the example ML services.
if [[ -f examples/requirements.txt ]]; then
  req_sum=$(sha256sum examples/requirements.txt | cut -c1-16)
  venv="$KEA_CACHE/venv-$req_sum"
  if [[ ! -x "$venv/bin/python" || ! -f "$venv/.complete" ]]; then
    log "python venv $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r examples/requirements.txt
    touch "$venv/.complete"
  fi
  ln -sfn "$venv" "$KEA_CACHE/venv"
fi

# 5. MLServer + mlserver-sklearn: the local runtime of `framework: sklearn` (dev/localpods.ts),
#    in a venv of its own (its fastapi/starlette pins differ from the examples'), then the
#    models of examples/iris-sklearn, trained (no download) and saved with joblib by that venv's
#    scikit-learn into $KEA_CACHE/models/iris-sklearn/{v1,v2}/model.joblib, where the example's
#    `modelUri: file:///models/iris-sklearn/...` points (a local pod resolves a `file://` path
#    missing on the host under $KEA_CACHE). Retrained when train.py or the pins change.
mls_req=examples/runtimes/mlserver-requirements.txt
if [[ -f $mls_req ]]; then
  mls_sum=$(sha256sum "$mls_req" | cut -c1-16)
  mls_venv="$KEA_CACHE/venv-mlserver-$mls_sum"
  if [[ ! -x "$mls_venv/bin/mlserver" || ! -f "$mls_venv/.complete" ]]; then
    log "python venv $mls_venv (MLServer)"
    rm -rf "$mls_venv"
    python3 -m venv "$mls_venv"
    "$mls_venv/bin/pip" install -q --disable-pip-version-check -r "$mls_req"
    touch "$mls_venv/.complete"
  fi
  ln -sfn "$mls_venv" "$KEA_CACHE/venv-mlserver"
  models="$KEA_CACHE/models/iris-sklearn"
  model_sum=$(cat examples/iris-sklearn/train.py "$mls_req" | sha256sum | cut -c1-16)
  if [[ ! -f "$models/.trained-$model_sum" ]]; then
    log "training examples/iris-sklearn models into $models"
    rm -rf "$models"
    "$mls_venv/bin/python" examples/iris-sklearn/train.py "$models"
    touch "$models/.trained-$model_sum"
  fi
fi
log "ready"
