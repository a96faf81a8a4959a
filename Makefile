# kemu: the two commands are `sudo make demo` and `sudo make test`.
VENV   := .venv
KEMU   := $(VENV)/bin/kemu
PYTEST := $(VENV)/bin/pytest
RUFF   := $(VENV)/bin/ruff

.PHONY: setup demo test unit unit-as-user kernel e2e e2e-matrix lint format bench clean

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

# Every tier; kernel and e2e tiers skip themselves where the machine can't run them.
test: setup
	$(RUFF) check emu tests bench
	$(RUFF) format --check emu tests bench
	$(VENV)/bin/mypy
	$(PYTEST) -q --durations=30 tests

unit: setup
	$(PYTEST) -q -m unit tests

# The unit tier as `nobody` (CI runs it): proves it needs no root and no namespaces.
unit-as-user: setup
	bash scripts/unit-as-user.sh

kernel: setup
	$(PYTEST) -q -m kernel tests

e2e: setup
	$(PYTEST) -q -m e2e tests

# The dataplane suites on every pod network × both proxy backends (`make test` runs a
# subset: tests/e2e/helpers.py DEFAULT_PAIRS).
e2e-matrix: setup
	KEMU_E2E_CNI=bridge,vxlan,routed $(PYTEST) -q -m e2e tests

lint: setup
	$(RUFF) check emu tests bench
	$(RUFF) format --check emu tests bench
	$(VENV)/bin/mypy

format: setup
	$(RUFF) format emu tests bench
	$(RUFF) check --fix emu tests bench

bench: setup
	$(VENV)/bin/python bench/bringup.py 10 100

clean:
	-$(KEMU) clean
