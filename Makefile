# election-manager — every tool is pinned and built from the Go module proxy into bin/.

# Image for docker-build.
IMG ?= ghcr.io/election-manager/election-manager:$(VERSION)
# Extra flags for the manager in run and run-cluster, e.g. ARGS="--zap-log-level=debug".
ARGS ?=

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN := $(CURDIR)/bin
GOOS_ARCH := $(shell go env GOOS)-$(shell go env GOARCH)

# The project's version: the chart's version and appVersion must match it (make verify-chart).
VERSION ?= 0.1.0

## Pinned versions. The control plane's versions live in the go.mod of the small
## modules that build it (hack/controlplane, hack/etcd), so a bump is one line there.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
HELM_VERSION ?= v4.3.1
K8S_VERSION := $(shell awk '$$1 == "require" && $$2 == "k8s.io/kubernetes" {sub(/^v/, "", $$3); print $$3}' hack/controlplane/go.mod)
ETCD_VERSION := $(shell awk '$$1 == "require" && $$2 == "go.etcd.io/etcd/server/v3" {print $$3}' hack/etcd/go.mod)

CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
HELM := $(LOCALBIN)/helm-$(HELM_VERSION)
CHART_DIR := charts/election-manager
# The chart tests (test/chart) run this helm.
export HELM
# setup-envtest's layout, so envtest and kubebuilder tooling find the binaries offline.
KUBEBUILDER_ASSETS := $(LOCALBIN)/k8s/$(K8S_VERSION)-$(GOOS_ARCH)
KUBE_APISERVER := $(KUBEBUILDER_ASSETS)/kube-apiserver
KUBECTL := $(KUBEBUILDER_ASSETS)/kubectl
# Only its garbage collector runs, in tests: owner references must really delete.
KUBE_CONTROLLER_MANAGER := $(KUBEBUILDER_ASSETS)/kube-controller-manager
ETCD := $(KUBEBUILDER_ASSETS)/etcd
# The node's own, for make cluster: from the same k8s.io/kubernetes module.
KUBELET := $(KUBEBUILDER_ASSETS)/kubelet
KUBE_SCHEDULER := $(KUBEBUILDER_ASSETS)/kube-scheduler
KUBE_PROXY := $(KUBEBUILDER_ASSETS)/kube-proxy
ETCD_STAMP := $(KUBEBUILDER_ASSETS)/.etcd-$(ETCD_VERSION)
export KUBEBUILDER_ASSETS

