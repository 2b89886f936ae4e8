# The verbs people type. Everything expensive is cached under ~/.cache/modelops.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
CLUSTER ?= modelops

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: venv
venv: ## create or reuse the Python environment (.venv -> ~/.cache/modelops/venv/...)
	@hack/venv.sh

.PHONY: controlplane
controlplane: ## build (or reuse) etcd, kube-*, kubectl, kwok and metrics-server from upstream Go modules
	@hack/controlplane/build.sh >/dev/null
	@hack/metrics-server/build.sh >/dev/null

.PHONY: dev
dev: venv controlplane tools node images ## start the local cluster (with a real node where the machine can run containers), Prometheus + prometheus-adapter, the operator and the sample
	@hack/dev.sh $(CLUSTER)

.PHONY: node
node: ## install containerd/runc/CNI plugins (Debian, if missing) and build kubelet, kube-proxy, CoreDNS, kube-router (NetworkPolicies) and the real node's images
	@hack/node/install-deps.sh
	@hack/node/images.sh >/dev/null
	@hack/node/build.sh >/dev/null
	@hack/netpol/install-deps.sh
	@hack/netpol/build.sh >/dev/null
	@hack/netpol/images.sh >/dev/null

.PHONY: cluster-up
cluster-up: controlplane ## start (or reuse) the local cluster
	@hack/cluster/cluster.sh up $(CLUSTER) >/dev/null

.PHONY: cluster-down
cluster-down: ## stop the local cluster, the processes `make dev` started, and delete its state
	@for f in $${MODELOPS_CACHE:-$$HOME/.cache/modelops}/dev/$(CLUSTER)/*.pid \
	          $${MODELOPS_CACHE:-$$HOME/.cache/modelops}/dev/$(CLUSTER)/real-sample/*.pid; do \
	  [ -f "$$f" ] && { kill "$$(cat "$$f")" 2>/dev/null; rm -f "$$f"; }; done; true
	@hack/cluster/cluster.sh down $(CLUSTER)

.PHONY: tools
tools: ## install/build the test tools: promtool and prometheus (Debian), helm, fake-gcs-server and prometheus-adapter (Go modules)
	@hack/install-prometheus.sh
	@hack/helm/build.sh >/dev/null
	@hack/fake-gcs/build.sh >/dev/null
	@hack/prometheus-adapter/build.sh >/dev/null

.PHONY: adapter
adapter: ## build (or reuse) prometheus-adapter from its Go module
	@hack/prometheus-adapter/build.sh >/dev/null

.PHONY: lint
lint: venv ## ruff and the import-layering contracts
	$(VENV)/bin/ruff check operator tests e2e bench deploy
	$(VENV)/bin/ruff format --check operator tests e2e bench deploy
	$(VENV)/bin/lint-imports

.PHONY: unit
unit: venv ## unit tests only (no cluster, no Triton)
	$(PY) -m pytest tests/unit

.PHONY: test
test: venv controlplane tools node images lint ## every test: unit, integration (real API server, Triton, torch), images, e2e on real and simulated nodes
	$(PY) -m pytest tests e2e

.PHONY: kind-up
kind-up: controlplane ## a kind cluster with fake GPU nodes (needs a Docker engine; skipped with a reason otherwise)
	@hack/kind.sh $(CLUSTER)

.PHONY: images
images: ## install mmdebstrap and podman (Debian, if missing), build (or reuse) the operator, runtime and trainer OCI images without Docker (prints images.json)
	@hack/images/install-deps.sh
	@hack/images/build.sh all

.PHONY: helm
helm: ## build (or reuse) helm from its Go module
	@hack/helm/build.sh >/dev/null

.PHONY: chart
chart: venv helm ## sync the chart's copies, lint and test it (install/upgrade/uninstall on the test cluster)
	@hack/helm/sync.sh
	$(PY) -m pytest tests/chart

.PHONY: e2e
e2e: venv controlplane ## end-to-end scenarios; MODELOPS_KUBECONFIG=... to use another cluster
	$(PY) -m pytest e2e

.PHONY: bench
bench: venv controlplane tools ## benchmarks; each prints its figures and the command that made them
	@hack/bench.sh

.PHONY: keda
keda: ## build (or reuse) KEDA's operator and metrics server from its Go module (cold: tens of minutes); e2e/test_keda_real.py runs once it is built
	@hack/keda/build.sh >/dev/null

.PHONY: crds
crds: venv ## regenerate crds/ from the pydantic API models
	$(PY) -m modelops.cli crds --output-dir crds --docs docs/api.md
	$(PY) -m modelops.render.adapter_rules manifests/prometheus-adapter-rules.yaml
	@hack/helm/sync.sh
