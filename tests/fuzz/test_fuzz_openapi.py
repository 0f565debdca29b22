"""Property-based fuzzing of both APIs from the OpenAPI documents they serve (schemathesis).

Each app's document is fuzzed over loopback HTTP (the checked-in copy, which a test proves is what
the running app serves at ``/openapi.json``: schemathesis needs it when pytest collects, before the
stack runs, and its lazy fixture loader does not work with pytest 9.2), every operation by every
kind of caller: for the edge API a checkpoint camera, a venue camera and nobody (made-up keys); for
the management API the owner, an API key, a user of each authority and nobody (made-up tokens and
keys). Schemathesis generates valid and invalid inputs (its examples, coverage and fuzzing phases;
seeded and deterministic; the coverage phase and most examples for the owner and the devices),
about half of the generated ids are replaced by real ones so the requests get past the 404s, and
every answer must hold:

- no 5xx, and an answer within the timeout;
- a 4xx is ``{"Code", "Message"}`` with a message that names the problem;
- the status, content type, headers and body are the documented ones, and a request the document
  calls invalid is refused (schemathesis' conformance and negative-data checks).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis import Case, Response
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.schemas import BaseSchema

from eventface.local.fuzzing import clip, load_profile

pytestmark = pytest.mark.fuzz
PROFILE = load_profile()

DOCUMENTS = Path(__file__).resolve().parents[2] / "docs" / "openapi"
DEVICES = ("camera", "venue-camera")
OTHER_CALLERS = (
    "api-key",
    "user:campaigns",
    "user:targets",
    "user:history",
    "user:terminals",
    "user:api-keys",
    "user:venue-staff",
    "user:tenant-admin",
)
#: What schemathesis checks besides our own no-5xx and error-body rules.
CHECKS = [
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
    schemathesis.checks.missing_required_header,
    schemathesis.checks.unsupported_method,
]


def _schema(document: str, *, thorough: bool, credentials: bool) -> BaseSchema:
    """The checked-in document (the served one: see :func:`test_fuzzed_documents_are_the_served_ones`)
    with seeded, deterministic generation; the coverage phase and many examples when ``thorough``;
    made-up credentials when ``credentials`` (the others send their own)."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": PROFILE.seed,
            "suppress-health-check": ["all"],
            "request-timeout": PROFILE.request_timeout,
            "generation": {
                "mode": "all",
                "max-examples": PROFILE.examples if thorough else PROFILE.few_examples,
                "deterministic": True,
                "database": "none",
                "no-shrink": True,
                "with-security-parameters": credentials,
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": thorough},
                "fuzzing": {"enabled": True, "extra-data-sources": {"responses": False}},
                "stateful": {"enabled": False},
            },
        }
    )
    return schemathesis.openapi.from_path(DOCUMENTS / document, config=config)


EDGE_AS_DEVICE = _schema("edge.json", thorough=True, credentials=False)
EDGE_AS_NOBODY = _schema("edge.json", thorough=False, credentials=True)
ADMIN_THOROUGH = _schema("admin.json", thorough=True, credentials=False)
ADMIN_AS_CALLER = _schema("admin.json", thorough=False, credentials=False)
ADMIN_AS_NOBODY = _schema("admin.json", thorough=False, credentials=True)


def _kind(case: Case[Any]) -> str | None:
    """What schemathesis meant to send (its phase, and the coverage scenario's description)."""
    if case.meta is None:
        return None
    description = getattr(case.meta.phase.data, "description", None)
    phase = getattr(case.meta.phase.name, "value", case.meta.phase.name)
    return f"{phase}: {description}" if description else str(phase)


