# The two commands: `make run` (train the 20 epochs) and `make test`.
PY := .venv/bin/python

.PHONY: setup run test
setup:
	@tools/setup.sh

run: setup
	$(PY) feedforward_lasagne_mnist.py $(ARGS)

test: setup
	$(PY) -m pytest -q tests
