# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: run test bench install migrate seed clean chromium

$(VENV)/.installed: requirements.txt modal_jobs/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt 2>&1 \
		| { grep -v "is ignored: it is neither a file nor a directory" || true; }
	$(PY) -c "import django, channels, daphne, av, imageio_ffmpeg"
	touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --no-input

seed: migrate
	$(PY) manage.py seed_demo

run: seed
	PORT=$(PORT) $(VENV)/bin/daphne -b 127.0.0.1 -p $(PORT) exports_project.asgi:application

# Browser tests drive Debian's Chromium through Playwright (no browser download).
chromium:
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: install chromium
	$(PY) tests/run_suites.py

# Benchmarks on loopback: prints one table and rewrites docs/benchmarks.md (see bench/run.py).
bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var
