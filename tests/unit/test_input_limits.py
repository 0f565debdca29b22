"""Input limits: bounded JSON, dates in range, numbers in range, the printable-name rule, and the
request parsers built on them (eventface.domain.limits, eventface.api.requests)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from eventface.api import requests
from eventface.domain.errors import InvalidInputError
from eventface.domain.limits import (
    MAX_JSON_CONTAINERS,
    check_instant,
    check_json_structure,
    check_name,
    check_range,
    check_text,
    clamp,
    parse_json,
    printable,
)
from eventface.domain.model import Campaign
from eventface.domain.vip import Venue

NOW = datetime(2026, 5, 1, tzinfo=UTC)

# -- JSON ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "depth_ok"),
    [
        ("[" * 32 + "]" * 32, True),
        ("[" * 33 + "]" * 33, False),
        ('{"a":' * 32 + "1" + "}" * 32, True),
        ('{"a":' * 33 + "1" + "}" * 33, False),
        ('["' + "[" * 500 + '"]', True),  # brackets inside a string do not count
        ('["\\"' + "[" * 500 + '"]', True),  # nor after an escaped quote
        ('"' + "[" * 100, False),  # an unterminated string hides nothing
        ("[" * 100_000, False),  # unbalanced: refused before the parser recurses
    ],
    ids=[
        "32-arrays",
        "33-arrays",
        "32-objects",
        "33-objects",
        "in-string",
        "escaped-quote",
        "open-string",
        "open",
    ],
)
def test_check_json_structure_bounds_the_depth_outside_strings(text, depth_ok):
    # when / then
    if depth_ok:
        check_json_structure(text)
    else:
        with pytest.raises(InvalidInputError, match="JSON nested deeper than 32 levels"):
            check_json_structure(text)


def test_check_json_structure_bounds_the_number_of_containers():
    # given: shallow, but a container per two bytes
    text = "[" + ",".join(["[]"] * (MAX_JSON_CONTAINERS + 1)) + "]"
    # when / then
    with pytest.raises(InvalidInputError, match=f"more than {MAX_JSON_CONTAINERS} arrays and objects"):
        check_json_structure(text)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        ("{".encode("utf-16"), "not UTF-8"),
        (b"{nope", "not valid JSON"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"a": 1' + b"0" * 400 + b"}", "401-digit integer is too large"),
        (b'{"a": ' + b"9" * 5000 + b"}", "5000-digit integer"),
    ],
    ids=["not-utf8", "utf16", "invalid", "nan", "minus-infinity", "400-zeros", "5000-digits"],
)
def test_parse_json_refuses_what_the_code_cannot_use(data, message):
    # when / then
    with pytest.raises(InvalidInputError, match=message):
        parse_json(data)


def test_parse_json_parses_a_normal_document():
    # given
    document = {"name": "Rally [1] {x}", "n": -9_223_372_036_854_775_807, "f": 1e300, "l": [[1], {"a": None}]}
    # when / then
    assert parse_json(json.dumps(document).encode()) == document


@pytest.mark.parametrize("depth", [3000, 100_000])
def test_json_object_refuses_deep_nesting_with_a_400(depth):
    # when / then
    with pytest.raises(InvalidInputError, match="JSON nested deeper than 32 levels"):
        requests.json_object(b'{"a":' + b"[" * depth + b"]" * depth + b"}")


# -- dates ----------------------------------------------------------------------------------------

PLUS_14 = timezone(timedelta(hours=14))
MINUS_14 = timezone(timedelta(hours=-14))


@pytest.mark.parametrize(
    "value",
    [
        datetime(1, 1, 1, tzinfo=PLUS_14),
        datetime(9999, 12, 31, 23, 59, tzinfo=MINUS_14),
        datetime(1999, 12, 31, 23, 59, tzinfo=UTC),
        datetime(2000, 1, 1, 9, 59, tzinfo=timezone(timedelta(hours=10))),  # 1999-12-31 UTC
        datetime(2100, 1, 1, tzinfo=UTC),
        datetime(2099, 12, 31, 20, tzinfo=MINUS_14),  # 2100-01-01 UTC
    ],
    ids=["year-1", "year-9999", "before-2000", "before-2000-in-utc", "2100", "2100-in-utc"],
)
def test_check_instant_refuses_dates_out_of_range_and_names_the_field(value):
    # when / then
    with pytest.raises(InvalidInputError, match=r"starts_at .* out of range: use a date from 2000-01-01"):
        check_instant("starts_at", value)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-2))),  # 2000-01-01 01:00 UTC
        NOW,
        datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2100, 1, 1, 9, tzinfo=timezone(timedelta(hours=10))),  # 2099-12-31 23:00 UTC
    ],
)
def test_check_instant_accepts_dates_in_range_unchanged(value):
    # when / then
    assert check_instant("at", value) is value


def test_check_instant_refuses_a_naive_date():
    # when / then
    with pytest.raises(InvalidInputError, match="timezone"):
        check_instant("since", datetime(2026, 5, 1))


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_timestamp_refuses_edge_dates_with_a_400(raw):
    # when / then
    with pytest.raises(InvalidInputError, match=r"since .* out of range"):
        requests.timestamp({"since": raw}, "since")


def test_history_query_bounds_since_and_until():
    # when / then
    with pytest.raises(InvalidInputError, match="until"):
        requests.history_query({"until": "9999-12-31T23:59:59-14:00"})


# -- numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "cooldown_seconds must be from 0 to 86400 seconds, got -1"),
        (10**12, "got 1000000000000"),
        (10**400, "got a 401-digit number"),
        (True, "must be an integer"),
        (1.5, "must be an integer"),
    ],
)
def test_check_range_names_the_field_and_the_range(value, message):
    # when / then
    with pytest.raises(InvalidInputError, match=message):
        check_range("cooldown_seconds", value, 0, 86400, " seconds")


@pytest.mark.parametrize(("value", "expected"), [(-5, 0), (7, 7), (10**12, 86400)])
def test_clamp_holds_a_value_in_range(value, expected):
    assert clamp(value, 0, 86400) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"n": 10**9}, "n must be from 1 to 365, got 1000000000"),
        ({"n": 0}, "n must be from 1 to 365"),
        ({"n": "5"}, "n must be an integer from 1 to 365"),
        ({"n": 5.0}, "n must be an integer from 1 to 365"),
        ({"n": False}, "n must be an integer from 1 to 365"),
        ({}, "n must be an integer from 1 to 365"),
    ],
)
def test_integer_field_is_bounded(body, message):
    # when / then
    with pytest.raises(InvalidInputError, match=message):
        requests.integer(body, "n", requests.TTL_DAYS)


def test_integer_field_in_range_is_returned():
    assert requests.integer({"n": 365}, "n", requests.TTL_DAYS) == 365
    assert requests.integer({}, "n", requests.TTL_DAYS, default=90) == 90


@pytest.mark.parametrize("raw", ["1" + "0" * 30, "9" * 5000, "1e3", "٣", " ", "-"])
def test_page_args_refuses_a_limit_that_is_not_a_page_size(raw):
    # when / then
    with pytest.raises(InvalidInputError, match=r"limit .* is not a page size"):
        requests.page_args({"limit": raw})


@pytest.mark.parametrize(("raw", "limit"), [("20", 20), ("-1", -1), (" 7 ", 7), ("", 50)])
def test_page_args_reads_the_limit_for_the_service_to_check(raw, limit):
    assert requests.page_args({"limit": raw}) == (limit, None)


@pytest.mark.parametrize(
    ("value", "message"),
    [({"min_stamps": 10**12}, "min_stamps must be from 0 to 100"), ({"min_stamps": -1}, "from 0 to 100")],
)
def test_segment_min_stamps_is_bounded(value, message):
    with pytest.raises(InvalidInputError, match=message):
        requests.segment(value)


def test_crm_deadline_is_bounded():
    with pytest.raises(InvalidInputError, match="deadline_ms must be from 50 to 10000"):
        requests.crm_config({"kind": "none", "deadline_ms": 10**12})


def test_stored_cooldown_and_dedupe_out_of_range_are_held_to_their_bounds():
    # given: values stored before the bounds existed
    campaign = Campaign("t", "c", "Rally", NOW, NOW + timedelta(days=1), cooldown_seconds=10**12)
    venue = Venue("t", "v", "Lobby", NOW, dedupe_minutes=10**12)
    # then
    assert campaign.cooldown == timedelta(days=1)
    assert replace(campaign, cooldown_seconds=-3).cooldown == timedelta(0)
    assert venue.dedupe_window == timedelta(days=1)


# -- Type B templates -----------------------------------------------------------------------------


def _template(*first: Any) -> dict[str, Any]:
    values: list[Any] = [*first, *[0.0] * (128 - len(first))]
    return {"template": values, "model_id": "sface-2021dec"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_template(10**400), "NaN or infinity"),
        (_template(float("inf")), "NaN or infinity"),
        (_template(float("nan")), "NaN or infinity"),
        (_template(True), "only numbers"),
        (_template("1.0"), "only numbers"),
        (_template([1.0]), "only numbers"),
        ({"template": [1.0] * 127, "model_id": "m"}, "128 numbers, got 127"),
        (_template(0.5), "not L2-normalised"),
    ],
    ids=["huge-int", "inf", "nan", "bool", "string", "list", "short", "norm"],
)
def test_template_refuses_what_is_not_an_embedding(body, message):
    with pytest.raises(InvalidInputError, match=message):
        requests.template(body)


def test_template_accepts_an_integer_unit_vector():
    assert requests.template(_template(1)).vector[0] == 1.0


# -- names and texts ------------------------------------------------------------------------------

UNPRINTABLE = [
    "\x00",
    "\n",
    "\r",
    "\t",
    "\x1b",
    "\u202e",
    "\u202d",
    "\u2066",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\u2028",
    "\ue000",
]


@pytest.mark.parametrize("bad", UNPRINTABLE, ids=[f"U+{ord(c):04X}" for c in UNPRINTABLE])
def test_check_name_refuses_control_and_format_characters_and_names_them(bad):
    # when / then
    with pytest.raises(
        InvalidInputError, match=f"name must be 1-100 printable characters on one line: .*U\\+{ord(bad):04X}"
    ):
        check_name("name", f"Spring{bad}rally", 100)


@pytest.mark.parametrize("bad", ["\x00", "\u202e", "\u200b"])
def test_check_name_refuses_unprintable_characters_at_the_ends_too(bad):
    with pytest.raises(InvalidInputError, match="printable"):
        check_name("name", f"Rally{bad}", 100)


@pytest.mark.parametrize("name", ["山田\u3000太郎", "Café Zoë", "O'Brien-Smith", "🎉 Rally", "  Gate  "])
def test_check_name_accepts_what_people_write_trimmed(name):
    assert check_name("name", name, 100) == name.strip()


@pytest.mark.parametrize(
    ("value", "required", "message"),
    [
        ("", True, "1-10"),
        ("   ", True, "1-10"),
        ("x" * 11, True, "1-10"),
        (None, False, "0-10"),
        (5, True, "1-10"),
    ],
)
def test_check_name_bounds_the_length_and_the_type(value, required, message):
    with pytest.raises(InvalidInputError, match=message):
        check_name("name", value, 10, required=required)


def test_check_name_optional_may_be_empty():
    assert check_name("location", "", 10, required=False) == ""


def test_check_text_allows_line_breaks_but_not_other_controls():
    # then
    assert check_text("notes", "line one\nline two", 100) == "line one\nline two"
    with pytest.raises(InvalidInputError, match="U\\+202E"):
        check_text("notes", "line\u202eone", 100)
    with pytest.raises(InvalidInputError, match="U\\+0000"):
        check_text("notes", "line\x00one", 100)


def test_printable_matches_the_rule():
    assert printable("Tokyo\u3000Tower") and not printable("a\nb") and printable("a\nb", multiline=True)
