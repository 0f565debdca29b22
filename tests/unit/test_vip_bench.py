"""Pure parts of ``eventface bench vip``: percentiles, the stage split, the summary and its JSON
line, the inbox watcher, the consumer probe and the command line. No stack, no timing assertions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventface import cli
from eventface.bench import vip
from eventface.bench.vip import (
    STAGES,
    ConsumerProbe,
    InboxWatcher,
    Sample,
    cameras_needed,
    check_options,
    connector_url,
    format_table,
    json_line,
    match_push,
    percentiles,
    stage_medians,
    stages,
    summarise,
)

REQUIRED_KEYS = ("alert_ms_p50", "alert_ms_p95", "alert_ms_p50_crm_down")


def _sample(
    alert_ms: float,
    answer_ms: float = 50.0,
    status: str = "ok",
    *,
    queued_ms: float | None = None,
    consumer_ms: float | None = None,
    pushed_ms: float | None = None,
) -> Sample:
    return Sample(answer_ms, alert_ms, status, queued_ms, consumer_ms, pushed_ms)


def _summary(**overrides: Any) -> dict[str, Any]:
    healthy = overrides.pop("healthy", [_sample(200.0 + i, 50.0 + i) for i in range(10)])
    crm_down = overrides.pop("crm_down", [_sample(600.0 + i, 40.0, "unavailable") for i in range(10)])
    return summarise(
        healthy, crm_down, deadline_ms=500, crm_latency_ms=50.0, crm_timeout_latency_ms=1000.0, **overrides
    )


# --------------------------------------------------------------------------- percentiles and stages


def test_percentiles_interpolates_linearly_and_rounds() -> None:
    # given 1..100
    samples = [float(v) for v in range(1, 101)]

    # when
    p50, p95 = percentiles(samples)

    # then numpy's linear interpolation
    assert (p50, p95) == (50.5, 95.05)


def test_percentiles_refuses_no_samples() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        percentiles([])


def test_stages_split_the_alert_time_between_consecutive_timestamps() -> None:
    # given a sample with every timestamp
    sample = _sample(250.0, 60.0, queued_ms=100.0, consumer_ms=110.0, pushed_ms=245.0)

    # when
    split = stages(sample)

    # then each stage runs from the previous timestamp, and together they make the alert time
    assert split == {
        "answer": 60.0,
        "outbox_to_queue": 40.0,
        "queue_to_consumer": 10.0,
        "consumer_to_push": 135.0,
        "push_to_seen": 5.0,
    }
    assert sum(v for v in split.values() if v is not None) == pytest.approx(sample.alert_ms)


def test_stages_are_none_where_a_timestamp_is_missing() -> None:
    split = stages(_sample(250.0, 60.0, pushed_ms=245.0))

    assert split["outbox_to_queue"] is None
    assert split["queue_to_consumer"] is None
    assert split["consumer_to_push"] is None
    assert split["push_to_seen"] == 5.0


def test_stage_medians_skip_missing_values_and_say_none_when_nothing_is_known() -> None:
    # given one sample with the consumer's timestamps and one without
    samples = [
        _sample(250.0, 60.0, queued_ms=100.0, consumer_ms=110.0, pushed_ms=240.0),
        _sample(300.0, 80.0),
    ]

    # when
    medians = stage_medians(samples)

    # then
    assert set(medians) == set(STAGES)
    assert medians["answer"] == 70.0
    assert medians["queue_to_consumer"] == 10.0
    assert stage_medians([_sample(100.0)])["consumer_to_push"] is None


# --------------------------------------------------------------------------- summary and output


def test_summarise_reports_both_conditions_and_the_ratios_against_the_answer() -> None:
    # given healthy alerts at 200..209 ms answered in 50..59 ms, fallback alerts at 600..609 ms
    summary = _summary()

    # then
    assert summary["alert_ms_p50"] == 204.5
    assert summary["answer_ms_p50"] == 54.5
    assert summary["alert_ms_p50_crm_down"] == 604.5
    assert summary["ratio_alert_to_answer"] == round(204.5 / 54.5, 3)
    assert summary["ratio_alert_to_answer_crm_down"] == round(604.5 / 40.0, 3)
    assert summary["crm_down_minus_deadline_ms"] == 104.5
    assert summary["alert_after_answer_ms_p50"] == 150.0
    assert (summary["n"], summary["n_crm_down"]) == (10, 10)
    assert (summary["profile_ok"], summary["profile_unavailable_crm_down"]) == (10, 10)
    assert set(summary["stages_ms_p50"]) == {"healthy", "crm_down"}


def test_summarise_counts_alerts_that_took_the_wrong_profile_path() -> None:
    # given one healthy alert without the profile and one fallback alert with it
    summary = _summary(
        healthy=[_sample(200.0), _sample(210.0, status="unavailable")],
        crm_down=[_sample(600.0, status="unavailable"), _sample(610.0, status="ok")],
    )

    assert summary["profile_ok"] == 1
    assert summary["profile_unavailable_crm_down"] == 1


def test_summarise_gives_no_ratio_against_a_zero_answer_time() -> None:
    summary = _summary(healthy=[_sample(200.0, 0.0)])

    assert summary["ratio_alert_to_answer"] is None


@pytest.mark.parametrize("empty", ["healthy", "crm_down"])
def test_summarise_needs_samples_of_both_conditions(empty: str) -> None:
    with pytest.raises(ValueError, match="both conditions"):
        _summary(**{empty: []})


def test_json_line_is_one_line_with_the_required_keys_and_round_trips() -> None:
    # given
    summary = _summary()

    # when
    line = json_line(summary)

    # then
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed == summary
    for key in REQUIRED_KEYS:
        assert parsed[key] > 0


def test_format_table_shows_both_conditions_the_stages_and_the_deadline() -> None:
    # given a summary where the consumer's stages are unknown
    summary = _summary()

    # when
    table = format_table(summary)

    # then
    assert "CRM healthy (50 ms)" in table
    assert "CRM timing out (1000 ms)" in table
    assert "204.5" in table and "604.5" in table
    assert all(stage in table for stage in STAGES)
    assert "104.5 ms after the 500 ms deadline" in table
    assert " -" in table  # unknown stages are shown as dashes, not as zeros


# --------------------------------------------------------------------------- options and helpers


@pytest.mark.parametrize(("n", "deadline_ms"), [(1, 50), (30, 500), (1000, 10_000)])
def test_check_options_accepts_usable_values(n: int, deadline_ms: int) -> None:
    assert check_options(n, deadline_ms) == (n, deadline_ms)


@pytest.mark.parametrize(
    ("n", "deadline_ms", "message"),
    [(0, 500, "--n must be at least 1"), (3, 49, "--deadline-ms must be 50-10000"), (3, 10_001, "got 10001")],
)
def test_check_options_refuses_unusable_values_naming_the_option(
    n: int, deadline_ms: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_options(n, deadline_ms)


@pytest.mark.parametrize(("sightings", "cameras"), [(0, 1), (1, 1), (100, 1), (101, 2), (250, 3)])
def test_cameras_needed_keeps_each_camera_under_its_share(sightings: int, cameras: int) -> None:
    assert cameras_needed(sightings, per_camera=100) == cameras


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("http://crm/customers/{customer_id}", "http://crm/customers/{customer_id}?bench_sample=7"),
        ("http://crm/c/{customer_id}?region=jp", "http://crm/c/{customer_id}?region=jp&bench_sample=7"),
    ],
)
def test_connector_url_keeps_the_endpoint_and_adds_a_query(template: str, expected: str) -> None:
    assert connector_url(template, 7) == expected


def test_match_push_finds_the_alert_by_its_data_payload() -> None:
    pushes = [{"data": {"alert_id": "a1"}}, {"data": {"alert_id": "a2"}}]

    assert match_push(pushes, "a2") == {"data": {"alert_id": "a2"}}
    assert match_push(pushes, "a3") is None
    assert match_push([], "a1") is None


def test_match_push_takes_the_first_push_when_no_push_names_an_alert() -> None:
    pushes: list[dict[str, Any]] = [{"title": "first", "data": {}}, {"title": "second"}]

    assert match_push(pushes, "a1") == {"title": "first", "data": {}}


# --------------------------------------------------------------------------- the inbox watcher


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def test_inbox_watcher_returns_only_new_complete_lines(tmp_path: Path) -> None:
    # given an inbox with one push, already seen
    inbox = tmp_path / "device.jsonl"
    _append(inbox, json.dumps({"n": 1}) + "\n")
    watcher = InboxWatcher(inbox)
    watcher.skip_existing()

    # when a second push is written in two pieces
    _append(inbox, '{"n": ')
    partial = watcher.new_pushes()
    _append(inbox, "2}\n")
    complete = watcher.new_pushes()

    # then the half-written line waits for its end, and nothing is read twice
    assert partial == []
    assert complete == [{"n": 2}]
    assert watcher.new_pushes() == []


def test_inbox_watcher_of_a_missing_file_sees_no_push(tmp_path: Path) -> None:
    assert InboxWatcher(tmp_path / "nobody.jsonl").new_pushes() == []


# --------------------------------------------------------------------------- the consumer probe


def _record(alert_id: str | None, sent_ms: str | None = "1700000000123") -> dict[str, Any]:
    body = json.dumps({"alert_id": alert_id}) if alert_id is not None else "not json"
    return {"body": body, "attributes": {"SentTimestamp": sent_ms} if sent_ms is not None else {}}


@pytest.fixture
def ticks() -> Iterator[float]:
    return iter(float(t) for t in range(1, 1000))


def test_consumer_probe_notes_arrival_queue_time_and_return_and_passes_the_answer(
    ticks: Iterator[float],
) -> None:
    # given a probe around a consumer that answers a partial batch response
    calls: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(event)
        return {"batchItemFailures": []}

    probe = ConsumerProbe(handler, clock=lambda: next(ticks))
    event = {"Records": [_record("a1"), _record(None)]}

    # when
    answer = probe(event, None)

    # then the consumer got the event unchanged, and the alert job's times are known
    assert answer == {"batchItemFailures": []}
    assert calls == [event]
    timing = probe.wait_finished("a1", timeout_s=0)
    assert timing is not None
    assert (timing.received, timing.finished) == (1.0, 2.0)
    assert timing.queued_at == pytest.approx(1_700_000_000.123)


def test_consumer_probe_keeps_the_first_arrival_of_a_redelivered_job(ticks: Iterator[float]) -> None:
    probe = ConsumerProbe(lambda event, context: None, clock=lambda: next(ticks))

    probe({"Records": [_record("a1", sent_ms=None)]}, None)
    probe({"Records": [_record("a1", sent_ms=None)]}, None)

    timing = probe.timing("a1")
    assert timing is not None
    assert (timing.received, timing.finished, timing.queued_at) == (1.0, 4.0, None)


def test_consumer_probe_marks_a_job_finished_when_the_consumer_raises(ticks: Iterator[float]) -> None:
    def failing(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("whole batch failed")

    probe = ConsumerProbe(failing, clock=lambda: next(ticks))

    with pytest.raises(RuntimeError, match="whole batch failed"):
        probe({"Records": [_record("a1")]}, None)
    timing = probe.timing("a1")
    assert timing is not None and timing.finished == 2.0


def test_consumer_probe_wait_wakes_when_another_thread_finishes_the_job() -> None:
    # given a consumer that is held until released
    release = threading.Event()
    probe = ConsumerProbe(lambda event, context: release.wait(5))
    worker = threading.Thread(target=probe, args=({"Records": [_record("a1")]}, None))
    worker.start()

    # when the job is released while the main thread waits for it
    release.set()
    timing = probe.wait_finished("a1", timeout_s=5)
    worker.join(5)

    # then
    assert timing is not None and timing.finished is not None


def test_consumer_probe_wait_for_an_unknown_job_gives_up_with_none() -> None:
    assert ConsumerProbe(lambda event, context: None).wait_finished("nobody", timeout_s=0) is None


# --------------------------------------------------------------------------- the command line


def test_cli_bench_vip_defaults() -> None:
    args = cli.build_parser().parse_args(["bench", "vip"])

    assert (args.n, args.deadline_ms) == (30, 500)
    assert args.func is cli._bench_vip


def test_cli_bench_vip_options() -> None:
    args = cli.build_parser().parse_args(["bench", "vip", "--n", "3", "--deadline-ms", "800"])

    assert (args.n, args.deadline_ms) == (3, 800)


def test_cli_bench_vip_refuses_bad_options_before_starting_anything(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a run that must not be reached
    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the stack was started despite bad options")

    monkeypatch.setattr(vip, "run", never)

    # when
    code = cli.main(["bench", "vip", "--deadline-ms", "20"])

    # then
    assert code == 2
    assert "--deadline-ms must be 50-10000" in capsys.readouterr().err
