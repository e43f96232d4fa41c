# Two commands: `make demo` and `make test`. Both build .venv themselves from PyPI.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test lint bench tutorial clean

$(STAMP): pyproject.toml setup.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "insitu needs Python >= 3.10, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/insitu demo

test: $(STAMP)
	$(BIN)/ruff check host firmware tests
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check host firmware tests

# re-execute docs/tutorial.ipynb in place (its runs go to a scratch directory)
tutorial: $(STAMP)
	$(BIN)/python -c 'import nbformat, nbclient, tempfile; p = "docs/tutorial.ipynb"; \
	nb = nbformat.read(p, as_version=4); \
	nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", \
	resources={"metadata": {"path": tempfile.mkdtemp()}}).execute(); nbformat.write(nb, p)'

bench: $(STAMP)
	$(BIN)/insitu bench all --out docs/bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