def _fuzz(case: Case[Any], principal: Any, base_url: str, world: Any, recorder: Any) -> None:
    """Send one generated request as ``principal`` and record everything wrong with the answer."""
    if case.meta is None or not case.meta.is_negative_at(ParameterLocation.PATH):
        principal.aim(case.path_parameters, salt=case.operation.label)
    case.headers.update(principal.headers)
    where = case.operation.label
    example = case.as_curl_command()
    response: Response | None = None
    with recorder.no_answer_is_a_finding(principal.name, where, example):
        response = case.call(base_url=base_url, session=world.session, timeout=PROFILE.request_timeout)
    if response is None:
        return
    recorder.answer(principal.name, where, response.status_code, response.content, example, sent=_kind(case))
    if where == "POST /v1/device/key" and response.request.method == "POST" and response.status_code == 200:
        principal.rotated(str(response.json()["device_key"]))
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as group:
        failures: list[Failure] = list(group.exceptions)
    except Failure as single:
        failures = [single]
    else:
        failures = []
    for failure in failures:
        detail = f"{failure.title}: {clip(failure.message, 200)}"
        recorder.add(
            principal.name, "schema", where, status=response.status_code, detail=detail, example=example
        )


def test_fuzzed_documents_are_the_served_ones(world: Any) -> None:
    # when
    served = {
        name: world.session.get(f"{url}/openapi.json", timeout=10).json()
        for name, url in (("edge.json", world.stack.edge_url), ("admin.json", world.stack.admin_url))
    }
    # then
    for name, document in served.items():
        checked_in = json.loads((DOCUMENTS / name).read_text("utf-8"))
        assert document == checked_in, (
            f"docs/openapi/{name} is stale: python -m eventface.api.openapi docs/openapi"
        )


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "PROPFIND"])
def test_a_method_no_route_has_is_405_with_allow_not_a_501_page(method: str, world: Any) -> None:
    # when: a method http.server has no handler for
    answers = [
        world.session.request(method, url, headers=world.principal("user:owner").headers, timeout=10)
        for url in (f"{world.stack.admin_url}/v1/campaigns", f"{world.stack.edge_url}/v1/health")
    ]
    # then: what API Gateway and Chalice answer for a method the route lacks
    for answer in answers:
        assert answer.status_code == 405, (answer.status_code, answer.text[:200])
        assert answer.json()["Code"] == "MethodNotAllowedError" and answer.headers["Allow"], answer.headers


@pytest.mark.parametrize("who", DEVICES)
@EDGE_AS_DEVICE.parametrize()
def test_edge_api_answers_a_fuzzing_device_without_5xx_as_documented(
    case: Case[Any], who: str, world: Any, recorder: Any
) -> None:
    _fuzz(case, world.principal(who), world.stack.edge_url, world, recorder)


@EDGE_AS_NOBODY.parametrize()
def test_edge_api_answers_made_up_credentials_without_5xx_as_documented(
    case: Case[Any], world: Any, recorder: Any
) -> None:
    _fuzz(case, world.principal("nobody"), world.stack.edge_url, world, recorder)


@ADMIN_THOROUGH.parametrize()
def test_admin_api_answers_the_owner_without_5xx_as_documented(
    case: Case[Any], world: Any, recorder: Any
) -> None:
    _fuzz(case, world.principal("user:owner"), world.stack.admin_url, world, recorder)


@pytest.mark.parametrize("who", OTHER_CALLERS)
@ADMIN_AS_CALLER.parametrize()
def test_admin_api_answers_an_api_key_and_each_authority_without_5xx_as_documented(
    case: Case[Any], who: str, world: Any, recorder: Any
) -> None:
    _fuzz(case, world.principal(who), world.stack.admin_url, world, recorder)


@ADMIN_AS_NOBODY.parametrize()
def test_admin_api_answers_made_up_credentials_without_5xx_as_documented(
    case: Case[Any], world: Any, recorder: Any
) -> None:
    _fuzz(case, world.principal("nobody"), world.stack.admin_url, world, recorder)


# -- hostile JSON: the input classes that broke the platform, on every operation of the document --

