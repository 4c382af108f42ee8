# Two commands do all the set-up on a fresh machine:
#   make serve   install into .venv and run `open-swe serve` on the embedded default
#   make test    install into .venv and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9

.PHONY: install serve worker test lint bench lock clean

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip sync --quiet --python $(PY) requirements.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

install: $(VENV)/.installed

serve: install
	$(VENV)/bin/open-swe serve

worker: install
	$(VENV)/bin/open-swe worker

test: install
	$(VENV)/bin/pytest -q

lint: install
	$(VENV)/bin/ruff check app tests benchmarks
	$(VENV)/bin/ruff format --check app tests benchmarks
	$(VENV)/bin/mypy

bench: install
	$(PY) -m benchmarks

# Re-pin the whole dependency tree after changing pyproject.toml.
lock: install
	$(UV) pip compile --quiet --python $(PY) pyproject.toml --extra dev -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
