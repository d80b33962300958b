# ElasticFT — what a developer runs. `make demo` and `make test` are the two newcomer commands.
# Everything runs in the project's own virtualenv (scripts/install.sh creates it), never the system Python.
PYTHON := $(CURDIR)/.venv/bin/python
export PATH := $(CURDIR)/.venv/bin:$(CURDIR)/.tools/bin:$(PATH)

.PHONY: install test lint unit demo crd

install:  ## create .venv with the package and every extra, then helm and prometheus
	bash scripts/install.sh

test: install lint  ## everything CI runs: lint, type check, all test layers
	$(PYTHON) -m pytest -q -p no:cacheprovider

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy operator/elasticft sandbox/elasticft_sandbox trainer/elasticft_trainer

unit:  ## fast pure-core tests only
	$(PYTHON) -m pytest -q tests/unit

demo: install  ## run the main example job end to end in the sandbox
	$(PYTHON) -m elasticft.cli sandbox run examples/finetunejob.yaml

crd:  ## regenerate crds/ (and the chart's copy) from the pydantic models
	$(PYTHON) -m elasticft.cli crd --output crds/finetunejobs.elasticft.io.yaml --output charts/elasticft/crds/finetunejobs.elasticft.io.yaml

# ---- Local Kubernetes with kind: what a user runs on a laptop with Docker, kind, kubectl and helm. ----
# `make e2e-kind` does it all: cluster, images, chart, then a job that survives losing a spot node.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
KIND_CLUSTER ?= elasticft
IMAGE_PREFIX ?= ghcr.io/elasticft
IMAGE_TAG ?= $(VERSION)
OPERATOR_IMAGE := $(IMAGE_PREFIX)/operator:$(IMAGE_TAG)
TRAINER_IMAGE := $(IMAGE_PREFIX)/trainer:$(IMAGE_TAG)
NAMESPACE ?= elasticft-system
E2E_JOB ?= examples/finetunejob.yaml
# Where kind-config.yaml mounts the shared host directory .kind/checkpoints on every worker node.
KIND_CHECKPOINTS := /var/lib/elasticft/checkpoints

.PHONY: images kind-up kind-load deploy e2e-kind kind-down

images:  ## build the operator image (no torch) and the trainer image (CPU torch; CUDA: see Dockerfile.trainer)
	docker build -f Dockerfile.operator -t $(OPERATOR_IMAGE) .
	docker build -f Dockerfile.trainer -t $(TRAINER_IMAGE) .

kind-up:  ## create the kind cluster (control plane, on-demand and spot workers, shared checkpoint mount)
	mkdir -p .kind/checkpoints
	chmod 0777 .kind/checkpoints  # trainer pods run as a non-root user
	kind get clusters | grep -qx '$(KIND_CLUSTER)' || \
	  kind create cluster --name $(KIND_CLUSTER) --config kind-config.yaml --wait 180s

kind-load:  ## copy the locally built images into every kind node (no registry needed)
	kind load docker-image --name $(KIND_CLUSTER) $(OPERATOR_IMAGE) $(TRAINER_IMAGE)

deploy:  ## install or upgrade the chart with the local operator image, and wait until it is ready
	kubectl apply --server-side -f charts/elasticft/crds/  # helm installs CRDs once and never upgrades them
	helm upgrade --install elasticft charts/elasticft --namespace $(NAMESPACE) --create-namespace \
	  --set image.repository=$(IMAGE_PREFIX)/operator --set image.tag=$(IMAGE_TAG) \
	  --set-string 'nodeSelector.karpenter\.sh/capacity-type=on-demand' --wait --timeout 5m

e2e-kind: kind-up images kind-load deploy  ## run $(E2E_JOB) on kind, drain the spot node under a worker, expect Succeeded
	kubectl patch --local -f $(E2E_JOB) --type merge -o yaml \
	  -p '{"spec": {"image": "$(TRAINER_IMAGE)", "checkpoint": {"volume": {"hostPath": "$(KIND_CHECKPOINTS)", "size": null}}}}' \
	  | kubectl apply -f -
	kubectl wait -f $(E2E_JOB) --for=jsonpath='{.status.phase}'=Running --timeout=10m
	kubectl wait pod -l elasticft.io/role=worker,elasticft.io/capacity-type=spot --for=condition=Ready --timeout=10m
	node=$$(kubectl get pod -l elasticft.io/role=worker,elasticft.io/capacity-type=spot \
	  -o jsonpath='{.items[0].spec.nodeName}') && \
	  kubectl drain $$node --ignore-daemonsets --delete-emptydir-data --force --timeout=5m && \
	  kubectl uncordon $$node
	kubectl wait -f $(E2E_JOB) --for=jsonpath='{.status.phase}'=Succeeded --timeout=30m
	test "$$(kubectl get -f $(E2E_JOB) -o jsonpath='{.status.preemptions}')" -ge 1
	kubectl get -f $(E2E_JOB)

kind-down:  ## delete the kind cluster (checkpoints stay in .kind/checkpoints)
	kind delete cluster --name $(KIND_CLUSTER)
