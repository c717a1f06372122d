# The README's commands. Everything runs in ./.venv, made from requirements-dev.txt on first use.
#   make test                 ruff + the whole pytest suite
#   make test PYTEST_ARGS='test/test_colcon_build.py -x'   a subset (paths and pytest options)
#   make demo / make bench    run stereo_semantic_ros.demo / .bench (DEMO_ARGS / BENCH_ARGS pass on)
#   make soak                 the live-node soak benchmark, stereo_semantic_ros.soak (SOAK_ARGS)
#   make venv                 only (re)build the venv; make clean removes it and generated output

# python3.11 is what the pinned wheels (torch CPU wheel, ROS 2 Kilted wheels) are built for.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= test
RUFF_ARGS ?= .
DEMO_ARGS ?=
BENCH_ARGS ?=
SOAK_ARGS ?= --frames 1000 --rate 10

# Keep DDS traffic of the tests on this host; a test may still pick its own domain id.
ROS_ENV := ROS_AUTOMATIC_DISCOVERY_RANGE=$${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST} \
	ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-42}
RUN := PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(ROS_ENV)

.PHONY: test lint pytest demo bench soak venv clean

venv: $(STAMP)

# Re-installs only when a requirements file changed; a half-made venv is removed so the next
# run starts clean instead of trusting it.
# The package itself goes in editable (no download: setuptools is already there), so every
# console script of setup.py is in $(VENV)/bin and runs this checkout's code.
$(STAMP): requirements.txt requirements-dev.txt setup.py
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --disable-pip-version-check -r requirements-dev.txt \
		|| { rm -rf $(VENV); exit 1; }
	$(VPY) -m pip install --disable-pip-version-check --no-deps --no-build-isolation -q -e . \
		|| { rm -rf $(VENV); exit 1; }
	@touch $@

# ruff and pytest both run, so one failing does not hide the other's report.
test: $(STAMP)
	@rc=0; \
	echo "ruff check $(RUFF_ARGS)"; $(VENV)/bin/ruff check $(RUFF_ARGS) || rc=1; \
	$(VENV)/bin/ruff format --check $(RUFF_ARGS) || rc=1; \
	$(RUN) $(VPY) -m pytest -q $(PYTEST_ARGS) || rc=1; \
	exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check $(RUFF_ARGS)
	$(VENV)/bin/ruff format --check $(RUFF_ARGS)

pytest: $(STAMP)
	$(RUN) $(VPY) -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(RUN) $(VPY) -m stereo_semantic_ros.demo $(DEMO_ARGS)

bench: $(STAMP)
	$(RUN) $(VPY) -m stereo_semantic_ros.bench $(BENCH_ARGS)

# the node runs on the soak's own --domain-id (default 73), not the tests' ROS_DOMAIN_ID
soak: $(STAMP)
	$(RUN) $(VPY) -m stereo_semantic_ros.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) build install log out .pytest_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
