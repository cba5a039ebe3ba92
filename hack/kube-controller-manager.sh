#!/usr/bin/env bash
# Provides a kube-controller-manager binary built from the same Kubernetes
# release as the envtest kube-apiserver and prints its path. `aivmctl dev up`
# and the end-to-end tests run it for garbage collection, node lifecycle
# (NotReady after missed heartbeats) and service-account tokens.
# KUBE_CONTROLLER_MANAGER names a binary you have; otherwise it is cached
# under ~/.cache/aivm-operator/kube-controller-manager/: see
# provide_k8s_command.
set -euo pipefail
# shellcheck source=hack/lib/k8s-command.sh
source "$(dirname "$0")/lib/k8s-command.sh"
provide_k8s_command kube-controller-manager NewControllerManagerCommand KUBE_CONTROLLER_MANAGER
