# Two entry points: `make serve` runs the explorer, `make test` runs the test suite.
# Both create .venv if it is missing and install what they need into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
PORT ?= 5006
CHROMIUM ?= /usr/bin/chromium

.PHONY: serve test screenshots install install-test browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q $(TORCH_PIN) -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Browser tests drive Debian's chromium; install it when missing and we may (root).
browser:
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null); } || \
	  { echo "chromium missing: install it (apt-get install chromium) for the browser tests"; exit 1; }

# glibc keeps freed per-thread arenas: two arenas and earlier trimming let the server's memory fall back
# after sessions close (+14% instead of +23% after 8 concurrent sessions, scripts/soak.py)
SERVE_ENV := MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072

serve: install
	$(SERVE_ENV) $(BIN)/panel serve apps/*.py --port $(PORT) --index main

# two workers, one test file each at a time, one torch
# thread per worker: the browser tests wait on pages and servers, so two workers use the two cores better;
# files go out in tests/conftest.py's order (the load test first, beside CPU-only files), not xdist's
test: install-test browser
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15

# the browser tests write their screenshots to a temporary folder; this target refreshes docs/screenshots/
screenshots:  install-test browser
	EXPLORER_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/ui/test_browser_a.py tests/ui/test_browser_b.py

clean:
	rm -rf $(VENV)
