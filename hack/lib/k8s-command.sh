#!/usr/bin/env bash
# Sourced by hack/envtest.sh and hack/kube-scheduler.sh.
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
