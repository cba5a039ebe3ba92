# aivm-operator Makefile. Run `make help` for the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# go-nvml needs cgo; this quiets its deprecation warnings.
export CGO_CFLAGS ?= -Wno-deprecated-declarations
GO ?= go
CONTROLLER_GEN ?= $(GO) tool controller-gen
GOLANGCI_LINT_VERSION ?= v2.15.0
LOCALBIN ?= $(CURDIR)/bin
HELM_VERSION ?= v3.22.0
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
IMG ?= ghcr.io/aivm-dev/aivm-operator:dev
# Packages whose tests run in `make test`.
TEST_PKGS ?= ./...
TEST_FLAGS ?= -timeout 30m
# Packages whose tests also run under the race detector in `make test-race`
# (CI runs it): the chain client, artifact, the controllers (their envtest
# suites included: about a minute more on 2 cores), internal packages, the
# node agent and the runtime. The end-to-end tests run without it.
RACE_PKGS ?= ./chain-client/... ./artifact/... ./controllers/... ./internal/committee/... \
	./internal/sha256hex/... ./internal/text/... ./internal/status/... ./internal/devkubelet/... \
	./nodeagent/... ./runtime-image/...
# `make test` includes the end-to-end tests (test/e2e, on the dev
# environment; they need root for the model volumes' bind mounts).
# AIVM_E2E=0 leaves them out.
AIVM_E2E ?= 1
# Fuzz targets each run briefly in `make test-fuzz`.
FUZZTIME ?= 10s

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: ## Generate CRDs and RBAC roles from the Go markers.
	$(CONTROLLER_GEN) crd paths="./api/..." output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths="./controllers/..." output:rbac:artifacts:config=config/rbac
	@if ls nodeagent/*.go >/dev/null 2>&1; then \
	  $(CONTROLLER_GEN) rbac:roleName=node-agent-role paths="./nodeagent/..." output:rbac:artifacts:config=config/node-agent/rbac; \
	fi
	./hack/sync-chart.sh

.PHONY: generate
generate: proto ## Generate deepcopy code and the protobuf code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

# hack/protogen is a module of its own that pins its generator
# (github.com/bufbuild/protocompile, no protoc needed) in its go.mod; its
# google.golang.org/protobuf must be the operator's.
.PHONY: proto
proto: ## Generate chain-client/aivmv1 from chain-client/proto (protoc-gen-go of go.mod's protobuf version).
	@want=$$($(GO) list -m -f '{{.Version}}' google.golang.org/protobuf); \
	  got=$$(cd hack/protogen && $(GO) list -m -f '{{.Version}}' google.golang.org/protobuf); \
	  if [ "$$want" != "$$got" ]; then \
	    echo "hack/protogen has google.golang.org/protobuf $$got, go.mod $$want: run 'cd hack/protogen && go get google.golang.org/protobuf@$$want && go mod tidy'"; exit 1; fi
	cd hack/protogen && $(GO) run . -I ../../chain-client/proto -out ../../chain-client \
	  -module github.com/aivm-dev/aivm-operator/chain-client aivm/v1/aivm.proto

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (on hack/protogen's module too).
	$(GOLANGCI_LINT) run ./...
	cd hack/protogen && $(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $(GOLANGCI_LINT)

.PHONY: envtest
envtest: ## Provide kube-apiserver and etcd for the tests; prints their directory.
	@./hack/envtest.sh

.PHONY: test
test: $(HELM) ## Run unit, integration and end-to-end tests (a real kube-apiserver and etcd; the devnet chain; the rendered Helm chart; the dev environment).
	@assets=$$(./hack/envtest.sh) && \
	  echo "KUBEBUILDER_ASSETS=$$assets" && \
	  kcm=$$(if [ "$(AIVM_E2E)" = 1 ]; then ./hack/kube-controller-manager.sh; fi) && \
	  KUBEBUILDER_ASSETS="$$assets" KUBE_CONTROLLER_MANAGER="$$kcm" HELM="$(abspath $(HELM))" AIVM_E2E=$(AIVM_E2E) \
	  $(GO) test $(TEST_FLAGS) $(TEST_PKGS)

.PHONY: test-race
test-race: ## Run the tests of RACE_PKGS (the chain client and the unit tests), and the chain client's benchmarks once, with the race detector.
	@assets=$$(./hack/envtest.sh) && KUBEBUILDER_ASSETS="$$assets" $(GO) test -race $(TEST_FLAGS) $(RACE_PKGS)
	$(GO) test -race -run '^$$' -bench . -benchtime 1x ./chain-client/...

.PHONY: e2e
e2e: ## Run the end-to-end tests on the local dev environment (builds the binaries; minutes).
	@assets=$$(./hack/envtest.sh) && kcm=$$(./hack/kube-controller-manager.sh) && \
	  KUBEBUILDER_ASSETS="$$assets" KUBE_CONTROLLER_MANAGER="$$kcm" AIVM_E2E=1 $(GO) test -v -count=1 -timeout 30m ./test/e2e/... $(if $(RUN),-run '$(RUN)')

.PHONY: demo
demo: ## Run the demo on the local dev environment (aivmctl dev up --demo): jobs on simulated GPUs, results on the devnet, a receipt verified.
	@./hack/envtest.sh >/dev/null && ./hack/kube-controller-manager.sh >/dev/null
	$(GO) run ./cmd/aivmctl dev up --demo --dir $(or $(DEV_DIR),$(HOME)/.aivm/demo)

.PHONY: dev
dev: ## Start the local dev environment (aivmctl dev up; Ctrl-C stops it). DEV_FLAGS passes flags.
	@./hack/envtest.sh >/dev/null && ./hack/kube-controller-manager.sh >/dev/null
	$(GO) run ./cmd/aivmctl dev up $(DEV_FLAGS)

.PHONY: test-arm64
test-arm64: ## Run the builtin engine's tests as an arm64 binary under qemu-user (qemu-user-static); digests must match amd64's.
	@command -v qemu-aarch64-static >/dev/null || { echo "qemu-aarch64-static not found: apt-get install -y qemu-user-static"; exit 1; }
	GOARCH=arm64 CGO_ENABLED=0 $(GO) test -c -o $(LOCALBIN)/builtin-arm64.test ./runtime-image/engine/builtin
	cd runtime-image/engine/builtin && qemu-aarch64-static $(LOCALBIN)/builtin-arm64.test -test.v -test.run 'Golden|GOMAXPROCS|Torch|Sampling'

.PHONY: test-fuzz
test-fuzz: ## Run each fuzz target for FUZZTIME.
	@./hack/fuzz.sh $(FUZZTIME)

.PHONY: bench
bench: ## Run the benchmarks.
	@assets=$$(./hack/envtest.sh) && \
	  KUBEBUILDER_ASSETS="$$assets" $(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: verify
verify: ## Regenerate everything and fail if anything changed; check formatting.
	$(MAKE) generate manifests
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	@if [ -n "$$(git status --porcelain -- api config charts chain-client/aivmv1)" ]; then \
	  echo "generated files are out of date; run 'make generate manifests' and commit:"; \
	  git status --porcelain -- api config charts chain-client/aivmv1; git diff --stat; exit 1; fi

##@ Build

.PHONY: build
build: ## Build the binaries into bin/.
	CGO_ENABLED=0 $(GO) build -o $(LOCALBIN)/manager ./cmd/manager
	@if [ -d cmd/aivmctl ]; then CGO_ENABLED=0 $(GO) build -o $(LOCALBIN)/aivmctl ./cmd/aivmctl; fi
	@if [ -d cmd/node-agent ]; then CGO_ENABLED=1 $(GO) build -o $(LOCALBIN)/node-agent ./cmd/node-agent; fi

.PHONY: run
run: manifests generate ## Run the manager against the cluster in ~/.kube/config.
	$(GO) run ./cmd/manager

.PHONY: docker-build
docker-build: ## Build the manager image (needs a Docker engine).
	docker build -t $(IMG) .

.PHONY: docker-build-runtime
docker-build-runtime: ## Build the aivm-runtime image for job pods (needs a Docker engine; RUNTIME_IMG names it).
	docker build -f runtime-image/Dockerfile -t $(or $(RUNTIME_IMG),ghcr.io/aivm-dev/aivm-runtime:dev) .


$(HELM):
	mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/helm $(HELM)

.PHONY: helm-lint
helm-lint: $(HELM) ## Lint the Helm chart and render it with chain reporting on and off.
	$(HELM) lint charts/aivm-operator
	$(HELM) template aivm charts/aivm-operator >/dev/null
	$(HELM) template aivm charts/aivm-operator --set chain.reportResults=true --set chain.keySecret=provider-key --set chain.rpcURL=http://nesa-node:26657 >/dev/null

.PHONY: install
install: manifests ## Install the CRDs into the cluster in ~/.kube/config.
	kubectl apply --server-side -f config/crd/bases
