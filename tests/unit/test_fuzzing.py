"""The fuzzers' shared verdicts and guard (eventface.local.fuzzing): what counts as a clear refusal,
which addresses the fuzzed stack may reach, and how a run is seeded."""

from __future__ import annotations

import json
import socket

import pytest

from eventface.local.fuzzing import (
    EgressRefusedError,
    Findings,
    FuzzProfileError,
    egress_guard,
    error_body_problem,
    load_profile,
)


def test_fuzzing_accepts_a_refusal_that_names_the_problem() -> None:
    body = json.dumps({"Code": "InvalidInputError", "Message": "limit 'x' is not an integer"}).encode()
    assert error_body_problem(body) is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>Bad Request</html>", "not JSON"),
        (b'["error"]', "not a JSON object"),
        (b'{"message": "Missing Authentication Token"}', "no Code"),
        (b'{"Code": "BadRequest", "Message": ""}', "without a Message"),
        (b'{"Code": "BadRequest", "Message": "Bad Request"}', "does not name the problem"),
        (b'{"Code": "BadRequest", "Message": "BadRequest"}', "does not name the problem"),
    ],
)
def test_fuzzing_flags_a_refusal_that_does_not_say_what_was_wrong(body: bytes, problem: str) -> None:
    assert problem in (error_body_problem(body) or "")


def test_fuzzing_counts_one_finding_per_problem_and_remembers_who_met_it() -> None:
    # given
    findings = Findings()
    # when
    for who in ("owner", "camera", "owner"):
        findings.add("t", who, "5xx", "POST /x", status=500, detail="boom", example=f"{who} sent")
    findings.add("u", "owner", "schema", "POST /x", status=200, detail="undocumented", example="e")
    # then
    (five_xx,) = findings.of_test("t")
    assert (five_xx.count, five_xx.principals, five_xx.example) == (3, {"owner", "camera"}, "owner sent")
    assert [f.kind for f in findings.all()] == ["5xx", "schema"]


def test_fuzzing_guard_refuses_names_and_addresses_outside_loopback() -> None:
    # when
    with egress_guard() as attempts:
        with pytest.raises(EgressRefusedError):
            socket.getaddrinfo("crm.example.com", 443)
        with pytest.raises(EgressRefusedError), socket.socket() as sock:
            sock.connect(("169.254.169.254", 80))
        loopback = socket.getaddrinfo("127.0.0.1", 80)
    # then
    assert attempts == ["name look-up of 'crm.example.com'", "connection to '169.254.169.254'"]
    assert loopback
    assert socket.getaddrinfo.__module__ == "socket"  # restored


def test_fuzzing_profile_is_seeded_fixed_quick_or_replayed_long() -> None:
    quick = load_profile({})
    replayed = load_profile({"EVENTFACE_FUZZ": "long", "EVENTFACE_FUZZ_SEED": "42"})
    assert quick == load_profile({}) and quick.name == "quick"
    assert (replayed.seed, replayed.examples > quick.examples) == (42, True)
    assert replayed.replay() == "EVENTFACE_FUZZ=long EVENTFACE_FUZZ_SEED=42"
    with pytest.raises(FuzzProfileError, match="quick"):
        load_profile({"EVENTFACE_FUZZ": "forever"})
