#!/usr/bin/env bash
# Writes the lock files requirements/*.txt from pyproject.toml and requirements/*.in with uv
# (`uv pip compile`, every version exact, every file hashed). They are what `make test`,
# `make run`, CI and both Dockerfiles install, so every environment gets the same releases.
#
#   scripts/lock.sh                    after a change to pyproject.toml or requirements/*.in:
#                                      re-resolve, keeping every pin that still fits
#   scripts/lock.sh --upgrade          move everything to the newest releases that fit
#   scripts/lock.sh --upgrade-package mypy    move one package (repeatable)
#   scripts/lock.sh --check            fail if a lock is stale against its inputs (CI)
#
# `make lock` runs the first form. Resolved for CPython 3.11 on Linux (the images, CI and
# development; docs/versions.md). uv comes from requirements/uv.txt (UV overrides it).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"
uv="${UV:-${repo_root}/.tools/uv/bin/uv}"

check=false
extra_args=()
while (($#)); do
  case "$1" in
    --check) check=true ;;
    --upgrade) extra_args+=(--upgrade) ;;
    --upgrade-package) extra_args+=(--upgrade-package "$2"); shift ;;
    *) echo "usage: scripts/lock.sh [--check | --upgrade | --upgrade-package NAME ...]" >&2; exit 2 ;;
  esac
  shift
done

# lock NAME INPUT... : writes requirements/NAME.txt (or, with --check, a copy to compare).
lock() {
  local name="$1"
  shift
  local output="requirements/${name}.txt"
  if [[ "${check}" == true ]]; then
    # Resolve into a copy of the lock: uv prefers the versions already in its output file,
    # so the copy only changes where the inputs no longer fit the lock.
    output="${work}/${name}.txt"
    cp "requirements/${name}.txt" "${output}" 2>/dev/null || : > "${output}"
  fi
  "${uv}" pip compile --quiet \
    --python-version 3.11 --python-platform linux \
    --generate-hashes --no-strip-extras \
    --custom-compile-command "scripts/lock.sh" \
    --output-file "${output}" "${extra_args[@]}" "$@"
  if [[ "${check}" == true ]] && ! diff -u "requirements/${name}.txt" "${output}"; then
    echo "error: requirements/${name}.txt is stale against pyproject.toml or requirements/*.in: run scripts/lock.sh (make lock) and commit the result" >&2
    stale=true
  fi
}

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
stale=false

lock uv requirements/uv.in
lock build requirements/build.in
lock checkov requirements/checkov.in
lock operator pyproject.toml --extra operator
lock converter pyproject.toml requirements/converter.in --extra converter
lock dev pyproject.toml requirements/dev.in --extra operator --extra converter --extra dev

if [[ "${stale}" == true ]]; then
  exit 1
fi
