# Two commands matter: `make dev` (the broker on http://127.0.0.1:3000, all embedded)
# and `make test` (the whole suite). Both install what they need into .venv.
SHELL := /bin/bash
# Lambda runs python3.13; sam build needs that interpreter on PATH. pyenv carries it on our machines.
PYTHON313 := $(shell for p in $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3.13 $$(command -v python3.13); do \
	timeout 10 "$$p" -c 'import sys' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
PYTHON ?= $(if $(PYTHON313),$(PYTHON313),python3)
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(dir $(PYTHON313)):$(PATH)
export PYTHONPATH := $(CURDIR)/layers/broker:$(CURDIR)/local:$(CURDIR)/clients

.PHONY: dev test lint typecheck build clean

$(BIN)/.installed: requirements-dev.txt layers/broker/requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	# The local runner is tooling, not packaged: the venv finds it, so `python -m broker_local` runs as the README says.
	$(BIN)/python -c "import pathlib, sys, sysconfig; pathlib.Path(sysconfig.get_path('purelib'), 'broker-local.pth').write_text(sys.argv[1] + '\\n')" "$(CURDIR)/local"
	touch $@

dev: $(BIN)/.installed
	$(BIN)/python -m broker_local $(ARGS)

# The engine for tests/samlocal first (docs/sam-local.md): best effort here, required under CI=true.
# A dockerd it started is stopped after pytest, whatever pytest's outcome.
test: $(BIN)/.installed browser
	$(BIN)/python -m samlocal up
	status=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; $(BIN)/python -m samlocal down; exit $$status

# Only the engine for sam local: Debian's packages, qemu for arm64, dockerd, the cached base image.
.PHONY: samlocal-up samlocal-down
samlocal-up: $(BIN)/.installed
	$(BIN)/python -m samlocal up
samlocal-down: $(BIN)/.installed
	$(BIN)/python -m samlocal down

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml monitoring.yaml

typecheck: $(BIN)/.installed
	$(BIN)/mypy

build: $(BIN)/.installed
	$(BIN)/sam build --parallel

# Cold start of the start and callback functions against hand-written boto3 handlers making the same calls
# (on a boto3-only interpreter cached in ~/.cache/zoho-broker-bench), and the built sizes.
# Run `make build` first: it reads .aws-sam/build.
.PHONY: bench-cold-start
bench-cold-start: $(BIN)/.installed
	$(BIN)/python benchmarks/cold_start.py --build-dir .aws-sam/build

# The same, for each optimisation step in one run: every commit of COLD_START_STEPS (label=commit) is
# exported and built with sam into .aws-sam/steps/<label> (once), then all are measured together.
COLD_START_STEPS ?= main=68a5bea bytecode=678dc07 botocore=755f28e defer_build=22002e4 \
	page_routes=d619324 lazy_tls=a548914
.PHONY: bench-cold-start-steps
bench-cold-start-steps: $(BIN)/.installed
	set -e; dirs=; for step in $(COLD_START_STEPS); do \
		label=$${step%%=*}; commit=$${step#*=}; out=.aws-sam/steps/$$label; \
		if [ ! -d $$out/build/CoreLayer ]; then \
			rm -rf $$out; mkdir -p $$out/src; git archive $$commit | tar -x -C $$out/src; \
			SAM_CLI_TELEMETRY=0 $(BIN)/sam build --template-file $$out/src/template.yaml \
				--build-dir $$out/build --cache-dir $$out/cache >$$out/build.log 2>&1 \
				|| { tail -20 $$out/build.log; exit 1; }; \
		fi; \
		dirs="$$dirs --build-dir $$label=$$out/build"; \
	done; \
	$(BIN)/python benchmarks/cold_start.py $$dirs $(ARGS)

# Refresh throughput: N due subscriptions (default 1,000 and 10,000) swept, queued and refreshed by
# C workers against the Zoho stand-in (100 ms latency) and moto. Options: ARGS="--concurrency 5,10,20".
.PHONY: bench-refresh
bench-refresh: $(BIN)/.installed
	$(BIN)/python benchmarks/refresh.py $(ARGS)

# The refresher at Secrets Manager's write quota: N subscriptions (default 10,000) due at once, the quota
# enforced in front of moto (scaled to 25/s, budget 20/s; see the script). Options: ARGS="--n 2000".
.PHONY: bench-quota
bench-quota: $(BIN)/.installed
	$(BIN)/python benchmarks/quota.py $(ARGS)

# The refresher of a whole region on a virtual clock: 100,000 subscriptions onboarded at once, 24 hours,
# the broker's own scheduling, pacing and backoff code. Options: ARGS="--schedule legacy".
.PHONY: bench-simulate
bench-simulate: $(BIN)/.installed
	$(BIN)/python benchmarks/simulate.py $(ARGS)

# The proxy: its overhead over a direct call (ratios in one run), AWS requests per call, and the throttle's
# accuracy with 50 concurrent callers against several limits (docs/proxy.md). Options: ARGS="--seconds 60".
.PHONY: bench-proxy
bench-proxy: $(BIN)/.installed
	$(BIN)/python benchmarks/proxy.py $(ARGS)

# Debian's Chromium for the browser tests (tests/e2e); Playwright drives it, it downloads no browser.
.PHONY: browser
browser:
	test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

clean:
	rm -rf $(VENV) .aws-sam

# The README's picture of the console (docs/console.png), taken with Playwright and Debian's Chromium.
.PHONY: docs-screenshot
docs-screenshot: $(BIN)/.installed browser
	$(BIN)/python -m broker_local.screenshot

# Mutation testing (mutmut) of logic/, store/, state.py, data_centres.py and zoho_client.py against the unit,
# integration, fault and stand-in tests; prints the score and the survivors. Hours on two cores, so not in
# `make test`. Options: ARGS="--scope state,data_centres --children 2".
.PHONY: mutation
mutation: $(BIN)/.installed
	$(BIN)/python -m tests.mutation $(ARGS)
