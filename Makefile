# Two entry points for a fresh machine: `make test` and `make demo`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_TOOLS := ffmpeg ffprobe espeak-ng

.PHONY: setup system venv test test-fast demo bench clean

system:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing ffmpeg espeak-ng (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg espeak-ng; \
	  else \
	    echo "missing:$$missing. Install them with:"; \
	    echo "  sudo apt-get update && sudo apt-get install -y ffmpeg espeak-ng"; exit 1; \
	  fi; \
	fi

$(BIN)/mmdata: pyproject.toml
	command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/mmdata

venv: $(BIN)/mmdata

setup: system venv

test: setup
	$(BIN)/python -m pytest -q -ra

test-fast: setup
	$(BIN)/python -m pytest -q -ra -m "not slow"

demo: setup
	$(BIN)/python -m mmdata.demo --out demo_out

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf demo_out .pytest_cache
