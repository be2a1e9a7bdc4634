# Two entry points for a fresh machine: `make test` and `make demo`.
# Dependencies install from the committed lock (uv.lock) with uv, itself pinned here; `make lock` updates it.
PY ?= python3.11
UV_VERSION := 0.13.8
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
UV := $(TOOLS)/bin/uv
SYSTEM_TOOLS := ffmpeg ffprobe espeak-ng
# uv must use this interpreter and never download one of its own (only the package registry is reachable)
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup system venv lock lock-check upgrade test test-fast demo bench doctor clean

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

$(UV):
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11) on PATH, or make PY=/path/to/python3.11"; exit 1; }
	$(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q uv==$(UV_VERSION)

# --locked: install exactly what uv.lock names, and fail if pyproject.toml changed without `make lock`.
# --compile-bytecode (and compileall for mmdata): every process imports torch, ray and yt-dlp; without .pyc
# files (uv writes none by default, and PYTHONDONTWRITEBYTECODE stops Python writing them) each process
# compiles them from source again: 8.7 s instead of 3.3 s to import torch, torchaudio, yt-dlp and ray.
$(BIN)/mmdata: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --compile-bytecode --extra dev --python $(PY)
	$(BIN)/python -m compileall -q mmdata
	touch $(BIN)/mmdata

venv: $(BIN)/mmdata

setup: system venv

# after editing dependencies in pyproject.toml: re-resolve, keeping every other pin where it is
lock: | $(UV)
	$(UV) lock --python $(PY)

# on purpose, every dependency to the newest version pyproject.toml allows (then run make test)
upgrade: | $(UV)
	$(UV) lock --upgrade --python $(PY)

lock-check: | $(UV)
	$(UV) lock --check --python $(PY)

test: setup lock-check
	$(BIN)/python -m pytest -q -ra --durations=15

test-fast: setup
	$(BIN)/python -m pytest -q -ra -m "not slow"

demo: setup
	$(BIN)/python -m mmdata.demo --out demo_out

bench: setup
	$(BIN)/python bench/run_all.py

doctor: setup
	$(BIN)/mmdata doctor

clean:
	rm -rf demo_out .pytest_cache
