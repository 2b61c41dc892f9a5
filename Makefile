# trtserve developer entry points. The two a newcomer needs (see README.md):
#   make run    set up the operator's environment and run it against the current kubeconfig
#   make test   set up everything the tests need and run linters + the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
OPERATOR_VENV ?= .venv-operator
TF_PIN := tensorflow-cpu==2.17.1
SERVING_API_PIN := tensorflow-serving-api==2.17.1
PYTEST_ARGS ?=
# pytest-xdist workers (CI has 2 cores); PYTEST_WORKERS=0 runs in this process (pdb, -s).
PYTEST_WORKERS ?= 2

.PHONY: run test setup operator-setup tools lint pytest crd render gpu-smoke images clean

# --- environments ----------------------------------------------------------------------------

# Full development environment: operator + converter + test tools. TensorFlow is the CPU build
# (there is no GPU in development or CI); tensorflow-serving-api needs --no-deps because it
# depends on the `tensorflow` distribution, not `tensorflow-cpu` (docs/versions.md).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q "$(TF_PIN)" "numpy<2"
	$(VENV)/bin/pip install -q --no-deps "$(SERVING_API_PIN)"
	$(VENV)/bin/pip install -q -e ".[operator,converter,dev]"
	touch $@

# Operator-only environment: exactly what Dockerfile.operator installs (no TensorFlow).
$(OPERATOR_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(OPERATOR_VENV)
	$(OPERATOR_VENV)/bin/pip install -q --upgrade pip
	$(OPERATOR_VENV)/bin/pip install -q -e ".[operator]"
	touch $@

setup: $(VENV)/.installed tools
operator-setup: $(OPERATOR_VENV)/.installed

tools:
	bash scripts/install-tools.sh

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

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

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

# Prints YAML only, so `make render > x.yaml` is a manifest file: the setup (and make's echo
# of its commands) goes to stderr and the render command is not echoed. RENDER_ARGS passes
# more options, e.g. RENDER_ARGS=--no-owner.
render:
	@$(MAKE) --no-print-directory operator-setup >&2
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