#: Number tokens as sent (raw JSON text: Python's parser turns 1e400 into inf and accepts NaN).
HOSTILE_NUMBERS = (
    "1" + "0" * 400,
    "-" + "1" * 400,
    "1e400",
    "-1e400",
    "1e-400",
    "NaN",
    "Infinity",
    "1000000000000",
    "9223372036854775808",
    "1.5",
)
HOSTILE_DATES = (
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "2026-02-30T00:00:00Z",
    "1970-01-01T00:00:00-23:59",
)
HOSTILE_LIMITS = ("0", "-1", "1" + "0" * 30, "1e3", "NaN", " 5")
HOSTILE_CURSORS = (
    base64.urlsafe_b64encode(b"{}").decode(),
    base64.urlsafe_b64encode(b'{"pk": {"S": "x"}, "sk": {"S": "y"}}').decode(),
    base64.urlsafe_b64encode(b'{"tenant_id": "other", "campaign_id": "x", "created_at": 1}').decode(),
    base64.urlsafe_b64encode(b"null").decode(),
    base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode(),
    "not base64 at all!",
    "A" * 10000,
)
#: Deep nesting: as the whole body, and as the value of a field.
DEEP = {
    "array-100000": "[" * 100000 + "]" * 100000,
    "object-50000": '{"a":' * 50000 + "1" + "}" * 50000,
}
DEEP_VALUE = "[" * 3000 + "]" * 3000


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in (_resolve(p, document) for p in schema["allOf"]):
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        return merged
    if "oneOf" in schema:
        return _resolve(schema["oneOf"][0], document)
    return schema


