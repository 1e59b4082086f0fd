# nudask: set up, demo, tests. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test test-long test-jax test-fast test-container lint bench bench-train clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/.installed           ## create .venv and install nudask with its test tools

demo: setup                        ## simulate a sample, preprocess it on a local Dask cluster, describe it
	$(BIN)/python jobs/demo.py

test: setup                        ## the test suite, slow and SLURM tests included (what CI runs)
	$(BIN)/python -m pytest -m "not container and not long"

test-long: setup                   ## the long tests: trainings to a stated accuracy, whole studies, killed and hung workers (CI's own step)
	$(BIN)/python -m pytest -m long -k "not jax"  # the JAX variants run in make test-jax

# the JAX backend: jax's CPU wheel beside TensorFlow in the same venv, the training tests with
# KERAS_BACKEND=jax (the quick job and the NOvA training to the TensorFlow tests' accuracy, two
# devices; the kill-and-resume and the NOvA regression, backend-neutral code, run on TensorFlow only)
JAX_TESTS := tests/test_train_run.py tests/test_train_accuracy.py::test_numu_cc_vs_rest_on_nova \
	"tests/test_train_devices.py::test_two_devices_train_like_one_at_the_same_global_batch[jax-densify]"

$(BIN)/.jax: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,jax]"
	touch $@

test-jax: $(BIN)/.jax              ## the training tests on the JAX backend (CI's own step; about 10 minutes)
	KERAS_BACKEND=jax $(BIN)/python -m pytest $(JAX_TESTS) -k "not real_kill and not nova_numu_cc_regression"

test-container: setup              ## build Singularity.def for real with Apptainer and run its %test (minutes)
	$(BIN)/python -m pytest -m container

test-fast: setup                   ## the suite without the slow tests
	$(BIN)/python -m pytest -m "not slow and not long"

lint: setup                        ## ruff (lint and format) and mypy, as CI runs them
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy nudask

bench: setup                       ## preprocessing benchmark table (see BENCHMARKS.md)
	$(BIN)/python tests/benchmarks/bench_preprocess.py

bench-train: setup                 ## training input and throughput benchmark (see TRAINING.md)
	$(BIN)/python tests/benchmarks/bench_train.py

clean:
	rm -rf demo .pytest_cache
