# The two commands of the README. Both create or reuse .venv/ first (tools/setup_env.sh).
PY := .venv/bin/python

.PHONY: setup demo test

setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py

test: setup
	$(PY) -m pytest tests -q -rs --durations=25
