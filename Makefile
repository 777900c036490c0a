# Two commands on a fresh machine with only python3:  make run  |  make test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
PYTEST_ARGS ?= -n 2

.PHONY: run test deps dev-deps demo-db bench loadtest lint format clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

deps: $(VENV)/.runtime
dev-deps: $(VENV)/.dev

# Creates data/ccm.db with demo data and demo logins when it is absent.
demo-db: $(VENV)/.runtime
	$(PY) -m ccm_core init-db --demo-if-empty

run: demo-db
	CCM_DEMO_MODE=1 $(VENV)/bin/streamlit run app.py --server.port $(PORT) --server.headless true

test: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.dev
	$(PY) -m bench

# Many users against the real server: 1 process, then 2 processes behind nginx (Debian's package,
# installed here when absent). LOADTEST_ARGS e.g. --db URL --users 5,20,50 --duration 60 (bench/loadtest.py).
LOADTEST_ARGS ?=
loadtest: $(VENV)/.dev
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light || \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; }
	$(PY) -m bench.loadtest $(LOADTEST_ARGS)

# Lint: ruff's checks over the tree, then the type check of ccm_core (config in pyproject.toml).
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff format --check .

# Rewrites files: import order, then ruff's formatter (120 columns, double quotes).
format: $(VENV)/.dev
	$(VENV)/bin/ruff check --select I --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache
