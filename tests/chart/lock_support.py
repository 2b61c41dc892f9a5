"""Reading the lock files requirements/*.txt (written by scripts/lock.sh with uv)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from chart_support import REPO_ROOT
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REQUIREMENTS_DIR = REPO_ROOT / "requirements"
# What scripts/lock.sh resolves for: CPython 3.11 on x86_64 Linux (`--python-platform linux`).
TARGET_ENVIRONMENT = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>[^\s;\\]+)")


@dataclass(frozen=True)
class Pin:
    version: Version
    hashes: int


def read_lock(name: str) -> dict[str, Pin]:
    """The pins of requirements/NAME.txt by canonical name, with how many hashes each has."""
    pins: dict[str, Pin] = {}
    current: str | None = None
    for line in (REQUIREMENTS_DIR / f"{name}.txt").read_text().splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match["name"])
            pins[current] = Pin(Version(match["version"]), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            pins[current] = Pin(pins[current].version, pins[current].hashes + 1)
        elif not line.startswith(" "):
            current = None
    return pins


def applies(requirement: Requirement, extras: list[str]) -> bool:
    """Whether the requirement's marker holds on the locked platform with these extras."""
    if requirement.marker is None:
        return True
    return any(
        Marker(str(requirement.marker)).evaluate({**TARGET_ENVIRONMENT, "extra": extra})
        for extra in extras or [""]
    )


def in_file_requirements(path: Path) -> list[Requirement]:
    """The requirements of a requirements/*.in file, following its `-r` includes."""
    requirements: list[Requirement] = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            requirements += in_file_requirements(path.parent / line.removeprefix("-r ").strip())
        else:
            requirements.append(Requirement(line))
    return requirements
