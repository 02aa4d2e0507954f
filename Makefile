# ticket-ab: every entry point a user or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON_BIN ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
export TICKET_AB_HOME ?= $(CURDIR)/var
# Let the project's processes keep compiled imports: with PYTHONDONTWRITEBYTECODE=1 every
# process would recompile mlflow, pycaret, airflow and evidently (~30 s each time).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help venv lock check coverage test test-unit test-integration soak lint clean demo stop mlflow serve bootstrap pipeline \
	airflow bench system-deps stack stack-down stack-status

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON_BIN) >/dev/null || { echo "error: $(PYTHON_BIN) not found (PyCaret 3.3.2 needs Python 3.11)"; exit 1; }
	@echo "==> creating $(VENV) with $(PYTHON_BIN) and installing the pinned requirements"
	test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --quiet --python $(PY) --compile-bytecode -r requirements.txt \
		-e ".[router,train,airflow,analysis,ops,dev]"
	@touch $@

venv: $(VENV)/.installed ## create .venv: the pinned requirements.txt plus this project, editable (idempotent)

lock: venv ## re-resolve requirements.in (and the router's subset) into pinned requirements files
	$(VENV)/bin/uv pip compile requirements.in --python-version 3.11 -o requirements.txt
	$(VENV)/bin/uv pip compile router/requirements.in -c requirements.txt --python-version 3.11 \
		-o router/requirements.txt

# Debian packages the native stack and its tests run: Prometheus (and promtool), Redis for the Celery executor,
# strace (the test that every 202 from /feedback follows an fsync of its row).
# PostgreSQL 15 (initdb, postgres) is expected on PATH. Installs only what is missing; needs root or sudo.
SYSTEM_PACKAGES := prometheus:prometheus redis-server:redis-server strace:strace
system-deps: ## install the Debian packages the stack and the tests need when missing (prometheus, redis-server, strace)
	@missing=""; for pair in $(SYSTEM_PACKAGES); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -z "$$missing" ]; then echo "system packages present: prometheus, promtool, redis-server, strace"; exit 0; fi; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	echo "==> installing Debian packages:$$missing"; \
	{ $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
		--no-install-recommends $$missing; } >/dev/null 2>&1 \
		|| { echo "error: apt-get install$$missing failed; install them by hand"; exit 1; }; \
	echo "installed:$$missing"

check: venv ## the fast loop (about a minute): the pre-commit hooks (ruff, file checks) and the unit tests that start no process
	$(VENV)/bin/pre-commit run --all-files --show-diff-on-failure
	$(PY) -m pytest tests/unit -m "not slow" -n 2 -q

coverage: venv ## the unit tier's line coverage (pytest-cov), as the README quotes it
	$(PY) -m pytest tests/unit -n 2 -q --cov --cov-report=term:skip-covered

test: venv system-deps ## run the whole test suite (unit + integration, slow tests included), a test file per worker on 2
	$(PY) -m pytest tests -n 2 --dist loadfile --no-loadscope-reorder --durations=20

test-unit: venv ## every unit test, the slow ones (PyCaret, cleanlab) included
	$(PY) -m pytest tests/unit -n 2

test-integration: venv system-deps ## the tests that start real processes: MLflow, gunicorn, Airflow, PostgreSQL
	$(PY) -m pytest tests/integration

soak: venv system-deps ## the fault soak on a native stack (< 10 min, root): crashes, an immediate PostgreSQL stop, a full log disk
	$(PY) -m pytest tests/integration/stack/test_fault_soak.py -m soak -s

lint: venv ## ruff over the code
	$(VENV)/bin/ruff check .

demo: venv ## the whole loop on 127.0.0.1: MLflow, champion, router, traffic, DAG, A/B report
	$(PY) -m ops demo

stop: venv ## stop the services `make demo` / `make mlflow` started, and their supervisord
	$(PY) -m ops stop

mlflow: venv ## start the local MLflow server in the background (under supervisord) on 127.0.0.1:5000 (TICKET_AB_MLFLOW_PORT)
	$(PY) -m ops mlflow

bootstrap: venv ## train and register the first champion
	$(PY) -m ops bootstrap

serve: venv ## run the A/B router under gunicorn on 127.0.0.1:8000 (foreground)
	$(VENV)/bin/gunicorn -c router/gunicorn.conf.py router.wsgi:app

pipeline: venv ## run the drift/retrain DAG once (airflow dags test, sqlite)
	$(PY) -m ops pipeline

airflow: venv ## Airflow UI and scheduler (airflow standalone) on 127.0.0.1:8080 (TICKET_AB_AIRFLOW_PORT)
	$(PY) -m ops airflow

stack: venv system-deps ## the production topology natively under supervisord: PostgreSQL, MLflow, Airflow (scheduler, ...), 2 routers, Prometheus
	$(PY) -m ops stack up

stack-down: venv ## stop the stack's services phase by phase, then its supervisord
	$(PY) -m ops stack down

stack-status: venv ## what supervisord runs for the stack: state, pid and uptime, URLs and logs
	$(PY) -m ops stack status

bench: venv ## run every benchmark in bench/ and write bench/RESULTS.md
	$(PY) bench/run_all.py

clean: stop stack-down ## stop the recorded services and wipe runtime state under TICKET_AB_HOME
	rm -rf "$(TICKET_AB_HOME)"
