"""Reading an exposition in tests: families by name, one sample's value, the series count."""

from __future__ import annotations

import shutil
import subprocess


def families(text: str) -> dict[str, object]:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """The value of the sample `name` whose labels include `labels`, or None."""
    from prometheus_client.parser import text_string_to_metric_families

    want = labels or {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in want.items()):
                return float(s.value)
    return None


def series_count(text: str) -> int:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(len(f.samples) for f in text_string_to_metric_families(text))


def promtool_check_metrics(text: str) -> str:
    """promtool's verdict on an exposition (naming conventions, help, types); '' when clean."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus package) is not installed"
    run = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    return (run.stdout + run.stderr).strip()
