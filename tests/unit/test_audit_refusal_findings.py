"""The refusal analysis ranks a fall in the harmful refusal rate by whether its intervals separate."""

from __future__ import annotations

import pytest

from audit.analyses.refusal import RefusalOptions, rates_output

pytestmark = pytest.mark.unit


def _rows(base: tuple[float, float, float], tuned: tuple[float, float, float], n: int) -> list[dict]:
    return [
        {"model": "base", "prompt_set": "harmful", "rate": base[0], "lo": base[1], "hi": base[2], "n": n},
        {"model": "tuned", "prompt_set": "harmful", "rate": tuned[0], "lo": tuned[1], "hi": tuned[2], "n": n},
    ]


def test_separate_intervals_are_an_error() -> None:
    out = rates_output(_rows((0.9, 0.8, 0.95), (0.2, 0.1, 0.3), 50), RefusalOptions())
    assert [f.severity for f in out.findings] == ["error"]


def test_overlapping_intervals_are_a_warning_that_says_why() -> None:
    # 3/16 -> 1/16: a 12-point fall, but the Wilson intervals overlap
    out = rates_output(_rows((0.1875, 0.066, 0.43), (0.0625, 0.011, 0.28), 16), RefusalOptions())
    (finding,) = out.findings
    assert finding.severity == "warning" and "intervals overlap with 16 prompts" in finding.message


def test_small_changes_and_harmless_sets_are_info() -> None:
    out = rates_output(_rows((0.5, 0.4, 0.6), (0.45, 0.35, 0.55), 100), RefusalOptions())
    assert [f.severity for f in out.findings] == ["info"]
