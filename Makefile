# The two commands: `make run` (the whole service on 127.0.0.1:8000) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint unit bench system deps clean deploy client-e2e

$(STAMP): requirements.txt requirements-runner.txt requirements-dev.txt
	@echo "[a6hub] creating $(VENV) and installing pinned requirements"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade "pip<26.3"  # chalice 1.34 requires pip<26.3
	@$(PY) -m pip install -q -r requirements-dev.txt
	@touch $(STAMP)

system:
	@bash devstack/install-system.sh

deps: system $(STAMP)

# make run FRESH=1 starts from empty state (removes .local/store/store.pickle first);
# make run PORT=8140 EMULATOR_PORT=5140 serves the API and the store on other ports.
run: deps
	@$(PY) -m devstack run $(if $(FRESH),--fresh) $(if $(PORT),--port $(PORT)) $(if $(EMULATOR_PORT),--emulator-port $(EMULATOR_PORT))

lint: deps
	@echo "[a6hub] ruff"
	@$(VENV)/bin/ruff check .
	@echo "[a6hub] mypy"
	@$(VENV)/bin/mypy
	@echo "[a6hub] cfn-lint"
	@$(VENV)/bin/cfn-lint infra/*.yaml

test: lint
	@echo "[a6hub] pytest (starts its own emulator and servers)"
	@$(VENV)/bin/pytest --run-slow

# Deploy a stage to AWS (README "Deploy to AWS"): needs the AWS CLI, credentials and
# A6HUB_DEPLOY_BUCKET. Lints the templates first.
STAGE ?= dev
deploy: deps
	@bash infra/deploy.sh $(STAGE)

# The real web client (upstream's frontend, built and started by hand outside this repo against
# API_URL) driven in headless Chromium against an already-running API: e2e/client.py. Takes minutes;
# not part of `make test`. Screenshots: CLIENT_E2E_SCREENSHOTS (default .local/client-e2e).
CLIENT_URL ?= http://127.0.0.1:3000
API_URL ?= http://127.0.0.1:8000
E2E_STAMP := $(VENV)/.installed-e2e

$(E2E_STAMP): requirements-e2e.txt $(STAMP)
	@$(PY) -m pip install -q -r requirements-e2e.txt
	@touch $(E2E_STAMP)

client-e2e: deps $(E2E_STAMP)
	@bash devstack/install-system.sh chromium
	@$(PY) -m e2e.client --client-url $(CLIENT_URL) --api-url $(API_URL)

bench: deps
	@$(PY) -m bench
	@$(PY) -m bench.store
	@$(PY) -m bench.throughput
	@$(PY) -m bench.completion
	@$(PY) -m bench.burst

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
