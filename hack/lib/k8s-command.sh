#!/usr/bin/env bash
# Sourced by hack/envtest.sh, hack/kube-scheduler.sh and
# hack/kube-controller-manager.sh.
#
# build_k8s_command NAME CONSTRUCTOR K8S_VERSION WORK OUT builds the
# Kubernetes command NAME (kube-apiserver, kube-scheduler, ...) into OUT/NAME:
# k8s.io/kubernetes with every staging module pinned to the matching v0.x
# release, and a one-line main around app.CONSTRUCTOR() from
# k8s.io/kubernetes/cmd/NAME/app. WORK is a scratch directory.
build_k8s_command() {
  local name=$1 constructor=$2 version=$3 work=$4 out=$5
  local dir="$work/$name" kmod
  mkdir -p "$dir"
  kmod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  {
    echo "module aivm.dev/hack/$name"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes v$version"
    echo
    grep -E '=> \./staging/' "$kmod" | awk -v v="v0.${version#1.}" '{print "replace " $1 " => " $1 " " v}'
  } >"$dir/go.mod"
  cat >"$dir/main.go" <<GO
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/$name/app"
)

func main() { os.Exit(cli.Run(app.$constructor())) }
GO
  (cd "$dir" && go mod tidy >&2 && go build -trimpath -ldflags '-s -w' -o "$out/$name" .)
}

# provide_k8s_command NAME CONSTRUCTOR OVERRIDE_VAR prints the path of a
# NAME binary built from the same Kubernetes release as the envtest
# kube-apiserver (ENVTEST_K8S_VERSION, default 1.37.2). Order of preference:
#   1. the variable named OVERRIDE_VAR, when it names an executable;
#   2. the cache, keyed by version (AIVM_CACHE_DIR, default ~/.cache/aivm-operator);
#   3. a build with build_k8s_command (minutes on 2 cores the first time;
#      one build at a time per cache directory), then cached.
provide_k8s_command() {
  local name=$1 constructor=$2 override=$3
  local version=${ENVTEST_K8S_VERSION:-1.37.2}
  local cache=${AIVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aivm-operator}
  local dir="$cache/$name/k8s-$version"
  local bin="$dir/$name"
  if [ -n "${!override:-}" ] && [ -x "${!override}" ]; then
    echo "${!override}"; return 0
  fi
  if [ -x "$bin" ]; then
    echo "$bin"; return 0
  fi
  mkdir -p "$cache/$name"
  exec 9>"$cache/$name/.lock"
  flock 9
  if [ -x "$bin" ]; then
    echo "$bin"; return 0
  fi
  local work out="$dir.tmp"
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: $work is local
  trap "rm -rf '$work'" EXIT
  export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
  rm -rf "$out"; mkdir -p "$out"
  echo "$name: building $name v$version" >&2
  build_k8s_command "$name" "$constructor" "$version" "$work" "$out"
  rm -rf "$dir"; mv "$out" "$dir"
  echo "$name: binary cached in $bin" >&2
  echo "$bin"
}
