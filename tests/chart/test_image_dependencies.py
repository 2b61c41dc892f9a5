"""Each image installs only its lock (requirements/operator.txt, requirements/converter.txt):
every third-party module its package imports must come from a distribution in that lock, or
the image fails at start although every test in the full development environment passes.

Modules are mapped to distributions through the metadata of this environment;
``tensorflow-cpu`` (development and CI) provides the ``tensorflow`` module that the
converter image's ``tensorflow`` provides."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from chart_support import REPO_ROOT
from lock_support import read_lock

# What each image installs besides the package itself (see the Dockerfiles).
IMAGES = {
    "operator": ("operator/trtserve_operator", "operator"),
    "converter": ("converter/trtserve_converter", "converter"),
    # trt-bench ships in the converter image (Dockerfile.converter copies bench/).
    "converter (trt-bench)": ("bench/trtserve_bench", "converter"),
}
STANDS_IN_FOR = {"tensorflow-cpu": "tensorflow"}
OWN_PACKAGES = {"trtserve_operator", "trtserve_converter", "trtserve_bench"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_level_modules(package: Path) -> set[str]:
    modules: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - OWN_PACKAGES - {"__future__"}


def locked(lock: str) -> set[str]:
    """The distributions the image's lock installs."""
    return set(read_lock(lock))


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_every_import_is_installed_in_the_image(image: str) -> None:
    package, lock = IMAGES[image]
    available = locked(lock)
    missing = missing_modules(REPO_ROOT / package, available)
    assert missing == {}, (
        f"{package} imports modules that the {image} image does not install: add their "
        f"distributions to the `{image}` extra in pyproject.toml and run `make lock`"
    )


def missing_modules(package: Path, available: set[str]) -> dict[str, list[str]]:
    providers = metadata.packages_distributions()
    return {
        module: sorted(providers.get(module, ["(not installed here)"]))
        for module in sorted(imported_top_level_modules(package))
        if not any(
            normalize(STANDS_IN_FOR.get(normalize(dist), dist)) in available
            for dist in providers.get(module, [])
        )
    }


def test_the_check_sees_a_missing_dependency() -> None:
    """The converter's imports are all in its lock, the operator's are not (kopf ...)."""
    converter = locked("converter")
    assert "numpy" in converter
    assert "kopf" not in converter
    missing = missing_modules(REPO_ROOT / "operator/trtserve_operator", converter)
    assert "kopf" in missing
