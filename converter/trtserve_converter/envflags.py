"""Every long flag of a command line as an environment variable too.

`trt-convert` reads `TRT_CONVERT_<FLAG>` and `trt-bench` reads `TRT_BENCH_<FLAG>` (upper
case, '-' -> '_'): the values become the parser's defaults, so a flag on the command line
still wins, and each is converted and checked by the flag's own type, as on the command
line. A bad value raises the command's own ``InvalidArguments`` (so its report or summary
is still written), naming the variable.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
SKIPPED = frozenset({"help", "version"})


@dataclass(frozen=True)
class EnvFlags:
    """The environment side of one command's flags."""

    prefix: str
    """e.g. ``TRT_CONVERT_``."""
    invalid: Callable[[str], Exception]
    """The command's error for a bad value (its InvalidArguments)."""
    ignore_empty: bool = False
    """An empty value counts as unset (trt-bench) instead of as a value (trt-convert)."""

    def name(self, flag: str) -> str:
        """`--max-workspace-bytes` -> `TRT_CONVERT_MAX_WORKSPACE_BYTES`."""
        return self.prefix + flag.lstrip("-").upper().replace("-", "_")

    def document(self, parser: argparse.ArgumentParser) -> None:
        """Append each flag's environment variable to its help text."""
        for action, flag in _long_flags(parser):
            if action.help:
                action.help = f"{action.help} [env {self.name(flag)}]"

    def apply(self, parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
        """Make the environment's values the flags' defaults."""
        for action, flag in _long_flags(parser):
            raw = environ.get(self.name(flag))
            if raw is None or (self.ignore_empty and raw == ""):
                continue
            action.default = self.value(action, raw)

    def value(self, action: argparse.Action, raw: str) -> Any:
        """One environment value converted the way the command line would; a repeatable
        flag takes several values separated by ';'."""
        name = self.name(action.option_strings[0])
        if isinstance(action, argparse.BooleanOptionalAction | argparse._StoreTrueAction):
            word = raw.strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise self.invalid(f"{name}={raw!r}: expected true or false")
        convert: Callable[[str], Any] = action.type or str  # type: ignore[assignment]
        try:
            if isinstance(action, argparse._AppendAction):
                return [convert(part) for part in raw.split(";") if part.strip()]
            return convert(raw)
        except argparse.ArgumentTypeError as error:
            raise self.invalid(f"{name}: {error}") from None


def _long_flags(parser: argparse.ArgumentParser) -> list[tuple[argparse.Action, str]]:
    """(action, its first long flag) of every flag but --help and --version."""
    found = []
    for action in parser._actions:
        long_flags = [flag for flag in action.option_strings if flag.startswith("--")]
        if long_flags and action.dest not in SKIPPED:
            found.append((action, long_flags[0]))
    return found


def choice(choices: Sequence[str]) -> Callable[[str], str]:
    """Case-insensitive choice that returns the canonical spelling."""
    canonical = {option.lower(): option for option in choices}

    def convert(text: str) -> str:
        try:
            return canonical[text.strip().lower()]
        except KeyError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not one of {', '.join(choices)}"
            ) from None

    convert.__name__ = "choice"
    return convert
