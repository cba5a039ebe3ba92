#!/usr/bin/env bash
# Provides a kube-controller-manager binary built from the same Kubernetes
# release as the envtest kube-apiserver and prints its path. `aivmctl dev up`
# and the end-to-end tests run it for garbage collection, node lifecycle
# (NotReady after missed heartbeats) and service-account tokens.
#
# Order of preference:
#   1. KUBE_CONTROLLER_MANAGER already set and executable;
#   2. the cache, keyed by version (AIVM_CACHE_DIR, default ~/.cache/aivm-operator);
#   3. a build from the k8s.io/kubernetes Go module through the Go module proxy
#      (about 10 minutes on 2 cores the first time, then cached).
set -euo pipefail
# shellcheck source=hack/lib/k8s-command.sh
source "$(dirname "$0")/lib/k8s-command.sh"

K8S_VERSION=${ENVTEST_K8S_VERSION:-1.37.2}
CACHE=${AIVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aivm-operator}
DIR="$CACHE/kube-controller-manager/k8s-$K8S_VERSION"
BIN="$DIR/kube-controller-manager"

log() { echo "kube-controller-manager: $*" >&2; }

if [ -n "${KUBE_CONTROLLER_MANAGER:-}" ] && [ -x "$KUBE_CONTROLLER_MANAGER" ]; then
  echo "$KUBE_CONTROLLER_MANAGER"; exit 0
fi
if [ -x "$BIN" ]; then
  echo "$BIN"; exit 0
fi
mkdir -p "$CACHE/kube-controller-manager"

# Only one build at a time per cache directory.
exec 9>"$CACHE/kube-controller-manager/.lock"
flock 9
if [ -x "$BIN" ]; then
  echo "$BIN"; exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
out="$DIR.tmp"
rm -rf "$out"; mkdir -p "$out"

log "building kube-controller-manager v$K8S_VERSION"
build_k8s_command kube-controller-manager NewControllerManagerCommand "$K8S_VERSION" "$work" "$out"

rm -rf "$DIR"; mv "$out" "$DIR"
log "binary cached in $BIN"
echo "$BIN"
