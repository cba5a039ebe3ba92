#!/usr/bin/env bash
# Provides kube-apiserver and etcd for envtest and prints the directory that
# holds them (use it as KUBEBUILDER_ASSETS).
#
# Order of preference:
#   1. KUBEBUILDER_ASSETS already set and holding both binaries;
#   2. the cache, keyed by version (AIVM_CACHE_DIR, default ~/.cache/aivm-operator);
#   3. setup-envtest (downloads release binaries; works when online);
#   4. a build from the Kubernetes and etcd Go modules through the Go module
#      proxy (about 15 minutes on 2 cores the first time, then cached).
set -euo pipefail
# shellcheck source=hack/lib/k8s-command.sh
source "$(dirname "$0")/lib/k8s-command.sh"

K8S_VERSION=${ENVTEST_K8S_VERSION:-1.37.2}
ETCD_VERSION=${ENVTEST_ETCD_VERSION:-3.7.3}
SETUP_ENVTEST_VERSION=${SETUP_ENVTEST_VERSION:-release-0.25}
CACHE=${AIVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aivm-operator}
DIR="$CACHE/envtest/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"

log() { echo "envtest: $*" >&2; }
have() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ]; }

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && have "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"; exit 0
fi
if have "$DIR"; then
  echo "$DIR"; exit 0
fi
mkdir -p "$CACHE/envtest"

# Only one build at a time per cache directory.
exec 9>"$CACHE/envtest/.lock"
flock 9
if have "$DIR"; then
  echo "$DIR"; exit 0
fi

if [ -z "${ENVTEST_NO_DOWNLOAD:-}" ]; then
  log "trying setup-envtest for Kubernetes $K8S_VERSION"
  if path=$(GOFLAGS= timeout 120 go run "sigs.k8s.io/controller-runtime/tools/setup-envtest@$SETUP_ENVTEST_VERSION" \
      use "$K8S_VERSION" --bin-dir "$CACHE/envtest/setup-envtest" -p path 2>/dev/null) && have "$path"; then
    mkdir -p "$DIR.tmp"
    cp "$path/kube-apiserver" "$path/etcd" "$DIR.tmp/"
    rm -rf "$DIR"; mv "$DIR.tmp" "$DIR"
    echo "$DIR"; exit 0
  fi
  log "setup-envtest could not provide binaries; building them from Go modules"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
out="$DIR.tmp"
rm -rf "$out"; mkdir -p "$out"

log "building kube-apiserver v$K8S_VERSION"
build_k8s_command kube-apiserver NewAPIServerCommand "$K8S_VERSION" "$work" "$out"

log "building etcd v$ETCD_VERSION"
mkdir -p "$work/etcd"
cat >"$work/etcd/go.mod" <<GOMOD
module aivm.dev/envtest/etcd

go 1.26

require go.etcd.io/etcd/server/v3 v$ETCD_VERSION
GOMOD
cat >"$work/etcd/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
(cd "$work/etcd" && go mod tidy >&2 && go build -trimpath -ldflags '-s -w' -o "$out/etcd" .)

rm -rf "$DIR"; mv "$out" "$DIR"
log "binaries cached in $DIR"
echo "$DIR"
