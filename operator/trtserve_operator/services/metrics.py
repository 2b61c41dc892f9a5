"""Process-local counters of what the operator did, in Prometheus text format."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

_HELP = {
    "trtserve_child_actions_total": "Children created, patched or left alone by converging.",
    "trtserve_status_writes_total": "TRTModel status patches sent.",
    "trtserve_events_total": "Kubernetes Events posted on TRTModels.",
    "trtserve_api_errors_total": "Failed Kubernetes API requests by error class.",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class Metrics:
    """Monotonic counters keyed by (metric name, sorted label pairs)."""

    counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=Counter)

    def inc(self, name: str, **labels: str) -> None:
        if name not in _HELP:
            raise KeyError(f"unknown metric {name}")
        self.counters[(name, tuple(sorted(labels.items())))] += 1

    def value(self, name: str, **labels: str) -> int:
        return self.counters[(name, tuple(sorted(labels.items())))]

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        lines: list[str] = []
        for name, help_text in _HELP.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            samples = sorted((k[1], v) for k, v in self.counters.items() if k[0] == name)
            for labels, count in samples:
                rendered = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
                lines.append(f"{name}{{{rendered}}} {count}" if rendered else f"{name} {count}")
        return "\n".join(lines) + "\n"
