# ElasticFT — what a developer runs. `make demo` and `make test` are the two newcomer commands.
PYTHON ?= python3
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: install test lint unit demo crd

install:  ## install the package with every extra, helm and prometheus
	bash scripts/install.sh

test: install lint  ## everything CI runs: lint, type check, all test layers
	$(PYTHON) -m pytest -q -p no:cacheprovider

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy operator/elasticft

unit:  ## fast pure-core tests only
	$(PYTHON) -m pytest -q tests/unit

demo: install  ## run the main example job end to end in the sandbox
	elasticft sandbox run examples/finetunejob.yaml

crd:  ## regenerate crds/ (and the chart's copy) from the pydantic models
	elasticft crd --output crds/finetunejobs.elasticft.io.yaml
