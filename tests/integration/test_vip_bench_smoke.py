"""``eventface bench vip --n 3`` for real: the local stack, the demo cast, the loopback CRM.

A smoke test of the benchmark as a user runs it (its own process, the CLI entry point): it must
finish, exit 0 and end with the JSON line of its numbers. No number is compared with a threshold:
speed is the benchmark's output, not a test's pass mark.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

#: A guard against a hung run, not a speed requirement (the run takes about 20 s).
GUARD_SECONDS = 180
TIMED_KEYS = (
    "alert_ms_p50",
    "alert_ms_p95",
    "alert_ms_p50_crm_down",
    "alert_ms_p95_crm_down",
    "answer_ms_p50",
    "ratio_alert_to_answer",
)


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    # given / when: the benchmark with three sightings per CRM condition
    done = subprocess.run(
        [sys.executable, "-m", "eventface.cli", "bench", "vip", "--n", "3", "--deadline-ms", "300"],
        capture_output=True,
        text=True,
        timeout=GUARD_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    last = done.stdout.strip().splitlines()[-1]
    parsed: dict[str, Any] = json.loads(last)
    return parsed


@pytest.mark.parametrize("key", TIMED_KEYS)
def test_vip_bench_reports_a_positive_number(summary: dict[str, Any], key: str) -> None:
    value = summary[key]
    assert isinstance(value, float | int) and value > 0, (key, value)


def test_vip_bench_reports_its_settings_and_both_profile_paths(summary: dict[str, Any]) -> None:
    assert (summary["n"], summary["n_crm_down"], summary["deadline_ms"]) == (3, 3, 300)
    assert isinstance(summary["crm_down_minus_deadline_ms"], float)
    assert isinstance(summary["profile_ok"], int) and isinstance(summary["profile_unavailable_crm_down"], int)
    assert set(summary["stages_ms_p50"]) == {"healthy", "crm_down"}