K8S_LDFLAGS := -s -w $(foreach pkg,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(pkg).gitVersion=v$(K8S_VERSION) \
	-X $(pkg).gitMajor=$(word 1,$(subst ., ,$(K8S_VERSION))) \
	-X $(pkg).gitMinor=$(word 2,$(subst ., ,$(K8S_VERSION))))

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC from the markers, and copy them into the chart.
	$(CONTROLLER_GEN) crd paths="./api/..." output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths="{./cmd/...,./internal/controller/...,./internal/election/...}" output:rbac:artifacts:config=config/rbac
	@# The Pods candidate source's permissions, granted only with the chart's podsSource.enabled.
	$(CONTROLLER_GEN) rbac:roleName=manager-pods-role paths="./internal/podsource/..." output:rbac:artifacts:config=config/rbac/pods
	rm -rf $(CHART_DIR)/files/crds $(CHART_DIR)/files/rbac
	mkdir -p $(CHART_DIR)/files/crds $(CHART_DIR)/files/rbac
	cp config/crd/bases/*.yaml $(CHART_DIR)/files/crds/
	cp config/rbac/role.yaml $(CHART_DIR)/files/rbac/manager-role.yaml
	if [ -f config/rbac/pods/role.yaml ]; then cp config/rbac/pods/role.yaml $(CHART_DIR)/files/rbac/pods-role.yaml; fi

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the deepcopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify
verify: $(CONTROLLER_GEN) ## Fail when a generated file is stale.
	hack/verify-generated.sh

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet, and fail on unformatted files.
	go vet ./...
	go vet -tags cluster ./test/cluster/...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

.PHONY: verify-chart
verify-chart: ## Fail when the chart's version or appVersion is not VERSION.
	@for key in version appVersion; do \
		got=$$(awk -v k="$$key:" '$$1 == k {gsub(/"/, "", $$2); print $$2}' $(CHART_DIR)/Chart.yaml); \
		[ "$$got" = "$(VERSION)" ] || { echo "verify-chart: $(CHART_DIR)/Chart.yaml $$key is '$$got', want VERSION=$(VERSION)" >&2; exit 1; }; \
	done

.PHONY: test
test: verify verify-chart vet controlplane helm ## Run every test against a real kube-apiserver and etcd.
	go test -race -count=1 -timeout 20m ./...

# The fault suite's size and seed: make faults FAULTS=200 SEED=1234 (SEED empty: random).
FAULTS ?= 200
SEED ?=

.PHONY: faults
faults: controlplane ## Run FAULTS randomized faults (SEED to replay) against a live system; prints the table, fails on any violation.
	FAULTS=$(FAULTS) SEED=$(SEED) go test -count=1 -timeout 3h -v -run '^TestFaults$$' ./test/faults

.PHONY: bench
bench: controlplane ## Run the benchmarks (print numbers, assert nothing).
	go test ./internal/election -run '^$$' -bench . -benchtime 1x -timeout 30m
	go test ./test/bench -run '^$$' -bench WriteCost -benchtime 2000x -timeout 10m

# Sizes and steady window of bench-e2e, e.g. GROUPS=100,1000,3000 STEADY=5m (see test/bench).
GROUPS ?= 100,1000
STEADY ?= 2m

.PHONY: bench-e2e
bench-e2e: controlplane ## Three manager processes vs three client-go processes at GROUPS groups (prints a table).
	BENCH_E2E=1 BENCH_GROUPS=$(GROUPS) BENCH_STEADY=$(STEADY) go test ./test/bench -run '^TestBenchE2E$$' -v -count=1 -timeout 120m

##@ A real one-node cluster (root; see shared/REAL-CLUSTER.md)

# Where make cluster keeps its state (certificates, kubeconfigs, etcd, logs); one at a time.
CLUSTER_DIR ?= $(LOCALBIN)/cluster
export CLUSTER_DIR
# From Debian, installed by cluster-deps when missing.
CLUSTER_PACKAGES := containerd runc containernetworking-plugins iptables conntrack iproute2 busybox-static

.PHONY: cluster
cluster: cluster-deps controlplane node-binaries $(HELM) ## Run a one-node cluster with the chart installed; prints the KUBECONFIG line; Ctrl-C tears it down.
	go build -o $(LOCALBIN)/node-cluster ./hack/cluster
	$(LOCALBIN)/node-cluster --dir $(CLUSTER_DIR) --bin $(KUBEBUILDER_ASSETS) --helm $(HELM) up

.PHONY: cluster-down
cluster-down: ## Remove a cluster that make cluster or make test-cluster left behind.
	go build -o $(LOCALBIN)/node-cluster ./hack/cluster
	$(LOCALBIN)/node-cluster --dir $(CLUSTER_DIR) --bin $(KUBEBUILDER_ASSETS) down

.PHONY: test-cluster
test-cluster: cluster-deps controlplane node-binaries $(HELM) ## Run the end-to-end tests on a one-node cluster of their own, with kubectl and helm.
	go test -tags cluster -count=1 -timeout 45m -v ./test/cluster

.PHONY: cluster-deps
cluster-deps: ## Install the Debian packages the cluster needs, when missing (root).
	@missing=$$(for p in $(CLUSTER_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		[ "$$(id -u)" = 0 ] || { echo "cluster-deps: root is required to install $$missing" >&2; exit 1; }; \
		echo "installing $$missing"; apt-get install -y --no-install-recommends $$missing; \
	fi

.PHONY: node-binaries
node-binaries: $(KUBELET) $(KUBE_SCHEDULER) $(KUBE_PROXY) ## Build kubelet, kube-scheduler and kube-proxy into bin/k8s.

##@ Build

.PHONY: build
build: ## Build the manager, the kubectl plugin and the elector into bin/.
	go build -o $(LOCALBIN)/manager ./cmd/manager
	go build -o $(LOCALBIN)/kubectl-leadergroup ./cmd/kubectl-leadergroup
	go build -o $(LOCALBIN)/elector ./cmd/elector

# Where install-plugin puts kubectl-leadergroup; it must be on PATH for kubectl to find it.
PLUGIN_DIR ?= $(shell go env GOPATH)/bin

.PHONY: install-plugin
install-plugin: ## Install kubectl-leadergroup into PLUGIN_DIR (default: $GOPATH/bin), for `kubectl leadergroup`.
	mkdir -p $(PLUGIN_DIR)
	go build -o $(PLUGIN_DIR)/kubectl-leadergroup ./cmd/kubectl-leadergroup

.PHONY: run
run: build controlplane ## Start a local control plane and run the manager against it.
	go build -o $(LOCALBIN)/run-local ./hack/run-local
	$(LOCALBIN)/run-local --manager "$(LOCALBIN)/manager" --dir "$(LOCALBIN)/local" -- --id=local --zap-encoder=console $(ARGS)

.PHONY: run-cluster
run-cluster: build $(KUBECTL) ## Install the CRD into the current kubeconfig's cluster and run the manager there.
	$(KUBECTL) apply --server-side -f config/crd/bases
	$(LOCALBIN)/manager $(ARGS)

# HELM_ARGS passes extra flags, e.g. HELM_ARGS="--set image.repository=my/election-manager --set image.tag=dev".
HELM_RELEASE ?= election-manager
HELM_NAMESPACE ?= election-manager-system
HELM_ARGS ?=

.PHONY: helm-install
helm-install: manifests $(HELM) ## Install or upgrade the chart into the current kubeconfig's cluster.
	$(HELM) upgrade --install $(HELM_RELEASE) $(CHART_DIR) --namespace $(HELM_NAMESPACE) --create-namespace $(HELM_ARGS)

.PHONY: helm-uninstall
helm-uninstall: $(HELM) ## Uninstall the chart; the CRD and the LeaderGroups stay.
	$(HELM) uninstall $(HELM_RELEASE) --namespace $(HELM_NAMESPACE)

.PHONY: helm-lint
helm-lint: $(HELM) ## Lint the chart with its default values.
	$(HELM) lint --strict $(CHART_DIR)

.PHONY: docker-build
docker-build: ## Build the image: the manager, and the elector for sidecars (needs a Docker engine).
	docker build -t $(IMG) .

##@ Tools

.PHONY: controlplane
controlplane: $(KUBE_APISERVER) $(KUBECTL) $(KUBE_CONTROLLER_MANAGER) $(ETCD_STAMP) ## Build etcd, kube-apiserver, kube-controller-manager and kubectl into bin/k8s.

# One go build for all three: they share most of their packages.
$(KUBE_APISERVER) $(KUBECTL) $(KUBE_CONTROLLER_MANAGER) &: hack/controlplane/go.mod hack/controlplane/go.sum
	@mkdir -p $(KUBEBUILDER_ASSETS)
	cd hack/controlplane && go build -trimpath -ldflags "$(K8S_LDFLAGS)" -o $(KUBEBUILDER_ASSETS)/ \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kube-controller-manager
	@touch $(KUBE_APISERVER) $(KUBECTL) $(KUBE_CONTROLLER_MANAGER)

$(KUBELET) $(KUBE_SCHEDULER) $(KUBE_PROXY) &: hack/controlplane/go.mod hack/controlplane/go.sum
	@mkdir -p $(KUBEBUILDER_ASSETS)
	cd hack/controlplane && go build -trimpath -ldflags "$(K8S_LDFLAGS)" -o $(KUBEBUILDER_ASSETS)/ \
		k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy
	@touch $(KUBELET) $(KUBE_SCHEDULER) $(KUBE_PROXY)

$(ETCD_STAMP): hack/etcd/go.mod hack/etcd/go.sum
	@mkdir -p $(KUBEBUILDER_ASSETS)
	cd hack/etcd && go build -trimpath -ldflags "-s -w" -o $(ETCD) go.etcd.io/etcd/server/v3
	@rm -f $(KUBEBUILDER_ASSETS)/.etcd-* && touch $@

$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN)/tmp go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/tmp/controller-gen $@ && rmdir $(LOCALBIN)/tmp

.PHONY: helm
helm: $(HELM) ## Build the pinned helm into bin/.

# Without the -X, helm reports its version as "v4.3" instead of the patch release.
$(HELM):
	GOBIN=$(LOCALBIN)/tmp-helm go install -trimpath \
		-ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)" \
		helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/tmp-helm/helm $@ && rmdir $(LOCALBIN)/tmp-helm
