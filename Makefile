# The two commands: `make run` (train the 20 epochs) and `make test`.
PY := .venv/bin/python

.PHONY: setup run test
setup:
	@tools/setup.sh

run: setup
	$(PY) feedforward_lasagne_mnist.py $(ARGS)

test: setup
	$(PY) -m pytest -q tests

# Side-by-side benchmark against a PyTorch peer (bench/.venv-peer is made on
# first use); writes bench/results.md. Quick check: make bench ARGS="--runs 1 --epochs 2"
.PHONY: bench
bench: setup
	/usr/bin/python3 bench/bench.py $(ARGS)
