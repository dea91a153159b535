# One-command entry points (see README). Everything runs inside ./.venv.
PY ?= python3
VENV ?= .venv
# torch, pinned; pip takes the CPU build where its index offers one (PyTorch's CPU index, a wheelhouse), else PyPI's
# default, a CUDA build that also runs on a CPU. For a small CPU-only install:
#   make run TORCH='torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu'
# GPU users: install their CUDA build into the venv first and pass TORCH= (empty).
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install run test test-nbs test-py docs readme clean-docs mutants
install: $(VENV)/.installed

$(VENV)/.installed: settings.ini setup.py
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(if $(TORCH),$(BIN)/pip install -q $(TORCH))
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name python3 >/dev/null
	touch $@

# The main job on its built-in default (a tiny T5, no downloads).
run: install
	$(BIN)/fpt run

# All tests: the notebooks' inline tests, then the cross-notebook tests in tests/, in TEST_WORKERS processes (pytest-xdist),
# each test file whole in one of them (--dist loadfile: a file's module fixtures, its docs build and its launches stay together).
TEST_WORKERS ?= 2
test: install
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers $(TEST_WORKERS) --timing
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile tests

# The docs site, offline (no Quarto): every notebook processed by nbdev, run, and rendered into _docs/,
# with the results/ page and a search box (MiniSearch, fetched once from the npm registry with npm into .cache/docsite/).
# Open _docs/index.html. `nbdev_docs` builds the same site where Quarto is installed.
docs: install
	$(BIN)/python tools/build_docs.py

# README.md from nbs/index.ipynb, by the same offline path (nbdev_readme needs Quarto).
readme: install
	$(BIN)/python tools/build_docs.py --readme

clean-docs:
	rm -rf _docs _docs.tmp _proc _docs_artifacts

# Plant each of a curated list of bugs in a copy of the library and check the tests catch it (tools/mutants.py).
# Slow (two mutants at a time: about 30 min on 2 CPU cores when every mutant is caught, longer when many survive;
# results/mutants/README.md): run it before a release, not in CI; the table goes to results/mutants/mutants.md.
# The papermill tests (minutes each) are left out.
mutants: install
	OMP_NUM_THREADS=1 $(BIN)/python tools/mutants.py --jobs 2 --without tests/test_papermill.py
