"""pyproject.toml's package metadata in the form current setuptools wants (issue 8, item 11).

setuptools 77 made `project.license` an SPDX expression (PEP 639) and deprecated the
`{text = ...}` table, warning on every build. The string form needs setuptools >= 77 at
build time, so the build requirement must say so (pip builds in an isolated environment
from `build-system.requires`; CI's virtualenv ships an older setuptools).
"""

from __future__ import annotations

import tomllib

from chart_support import REPO_ROOT
from packaging.licenses import canonicalize_license_expression
from packaging.requirements import Requirement

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression() -> None:
    license_value = PYPROJECT["project"]["license"]
    assert isinstance(license_value, str), 'use license = "<SPDX expression>", not a table'
    assert canonicalize_license_expression(license_value) == "Apache-2.0"
    # PEP 639: with a license expression, License :: classifiers are an error.
    classifiers = PYPROJECT["project"].get("classifiers", [])
    assert not [c for c in classifiers if c.startswith("License ::")]


def test_build_requires_a_setuptools_that_understands_it() -> None:
    requirements = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    (setuptools,) = [r for r in requirements if r.name == "setuptools"]
    assert not setuptools.specifier.contains("76.2.0")
    assert setuptools.specifier.contains("77.0.0")
    assert setuptools.specifier.contains("84.2.1")  # the release the build was checked with
