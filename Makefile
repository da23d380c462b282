# Two commands do all the set-up on a fresh machine:
#   make run    install, index seeds/, answer a demo query, then serve the web UI on 127.0.0.1:8000
#   make test   install (with the browser for the UI test) and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/search-cli
PORT ?= 8000

.PHONY: install run index query serve test test-fast lint format bench bench-table browser clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: 2.13.0 is the CPU wheel on local disk (anything else pulls CUDA builds)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,qdrant]'
	touch $@

run: index query serve

index: install
	$(CLI) index seeds/

query: install
	$(CLI) query "export controls"

serve: install
	$(CLI) serve --host 127.0.0.1 --port $(PORT)

browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: install browser
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not model and not browser"

lint: install
	$(VENV)/bin/ruff check search web tests bench studies
	$(VENV)/bin/ruff format --check search web tests bench studies

format: install
	$(VENV)/bin/ruff format search web tests bench studies

bench: install
	$(PY) -m bench.run_all

bench-table: install
	$(PY) -m bench.table

clean:
	rm -rf $(VENV) index/gen-* index/CURRENT index/cache test-artifacts
