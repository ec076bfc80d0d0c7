# The two commands: `make run` (train the 20 epochs) and `make test`.
PY := .venv/bin/python

# Setup's own lines go to stderr, so that stdout of `make run` is the
# tutorial's lines only.
.PHONY: setup run test notebook figures clean
setup:
	@tools/setup.sh >&2

run: setup
	@$(PY) feedforward_lasagne_mnist.py $(ARGS)

# On every core; each test file on one worker, in its own order. Setup adds the
# OpenCL test bed (POCL: an OpenCL device on the CPU), on which the GPU
# backend's tests run.
test:
	@tools/setup.sh --with-opencl >&2
	$(PY) -m pytest -q -n auto --dist loadfile tests

# The checks marked slow, which make test skips to keep to its time budget:
# DebugMode, the command line under NanGuardMode and on the OpenCL device,
# setups that make a venv first, signals and kill -9 during cold compiles, the
# speed-up ops built for each x86-64 level. CI runs both.
.PHONY: test-slow
test-slow:
	@tools/setup.sh --with-opencl >&2
	FLM_SLOW_TESTS=1 $(PY) -m pytest -q -n auto --dist loadfile -m slow tests

# The upstream suites as the compatibility contract (docs/old-code.md): Lasagne
# 0.1's whole suite and Theano 1.0.5's tests of the modules the tutorial and
# Lasagne use.
.PHONY: test-upstream
test-upstream: setup
	@tools/upstream_tests.sh

# Every CUDA kernel of the tutorial compiled by NVRTC 12 and 13 for today's GPUs,
# without a GPU (docs/gpu.md): the part of tests/test_cuda_kernels.py that make
# test leaves out, about 2 minutes with a cold Theano cache.
.PHONY: cuda-kernels
cuda-kernels:
	@tools/setup.sh --with-opencl >&2
	FLM_CUDA_KERNELS=1 $(PY) -m pytest -q tests/test_cuda_kernels.py

# Side-by-side benchmark against PyTorch and JAX peers (their venvs are made on
# first use); writes bench/results.md. Quick check: make bench ARGS="--runs 1 --epochs 2"
.PHONY: bench
bench: setup
	$(PY) bench/bench.py $(ARGS)

# JupyterLab in the venv (pinned, without touching the tutorial's pins), and
# the venv registered as the kernel that tutorial.ipynb names. The kernel's
# name is fixed so that the notebook finds it: the clone that ran
# `make notebook` last is the one it runs. Starts no server.
KERNEL := feedforward-lasagne-mnist
notebook: setup
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-notebook.txt -c requirements.txt
	$(PY) -m ipykernel install --user --name $(KERNEL) \
		--display-name 'Python (feedforward_lasagne_mnist)'
	@echo "The kernel '$(KERNEL)' now runs $(CURDIR)/.venv/bin/python."
	@echo "Start JupyterLab with: .venv/bin/jupyter lab tutorial.ipynb"
	@echo "(or open tutorial.ipynb in VS Code or another Jupyter: it finds the kernel by name)."

# Every figure the README and docs quote, made again from one run on this
# machine (about 5 minutes on two cores): tools/figures.py.
figures: setup
	$(PY) tools/figures.py

# What setup, runs, tests and the benchmark made inside this folder; your own
# files (saved models, histories, plots) stay, and so does a .venv.broken-*
# (setup moved it aside with the packages you had added). What lies outside
# the folder: docs/setup.md, "Removing it".
clean:
	rm -rf .venv .python311 .python311.tmp .python311.debs .setup.lock .device \
		.pytest_cache .hypothesis bench/.venv-peer bench/.venv-jax bench/logs .nvrtc .upstream \
		data/mnist/.mnist_verified.json
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	@ls -d .venv.broken-* 2>/dev/null | sed 's/^/kept (your packages may be in it): /' >&2 || true
