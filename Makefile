# The two commands: `make run` (train the 20 epochs) and `make test`.
PY := .venv/bin/python

.PHONY: setup run test notebook
setup:
	@tools/setup.sh

run: setup
	$(PY) feedforward_lasagne_mnist.py $(ARGS)

# On every core; each test file on one worker, in its own order. Setup adds the
# OpenCL test bed (POCL: an OpenCL device on the CPU), on which the GPU
# backend's tests run.
test:
	@tools/setup.sh --with-opencl
	$(PY) -m pytest -q -n auto --dist loadfile tests

# Every CUDA kernel of the tutorial compiled by NVRTC 12 and 13 for today's GPUs,
# without a GPU (docs/gpu.md): the part of tests/test_cuda_kernels.py that make
# test leaves out, about 2 minutes with a cold Theano cache.
.PHONY: cuda-kernels
cuda-kernels:
	@tools/setup.sh --with-opencl
	FLM_CUDA_KERNELS=1 $(PY) -m pytest -q tests/test_cuda_kernels.py

# Side-by-side benchmark against PyTorch and JAX peers (their venvs are made on
# first use); writes bench/results.md. Quick check: make bench ARGS="--runs 1 --epochs 2"
.PHONY: bench
bench: setup
	$(PY) bench/bench.py $(ARGS)

# Registers .venv as a Jupyter kernel for tutorial.ipynb (starts no server),
# under a name of this clone's own: two clones never share a kernel.
KERNEL := feedforward-lasagne-mnist-$(shell printf '%s' '$(CURDIR)' | sha256sum | cut -c1-8)
notebook: setup
	$(PY) -m ipykernel install --user --name $(KERNEL) \
		--display-name 'Python (feedforward_lasagne_mnist, $(CURDIR))'
	@echo "Open tutorial.ipynb in Jupyter, JupyterLab or VS Code and choose the kernel"
	@echo "'Python (feedforward_lasagne_mnist, $(CURDIR))'."
