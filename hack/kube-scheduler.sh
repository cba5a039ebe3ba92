#!/usr/bin/env bash
# Provides a kube-scheduler binary built from the same Kubernetes release as
# the envtest kube-apiserver and prints its path. The scheduling benchmark
# (cmd/manager, BenchmarkSchedulingEndToEnd) runs it side by side with the
# operator's scheduler. KUBE_SCHEDULER names a binary you have; otherwise
# it is cached under ~/.cache/aivm-operator/kube-scheduler/ (about 10
# minutes on 2 cores to build the first time): see provide_k8s_command.
set -euo pipefail
# shellcheck source=hack/lib/k8s-command.sh
source "$(dirname "$0")/lib/k8s-command.sh"
provide_k8s_command kube-scheduler NewSchedulerCommand KUBE_SCHEDULER
