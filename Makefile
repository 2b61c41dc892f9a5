# trtserve developer entry points. The two a newcomer needs (see README.md):
#   make run    set up the operator's environment and run it against the current kubeconfig
#   make test   set up everything the tests need and run linters + the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
OPERATOR_VENV ?= .venv-operator
# uv, pinned and hashed in requirements/uv.txt: writes the lock files (scripts/lock.sh) and
# installs them. uv never downloads a Python of its own here: the environments use $(PYTHON).
UV_VENV := .tools/uv
UV := $(UV_VENV)/bin/uv
export UV_PYTHON_DOWNLOADS := never
PYTEST_ARGS ?=
# pytest-xdist workers (CI has 2 cores); PYTEST_WORKERS=0 runs in this process (pdb, -s).
PYTEST_WORKERS ?= 2

.PHONY: run test setup operator-setup tools lint lock lock-check pytest crd observability render gpu-smoke images clean

# --- environments ----------------------------------------------------------------------------

# Every environment installs a lock file (requirements/*.txt: exact versions and hashes,
# written by scripts/lock.sh from pyproject.toml and requirements/*.in), so `make test` and CI
# run the releases the last landing ran. `uv pip sync` makes the venv exactly the lock
# (removing anything else); the project itself goes in editable, without dependencies and
# with the locked setuptools.
$(UV): requirements/uv.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "error: the lock files are resolved for Python 3.11 (TensorFlow 2.17.1, the images; docs/versions.md) but $(PYTHON) is $$($(PYTHON) -V 2>&1): run make with PYTHON=python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements/uv.txt
	touch $@

# Full development environment: operator + converter + test tools, with the CPU build of
# TensorFlow (there is no GPU in development or CI; requirements/dev.in says why each extra
# pin is there).
$(VENV)/.installed: requirements/dev.txt pyproject.toml | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip sync --quiet --python $(VENV)/bin/python --require-hashes requirements/dev.txt
	$(UV) pip install --quiet --python $(VENV)/bin/python --no-deps --no-build-isolation -e .
	touch $@

# Operator-only environment: the lock Dockerfile.operator installs (no TensorFlow).
$(OPERATOR_VENV)/.installed: requirements/operator.txt requirements/build.txt pyproject.toml | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(OPERATOR_VENV)
	$(UV) pip sync --quiet --python $(OPERATOR_VENV)/bin/python --require-hashes requirements/operator.txt requirements/build.txt
	$(UV) pip install --quiet --python $(OPERATOR_VENV)/bin/python --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed tools
operator-setup: $(OPERATOR_VENV)/.installed

tools:
	bash scripts/install-tools.sh

# After a change to the dependencies in pyproject.toml or requirements/*.in: re-resolve the
# lock files, keeping every pin that still fits (scripts/lock.sh --upgrade moves them all).
lock: $(UV)
	UV=$(UV) scripts/lock.sh

# Fails when a lock file no longer matches its inputs (part of `make lint`, so of CI).
lock-check: $(UV)
	UV=$(UV) scripts/lock.sh --check

# --- the main job ----------------------------------------------------------------------------

# Installs the CRD into the cluster of the current kubeconfig context and runs the operator in
# the foreground (Ctrl-C stops it). Scope it with TRTSERVE_NAMESPACES=ns1,ns2.
# `trtserve-operator check` first: without a reachable cluster it prints one line naming the
# kubeconfig and context (kubectl would print its openapi download advice instead).
run: operator-setup
	@$(OPERATOR_VENV)/bin/trtserve-operator check
	@command -v kubectl >/dev/null || { echo "error: make run needs kubectl on PATH to install the CRD (or: kubectl apply --server-side -f crds/trtmodels.yaml elsewhere, then .venv-operator/bin/trtserve-operator run)" >&2; exit 1; }
	kubectl apply --server-side -f crds/trtmodels.yaml
	$(OPERATOR_VENV)/bin/trtserve-operator run

# --- checks ----------------------------------------------------------------------------------

lint: $(VENV)/.installed lock-check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	PYTHONPATH=observability $(VENV)/bin/lint-imports

pytest: $(VENV)/.installed
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: setup lint pytest

# --- helpers ---------------------------------------------------------------------------------

# Regenerate everything derived from the typed models: the embedded core/v1 schemas (from
# kubernetes-validate), the CRD, its copy in the chart and the reference tables in
# docs/api.md (tests fail when any of them is stale).
crd: $(VENV)/.installed
	$(VENV)/bin/python -m trtserve_operator.api.corev1 > operator/trtserve_operator/api/corev1-schemas.json
	$(VENV)/bin/python -m trtserve_operator.api.crd > crds/trtmodels.yaml
	cp crds/trtmodels.yaml charts/trtserve/files/crds/trtmodels.yaml
	$(VENV)/bin/python -m trtserve_operator.api.reference docs/api.md

# Regenerate the Grafana dashboards and the alert rules of the chart from observability/
# (tests fail when the committed files are stale).
observability: $(VENV)/.installed
	PYTHONPATH=observability $(VENV)/bin/python -m trtserve_observability

# Prints YAML only, so `make render > x.yaml` is a manifest file: the setup (and make's echo
# of its commands) goes to stderr and the render command is not echoed. RENDER_ARGS passes
# more options, e.g. RENDER_ARGS=--no-owner.
render:
	@$(MAKE) -s --no-print-directory operator-setup >&2
	@$(OPERATOR_VENV)/bin/trtserve-operator render -f $(or $(EXAMPLE),examples/resnet50-fp16-s3.yaml) $(RENDER_ARGS)

# Needs a GPU node with Docker and the NVIDIA container toolkit (see docs/converter.md): runs
# the converter image's TF-TRT path in FP16 and INT8 and prints both reports.
CONVERTER_IMAGE ?= trtserve/converter:0.1.0
gpu-smoke:
	docker run --rm --gpus all -i $(CONVERTER_IMAGE) bash -s < scripts/gpu-smoke.sh

# Needs a Docker engine (there is none in CI): see docs/admin.md.
images:
	docker build -f Dockerfile.operator -t trtserve/operator:0.1.0 .
	docker build -f Dockerfile.converter -t trtserve/converter:0.1.0 .

clean:
	rm -rf $(VENV) $(OPERATOR_VENV) .tools .mypy_cache .ruff_cache .pytest_cache
