"""The lock files requirements/*.txt: complete for their inputs, hashed, pinned where a
version must match something, and what every environment installs.

`make lint` (so CI) also runs `scripts/lock.sh --check`, which re-resolves every lock with uv
against PyPI and fails on any difference; the tests here need no network and fail first
when pyproject.toml or a requirements/*.in file asks for something its lock lacks."""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from chart_support import REPO_ROOT
from lock_support import REQUIREMENTS_DIR, applies, in_file_requirements, read_lock
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
LOCK_SCRIPT = REPO_ROOT / "scripts" / "lock.sh"
TF_VERSION = "2.17.1"


@dataclass(frozen=True)
class LockInputs:
    extras: list[str]
    in_files: list[Path]


def lock_inputs() -> dict[str, LockInputs]:
    """What scripts/lock.sh resolves each lock from (its `lock NAME INPUT...` lines)."""
    found: dict[str, LockInputs] = {}
    for line in LOCK_SCRIPT.read_text().splitlines():
        if not re.match(r"lock \w+ ", line):
            continue
        words = shlex.split(line)
        name, arguments = words[1], words[2:]
        extras = [arguments[i + 1] for i, word in enumerate(arguments) if word == "--extra"]
        in_files = [REPO_ROOT / word for word in arguments if word.endswith(".in")]
        found[name] = LockInputs(extras, in_files)
    return found


LOCKS = lock_inputs()


def requirements_of(inputs: LockInputs) -> list[tuple[Requirement, list[str]]]:
    extras = PYPROJECT["project"]["optional-dependencies"]
    from_pyproject = [
        (Requirement(text), [extra]) for extra in inputs.extras for text in extras[extra]
    ]
    from_in_files = [(r, []) for path in inputs.in_files for r in in_file_requirements(path)]
    return from_pyproject + from_in_files


def unsatisfied(lock: str, requirements: list[tuple[Requirement, list[str]]]) -> list[str]:
    """Every requirement (that applies on the locked platform) the lock's pins do not meet."""
    pins = read_lock(lock)
    problems = []
    for requirement, extras in requirements:
        if not applies(requirement, extras):
            continue
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement}: not in requirements/{lock}.txt")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{requirement}: requirements/{lock}.txt has {pin.version}")
    return problems


def test_the_lock_script_names_every_lock_file() -> None:
    assert set(LOCKS) == {path.stem for path in REQUIREMENTS_DIR.glob("*.txt")}
    assert {"operator", "converter", "dev", "build", "uv", "checkov"} <= set(LOCKS)


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_input_is_met_by_its_lock(lock: str) -> None:
    problems = unsatisfied(lock, requirements_of(LOCKS[lock]))
    assert problems == [], f"stale lock: run `make lock` and commit requirements/ ({problems})"


def test_the_staleness_check_sees_a_missing_and_an_outgrown_pin() -> None:
    asked = [(Requirement("no-such-distribution>=1"), []), (Requirement("kopf>=999"), [])]
    problems = unsatisfied("operator", asked)
    assert len(problems) == 2
    assert "not in requirements/operator.txt" in problems[0]
    assert "requirements/operator.txt has" in problems[1]


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_pin_is_hashed(lock: str) -> None:
    pins = read_lock(lock)
    assert pins
    assert [name for name, pin in pins.items() if pin.hashes == 0] == []


def test_the_pins_that_must_match_something() -> None:
    dev, converter, operator = read_lock("dev"), read_lock("converter"), read_lock("operator")
    # One TensorFlow per environment, the last with TF-TRT: the CPU build for development
    # and CI, the GPU build in the converter image, none in the operator.
    assert str(dev["tensorflow-cpu"].version) == TF_VERSION
    assert "tensorflow" not in dev
    assert str(converter["tensorflow"].version) == TF_VERSION
    assert "tensorflow-cpu" not in converter
    assert not [name for name in operator if name.startswith("tensorflow")]
    for lock in (dev, converter):
        assert str(lock["tensorflow-serving-api"].version) == TF_VERSION
        assert lock["numpy"].version.major == 1  # TensorFlow 2.17 is built against NumPy 1
    # The stubs describe the protobuf the code runs on.
    assert dev["types-protobuf"].version.major == dev["protobuf"].version.major == 4
    assert operator["protobuf"].version == dev["protobuf"].version
    # The converter image never gets the operator's Kubernetes clients.
    assert not {"kopf", "lightkube", "kubernetes", "kubernetes-asyncio"} & set(converter)
    # One uv: the one that bootstraps (uv.txt) is the one in the development environment.
    assert read_lock("uv")["uv"].version == dev["uv"].version
    # The checkov the install script names is the one its lock installs.
    tools = (REPO_ROOT / "scripts" / "install-tools.sh").read_text()
    named = re.search(r'CHECKOV_VERSION="([^"]+)"', tools)
    assert named is not None
    assert str(read_lock("checkov")["checkov"].version) == named[1]


def installs(text: str) -> list[str]:
    """The install commands of a Makefile or Dockerfile (continuations joined, comments out)."""
    lines = text.replace("\\\n", " ").splitlines()
    return [
        line
        for line in lines
        if re.search(r"pip (install|sync)", line) and not line.lstrip().startswith("#")
    ]


def test_every_environment_installs_its_lock_and_nothing_unlocked() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    operator_image = (REPO_ROOT / "Dockerfile.operator").read_text()
    converter_image = (REPO_ROOT / "Dockerfile.converter").read_text()
    tools = (REPO_ROOT / "scripts" / "install-tools.sh").read_text()
    assert '--require-hashes -r "${lock}"' in tools
    assert 'lock="${repo_root}/requirements/checkov.txt"' in tools
    assert "--require-hashes requirements/dev.txt" in makefile
    assert "--require-hashes requirements/operator.txt requirements/build.txt" in makefile
    assert "--require-hashes -r requirements/uv.txt" in makefile
    assert "--require-hashes -r requirements/operator.txt" in operator_image
    assert "--require-hashes -r /tmp/requirements/converter.txt" in converter_image
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()
    for text in (makefile, operator_image, converter_image, tools):
        for command in installs(text):
            for part in re.split(r"&&|;", command):
                if not re.search(r"pip (install|sync)", part):
                    continue
                locked = "--require-hashes" in part
                own_project = "--no-deps" in part and re.search(r"-e \.|trtserve-\*\.whl", part)
                assert locked or own_project, f"installs something unlocked: {part.strip()}"
