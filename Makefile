# One command to serve, one to test, on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# The suite on every core (pytest-xdist): 21 -> 13 min on 2 cores, where the training tests alone keep ~1 busy.
# At most 4 workers: each peaks at ~2.7 GB training its tiny ResNet50s. `make test PYTEST_WORKERS=`: one process.
PYTEST_WORKERS ?= -n auto --maxprocesses 4 --dist worksteal

.PHONY: install serve test lint bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The pinned versions the image is built from and the suite last passed with, so a new release on the index
# (OpenCV 5.1 dropped an API this code used) cannot break a fresh install unseen.
install: $(BIN)/activate
	$(BIN)/pip install -q -c requirements/cpu.txt -c requirements/dev.txt -e '.[cpu,dev,export]'

serve: install
	MALLOC_ARENA_MAX=2 $(BIN)/uvicorn app.main:app --host $(HOST) --port $(PORT)

test: install
	$(BIN)/ruff check app training tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS)

lint: install
	$(BIN)/ruff check app training tests benchmarks
	$(BIN)/mypy

bench: install
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