def _sample(schema: dict[str, Any], document: dict[str, Any]) -> Any:
    """A valid value of ``schema`` (required properties only)."""
    schema = _resolve(schema, document)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {name: _sample(props[name], document) for name in schema.get("required", []) if name in props}
    if kind == "array":
        return [_sample(schema.get("items", {}), document) for _ in range(schema.get("minItems", 0))]
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return 0.5
    if kind == "boolean":
        return True
    if schema.get("format") == "date-time":
        return (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    if schema.get("contentEncoding") == "base64":
        return base64.b64encode(b"\xff\xd8\xff").decode()
    return "fuzz"


def _fields(schema: dict[str, Any], document: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Property (dotted into nested objects) -> what it holds: "number", "date", "array" (of
    numbers) or "other"."""
    schema = _resolve(schema, document)
    found = {}
    for name, declared in schema.get("properties", {}).items():
        prop = _resolve(declared, document)
        kinds = prop.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "integer" in kinds or "number" in kinds:
            found[prefix + name] = "number"
        elif prop.get("format") == "date-time":
            found[prefix + name] = "date"
        elif "array" in kinds and _resolve(prop.get("items", {}), document).get("type") == "number":
            found[prefix + name] = "array"
        else:
            found[prefix + name] = "other"
            if prop.get("properties") and not prefix:
                found.update(_fields(prop, document, f"{name}."))
    return found


def _with(body: dict[str, Any], name: str, raw: str) -> bytes:
    """``body`` with the (dotted) property ``name`` set to the raw JSON text ``raw``."""
    marker = "__hostile_value__"
    document = json.loads(json.dumps(body))
    *parents, leaf = name.split(".")
    target = document
    for parent in parents:
        target = target.setdefault(parent, {}) if isinstance(target.get(parent, {}), dict) else {}
    target[leaf] = marker
    return json.dumps(document).replace(f'"{marker}"', raw).encode()


@dataclass(frozen=True)
class Probe:
    """One hostile request: to which operation, what it sends, and the kind of input (for findings)."""

    label: str
    method: str
    path: str
    what: str
    kind: str
    query: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def _body_probes(
    label: str, method: str, path: str, schema: dict[str, Any], document: dict[str, Any]
) -> Iterator[Probe]:
    base = _sample(schema, document)
    for name, holds in _fields(schema, document).items():
        yield Probe(
            label, method, path, f"{name}: deep", "3000-deep value", body=_with(base, name, DEEP_VALUE)
        )
        if holds == "number":
            for raw in HOSTILE_NUMBERS:
                yield Probe(
                    label,
                    method,
                    path,
                    f"{name}: {raw[:12]}",
                    f"number {raw[:12]}",
                    body=_with(base, name, raw),
                )
        elif holds == "date":
            for date in HOSTILE_DATES:
                yield Probe(
                    label,
                    method,
                    path,
                    f"{name}: {date}",
                    f"date {date}",
                    body=_with(base, name, json.dumps(date)),
                )
        elif holds == "array":
            rest = ",0.1" * 127
            for raw in HOSTILE_NUMBERS:
                body = _with(base, name, f"[{raw}{rest}]")
                yield Probe(
                    label, method, path, f"{name}[0]: {raw[:12]}", f"array element {raw[:12]}", body=body
                )


def hostile_requests(document: dict[str, Any]) -> Iterator[Probe]:
    """Hostile requests for every operation of ``document`` with a JSON body or query parameters:
    deep nesting, out-of-range and non-finite numbers, dates at the edges of the calendar, forged
    cursors and odd limits."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            label = f"{method.upper()} {path}"
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content:
                for name, raw in DEEP.items():
                    yield Probe(label, method, path, f"deep {name}", f"deep body {name}", body=raw.encode())
                for schema in content["schema"].get("oneOf", [content["schema"]]):
                    yield from _body_probes(label, method, path, schema, document)
            for parameter in operation.get("parameters", []):
                name = parameter["name"]
                if parameter["in"] != "query":
                    continue
                if name == "limit":
                    values: tuple[str, ...] = HOSTILE_LIMITS
                elif name == "cursor":
                    values = HOSTILE_CURSORS
                elif "date-time" in json.dumps(parameter["schema"]):
                    values = HOSTILE_DATES
                else:
                    continue
                for value in values:
                    kind = "forged cursor" if name == "cursor" else f"{name}={value[:30]}"
                    yield Probe(label, method, path, f"?{name}={value[:30]}", kind, query={name: value})


EDGE_DOCUMENT = json.loads((DOCUMENTS / "edge.json").read_text("utf-8"))
ADMIN_DOCUMENT = json.loads((DOCUMENTS / "admin.json").read_text("utf-8"))


def _labels(document: dict[str, Any]) -> list[str]:
    return sorted({probe.label for probe in hostile_requests(document)})


def _send_hostile(document: dict[str, Any], label: str, base_url: str, world: Any, recorder: Any) -> None:
    edge = base_url == world.stack.edge_url
    for probe in hostile_requests(document):
        if probe.label != label:
            continue
        who = ("venue-camera" if probe.path.startswith("/v1/venues/") else "camera") if edge else "user:owner"
        principal = world.principal(who)
        headers = {**principal.headers, "content-type": "application/json"}
        example = f"{label} {probe.what}"
        response: requests.Response | None = None
        with recorder.no_answer_is_a_finding(principal.name, label, example):
            response = world.session.request(
                probe.method,
                base_url + probe.path.format_map(principal.ids),
                params=probe.query,
                data=probe.body,
                headers=headers,
                timeout=PROFILE.request_timeout,
            )
        if response is not None:
            recorder.answer(
                principal.name, label, response.status_code, response.content, example, sent=probe.kind
            )


@pytest.mark.parametrize("label", _labels(EDGE_DOCUMENT))
def test_edge_api_refuses_hostile_json_clearly(label: str, world: Any, recorder: Any) -> None:
    # when / then: deep nesting, huge and non-finite numbers, edge dates (as the route's device)
    _send_hostile(EDGE_DOCUMENT, label, world.stack.edge_url, world, recorder)


@pytest.mark.parametrize("label", _labels(ADMIN_DOCUMENT))
def test_admin_api_refuses_hostile_json_clearly(label: str, world: Any, recorder: Any) -> None:
    # when / then: the same, plus forged cursors, odd limits and edge dates in queries (as the owner)
    _send_hostile(ADMIN_DOCUMENT, label, world.stack.admin_url, world, recorder)
